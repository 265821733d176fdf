// The Grafana dashboard (deploy/grafana/turnpike.json): well formed for
// Grafana (unique panel ids, every query on the datasource variable, a grid
// of 24 columns), and every metric it queries is one the sidecar exports
// (the instrument table, in Prometheus form); it covers what the operator
// needs. That each of them really appears in /metrics after traffic is
// test/integration/dashboard-metrics.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INSTRUMENTS } from '../../src/telemetry/instruments.ts';
import { allPanels, dashboardMetrics, expressions, loadDashboard, metricNames } from './dashboard.ts';

/** An instrument's name in Prometheus text: dots to underscores, counters with _total. */
const prometheusName = (spec: { name: string; kind: string }) => spec.name.replace(/\./g, '_') + (spec.kind === 'observable-gauge' ? '' : '_total');
const EXPORTED = new Map(Object.entries(INSTRUMENTS).map(([key, spec]) => [prometheusName(spec), key]));

test('metric names out of PromQL: not functions, keywords, labels, durations or variables', () => {
  assert.deepEqual(metricNames('8 * sum by (datapath) (rate(turnpike_relayed_bytes_total{instance=~"$instance",x="a{b}"}[$__rate_interval]))'), ['turnpike_relayed_bytes_total']);
  assert.deepEqual(metricNames('max by (instance, map) (turnpike_map_entries{a="b"} / turnpike_map_capacity{a="b"}) > bool 0.9'), ['turnpike_map_entries', 'turnpike_map_capacity']);
  assert.deepEqual(metricNames('label_values(turnpike_allocations_active, instance)'), ['turnpike_allocations_active']);
  assert.deepEqual(metricNames('sum(rate(a_total[5m] offset 1h)) / on (job) group_left (instance) b'), ['a_total', 'b']);
});

test('the dashboard is well formed: unique ids, 24 columns, every query on the datasource variable with its own refId', () => {
  const d = loadDashboard();
  assert.ok(d.uid && d.title);
  const panels = allPanels(d);
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'unique panel ids');
  assert.ok(d.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource' && v.query === 'prometheus'));
  for (const p of panels) {
    assert.ok(p.gridPos.x >= 0 && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: inside 24 columns`);
    if (p.type === 'row') continue;
    assert.equal(p.datasource?.uid, '${datasource}', `${p.title}: the datasource variable`);
    assert.ok(p.targets && p.targets.length > 0, `${p.title}: queries`);
    const refIds = p.targets.map((t) => t.refId);
    assert.equal(new Set(refIds).size, refIds.length, `${p.title}: unique refIds`);
    for (const t of p.targets) {
      assert.equal(t.datasource?.uid, '${datasource}', `${p.title} ${t.refId}`);
      assert.ok(metricNames(t.expr).length > 0, `${p.title} ${t.refId}: queries a metric`);
      const opens = [...t.expr].filter((c) => c === '(').length;
      assert.equal(opens, [...t.expr].filter((c) => c === ')').length, `${p.title} ${t.refId}: balanced parentheses`);
    }
  }
  assert.ok(expressions(d).length > 20);
});

test('every metric the dashboard queries is one the sidecar exports, and it shows what an operator needs', () => {
  const used = dashboardMetrics();
  for (const name of used) assert.ok(EXPORTED.has(name), `${name} is not an exported metric (src/telemetry/instruments.ts)`);
  const keys = new Set(used.map((n) => EXPORTED.get(n)));
  for (const key of ['bytes', 'packets', 'xdpPass', 'xdpDrop', 'allocations', 'permissions', 'channels', 'relayRefused', 'relayDropped', 'responses', 'linkQueue', 'linkDropped', 'mapEntries', 'mapCapacity', 'firezoneEbpfBytes', 'firezoneUserspaceBytes']) {
    assert.ok(keys.has(key as never), `the dashboard shows ${INSTRUMENTS[key as keyof typeof INSTRUMENTS].name}`);
  }
});
