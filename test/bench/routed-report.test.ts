// The bench's routed topology and GC figures, as far as they are arithmetic
// and text: --topology parsing, coturn's allowed-peer range for the routed
// topology's /48, GC ms/s from two /metrics readings, and the report's routed
// tables (no RTT, "vs forwarding hop") and reference rows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarizeCase } from '../../bench/lib/aggregate.ts';
import type { ThroughputRun } from '../../bench/lib/measure.ts';
import { checkTargets } from '../../bench/lib/targets.ts';
import { renderMarkdown, type BenchResults, type ContenderResult, type TopologyResults } from '../../bench/lib/report.ts';
import { gcMsPerSecond, parseGcSeconds } from '../../bench/lib/gc.ts';
import { parseTopologies } from '../../bench/lib/topology.ts';
import { cidrRange } from '../../bench/contenders/coturn.ts';

function run(processUs: number, softirqUs: number, relayedPps: number, gcMs?: number): ThroughputRun {
  return {
    offeredPps: relayedPps, relayedPps, lossPct: 0, generatorCapped: true,
    processUsPerPkt: processUs, softirqUsPerPkt: softirqUs, totalUsPerPkt: processUs + softirqUs, processByRole: {},
    relayRcvbufErrors: 0, sinkRcvbufErrors: 0, peerCsumErrors: 0, sent: 0, relayed: 0, elapsedSeconds: 5, cpuWallSeconds: 5.25,
    backgroundSoftirqPerSecond: 0, softirqRawUsPerPkt: softirqUs,
    ...(gcMs === undefined ? {} : { gcMsPerSecond: gcMs }),
  };
}

test('--topology: bridge, routed, or both in run order; anything else is refused', () => {
  assert.deepEqual(parseTopologies('both'), ['bridge', 'routed']);
  assert.deepEqual(parseTopologies('routed'), ['routed']);
  assert.throws(() => parseTopologies('mesh'), /bridge, routed or both/);
});

test('coturn\'s allowed-peer range covers the whole CIDR, /24 and the routed topology\'s /48 alike', () => {
  assert.equal(cidrRange('10.70.3.0/24'), '10.70.3.0-10.70.3.255');
  assert.equal(cidrRange('10.70.3.128/26'), '10.70.3.128-10.70.3.191');
  assert.equal(cidrRange('fd00:1:2::/48'), 'fd00:1:2::-fd00:1:2:ffff:ffff:ffff:ffff:ffff');
});

test('GC ms/s: the _sum series per process from /metrics, differenced over the wall time; a restarted process counts from zero', () => {
  const text = (sidecar: number, relay: number) => [
    '# TYPE v8js_gc_duration histogram',
    `v8js_gc_duration_bucket{v8js_gc_type="minor",process="sidecar",le="0.001"} 4`,
    `v8js_gc_duration_sum{v8js_gc_type="minor",process="sidecar",otel_scope_name="turnpike-sidecar"} ${sidecar}`,
    `v8js_gc_duration_sum{v8js_gc_type="major",process="sidecar"} 0.5`,
    `v8js_gc_duration_count{v8js_gc_type="minor",process="relay"} 9`,
    `v8js_gc_duration_sum{v8js_gc_type="minor",process="relay"} ${relay}`,
  ].join('\n');
  const a = parseGcSeconds(text(0.1, 0.2));
  assert.deepEqual(a, { sidecar: 0.6, relay: 0.2 });
  const g = gcMsPerSecond(a, parseGcSeconds(text(0.2, 0.05)), 2)!;
  assert.ok(Math.abs(g.byProcess.sidecar! - 50) < 1e-9);
  assert.ok(Math.abs(g.byProcess.relay! - 25) < 1e-9, 'the relay restarted: 0.05 s since');
  assert.ok(Math.abs(g.total - 75) < 1e-9);
  assert.equal(gcMsPerSecond(a, parseGcSeconds('turnpike_x 1'), 2), undefined, 'no GC series: no figure');
});

function routedResults(): BenchResults {
  const contender = (name: string, runs: ThroughputRun[]): ContenderResult => ({ name, describe: name, status: 'ok', sizes: [summarizeCase(4, 100, runs, [], 2)] });
  const routed: TopologyResults = {
    baseline: { status: 'ok', sizes: [summarizeCase(4, 100, [run(0, 2, 400_000)], [])] },
    forwardHop: { status: 'ok', sizes: [summarizeCase(4, 100, [run(0, 2.5, 200_000)], [], 2)] }, // own cost 0.5
    contenders: [
      contender('coturn', [run(6, 4, 100_000)]), // own cost 8
      contender('turnpike-xdp-native', [run(0.2, 2.6, 300_000, 0.4)]), // own cost 0.8: ×0.1 coturn, ×1.6 the hop
      contender('turnpike-userspace', [run(9, 4, 90_000, 3.25)]),
    ],
  };
  const r: BenchResults = {
    startedAt: '2026-01-01T00:00:00Z', command: 'npm run bench -- --topology routed',
    machine: { cpu: 'Test CPU', cores: 2, kernel: '6.18.0', node: 'v20.20.2', coturn: '4.6.1', memoryGiB: 8, loadAtStart: 0.1, loadAtEnd: 0.2 },
    params: { cases: [{ family: 4, size: 100 }], runs: 1, seconds: 5, flows: 4, rttRate: 10000, controlCount: 10, memoryAllocations: 10 },
    topologies: ['routed'], routed, contenders: [], mapMemory: [], targets: [],
  };
  r.targets = checkTargets(r);
  return r;
}

test('the routed report: one-way tables without RTT, GC ms/s, own cost against coturn and against the forwarding hop', () => {
  const r = routedResults();
  const md = renderMarkdown(r);
  const lines = md.split('\n');
  assert.ok(lines.includes('## Routed, one-way: IPv4/100-byte payload'));
  assert.ok(!lines.some((l) => l.startsWith('## IPv4/100-byte payload')), 'no bridge tables when the bridge did not run');
  assert.ok(!md.includes('## Control plane and memory'), 'no control-plane table without bridge contenders');
  const header = lines.find((l) => l.startsWith('| contender | offered pps'))!;
  assert.doesNotMatch(header, /RTT/);
  assert.match(header, /GC ms\/s/);
  assert.match(lines.find((l) => l.startsWith('| turnpike-userspace | 90.0k'))!, /\| 3\.25 \|$/);
  assert.match(lines.find((l) => l.startsWith('| coturn | 100.0k'))!, /\| — \|$/, 'no GC figure for coturn');
  const xdp = lines.find((l) => l.startsWith('| turnpike-xdp-native | 0.20'))!;
  assert.match(xdp, /\*\*0\.80 ×0\.10\*\* \| ×1\.60 \|/);
  assert.match(lines.find((l) => l.startsWith('| kernel forwarding hop (reference) | —'))!, /\| 0\.50 \| ×1 \|/);
  const row = r.targets.find((t) => t.what.startsWith('routed, one-way, forwarding off: turnpike-xdp-native IPv4/100 B'))!;
  assert.equal(row.reference, true);
  assert.equal(row.value, '0.80 µs: ×0.100 coturn\'s (8.00 µs), ×1.600 the hop\'s (0.50 µs)');
});
