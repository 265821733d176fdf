// The instrument table builds what it declares: each name once, with its
// unit, description and kind (a monotonic sum for counters, a gauge for
// gauges, a histogram with its buckets for histograms), and points carry only the attributes declared for them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataPointType, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import type { Counter, Histogram } from '@opentelemetry/api';
import { INSTRUMENTS, createInstruments, observeAll, type InstrumentKey, type ObservableKey } from '../../src/telemetry/instruments.ts';

class CollectOnly extends MetricReader {
  protected override onForceFlush = async (): Promise<void> => {};
  protected override onShutdown = async (): Promise<void> => {};
}

const keys = Object.keys(INSTRUMENTS) as InstrumentKey[];
const observed = keys.filter((k): k is ObservableKey => INSTRUMENTS[k].kind.startsWith('observable'));
const allAttributes = (k: InstrumentKey) => Object.fromEntries(INSTRUMENTS[k].attributes.map((a) => [a, 'x']));

test('every declared instrument is built as declared', async () => {
  const reader = new CollectOnly();
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('test');
  const inst = createInstruments(meter);
  observeAll(meter, inst, (observe) => {
    for (const k of observed) observe(k, 1, allAttributes(k));
  });
  for (const k of keys) {
    if (INSTRUMENTS[k].kind === 'counter') (inst[k] as Counter).add(1, allAttributes(k));
    else if (INSTRUMENTS[k].kind === 'histogram') (inst[k] as Histogram).record(0.003, allAttributes(k));
  }

  const { resourceMetrics } = await reader.collect();
  const byName = new Map(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).map((m) => [m.descriptor.name, m]));
  assert.equal(byName.size, keys.length, 'names are unique');
  for (const k of keys) {
    const spec = INSTRUMENTS[k];
    const m = byName.get(spec.name);
    assert.ok(m, spec.name);
    assert.equal(m.descriptor.unit, spec.unit, `${spec.name} unit`);
    assert.equal(m.descriptor.description, spec.description, `${spec.name} description`);
    if (spec.kind === 'observable-gauge') assert.equal(m.dataPointType, DataPointType.GAUGE, `${spec.name} is a gauge`);
    else if (spec.kind === 'histogram') {
      assert.equal(m.dataPointType, DataPointType.HISTOGRAM, `${spec.name} is a histogram`);
      const h = m.dataPoints[0]!.value as unknown as { buckets: { boundaries: number[] }; sum: number; count: number };
      assert.deepEqual(h.buckets.boundaries, [...('buckets' in spec ? spec.buckets : [])], `${spec.name} buckets`);
      assert.deepEqual([h.count, h.sum], [1, 0.003], `${spec.name} records fractions`);
    }
    else assert.ok(m.dataPointType === DataPointType.SUM && m.isMonotonic, `${spec.name} is a monotonic sum`);
    assert.deepEqual(m.dataPoints.map((p) => Object.keys(p.attributes)), [[...spec.attributes]], `${spec.name} attributes`);
  }
  await provider.shutdown();
});
