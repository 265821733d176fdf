// The benchmark's arithmetic and report: figures net of the no-relay
// baseline, targets with margins, and a markdown that states its machine,
// command and column meanings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarizeCase } from '../../bench/lib/aggregate.ts';
import type { ThroughputRun } from '../../bench/lib/measure.ts';
import { checkTargets, marginAtLeast, marginAtMost } from '../../bench/lib/targets.ts';
import { renderMarkdown, type BenchResults, type ContenderResult } from '../../bench/lib/report.ts';

function run(processUs: number, softirqUs: number, relayedPps: number, lossPct = 0, roles: Record<string, number> = {}): ThroughputRun {
  return {
    offeredPps: relayedPps / (1 - lossPct / 100), relayedPps, lossPct, generatorCapped: lossPct < 0.5,
    processUsPerPkt: processUs, softirqUsPerPkt: softirqUs, totalUsPerPkt: processUs + softirqUs, processByRole: roles,
    relayRcvbufErrors: 0, sinkRcvbufErrors: 0, peerCsumErrors: 0, sent: 0, relayed: 0, elapsedSeconds: 5, cpuWallSeconds: 5.25,
    backgroundSoftirqPerSecond: 0.01, softirqRawUsPerPkt: softirqUs + 0.1,
  };
}

test('net figures subtract the baseline softirq per run; pps per CPU-second is the inverse of the own cost', () => {
  const s = summarizeCase(4, 100, [run(3, 4, 100_000), run(3, 5, 110_000), run(4, 4, 90_000)], [], 1);
  assert.deepEqual(s.netSoftirqUs, { median: 3, min: 3, max: 4, n: 3 });
  assert.deepEqual(s.netTotalUs, { median: 7, min: 6, max: 7, n: 3 });
  assert.equal(s.ppsPerCpuSecond!.median, 1e6 / 7);
  assert.equal(s.baselineSoftirqUs, 1);
  // No baseline: raw figures only.
  const raw = summarizeCase(4, 100, [run(3, 4, 100_000)], []);
  assert.equal(raw.netTotalUs, undefined);
  assert.equal(raw.totalUs!.median, 7);
});

test('a non-positive own cost (tick noise) is left out of pps per CPU-second instead of dividing by it', () => {
  const s = summarizeCase(6, 100, [run(0, 1, 300_000), run(0, 1.5, 300_000)], [], 1.2);
  assert.equal(s.ppsPerCpuSecond!.n, 1);
  assert.ok(Math.abs(s.ppsPerCpuSecond!.median - 1e6 / 0.3) < 1e-6);
});

test('generator-capped only when every run kept up; process CPU is summarised per role', () => {
  const s = summarizeCase(4, 100, [run(1, 1, 1000, 0, { relay: 0.5, sidecar: 0.5 }), run(1, 1, 1000, 2, { relay: 0.7, sidecar: 0.3 })], []);
  assert.equal(s.generatorCapped, false);
  assert.equal(s.processByRole!.relay!.median, 0.6);
  assert.equal(summarizeCase(4, 100, [run(1, 1, 1000, 0.1)], []).generatorCapped, true);
});

test('margins say how far under, over, above or short of the limit', () => {
  assert.deepEqual(marginAtMost(0.05, 0.1), { verdict: 'PASS', margin: '50% under the limit' });
  assert.deepEqual(marginAtMost(0.35, 0.1), { verdict: 'MISS', margin: '3.5× the limit' });
  assert.deepEqual(marginAtLeast(1.2, 1), { verdict: 'PASS', margin: '20% above the limit' });
  assert.deepEqual(marginAtLeast(0.4, 0.5), { verdict: 'MISS', margin: '20% short of the limit' });
});

function results(): BenchResults {
  const contender = (name: string, runs: ThroughputRun[]): ContenderResult => ({
    name, describe: `${name} under test`, status: 'ok', sizes: [summarizeCase(4, 100, runs, [], 2)],
    control: { allocationsPerSecond: 1000, bindsPerSecond: 2000, count: 10, concurrency: 4, failed: 1, failures: { 'allocate: TURN 3 failed: 437 Allocation Mismatch': 1 }, retransmits: 3 },
  });
  const r: BenchResults = {
    startedAt: '2026-01-01T00:00:00Z', command: 'npm run bench -- --quick',
    machine: { cpu: 'Test CPU', cores: 2, kernel: '6.18.0', node: 'v20.20.2', coturn: '4.6.1', memoryGiB: 8, loadAtStart: 0.1, loadAtEnd: 0.2 },
    params: { cases: [{ family: 4, size: 100 }], runs: 1, seconds: 5, flows: 4, rttRate: 10000, controlCount: 10, memoryAllocations: 10 },
    baseline: { status: 'ok', sizes: [summarizeCase(4, 100, [run(0, 2, 400_000)], [])] },
    contenders: [
      contender('coturn', [run(4, 6, 150_000, 40)]), // own cost 4 + (6 - 2) = 8
      contender('turnpike-xdp-native', [run(0.1, 2.5, 300_000)]), // own cost 0.1 + 0.5 = 0.6: ×0.075
      contender('turnpike-userspace', [run(10, 8, 60_000, 80)]), // ×0.4 of coturn's pps
    ],
    mapMemory: [{ capacity: 65_536, filled: 65_536, bindingBytes: 14 * 1048576, totalBytes: 15 * 1048576, perMap: [], fillSeconds: 1 }],
    targets: [],
  };
  r.targets = checkTargets(r);
  return r;
}

test('the XDP CPU target is judged on the net figure, with the raw one alongside for reference', () => {
  const t = results().targets;
  const net = t.find((x) => x.what.startsWith('turnpike-xdp-native IPv4/100 B: relay\'s own CPU'))!;
  assert.equal(net.verdict, 'PASS');
  assert.match(net.value, /×0\.075/);
  assert.equal(net.margin, '25% under the limit');
  const raw = t.find((x) => x.what.includes('RAW'))!;
  assert.equal(raw.reference, true);
  assert.equal(raw.verdict, 'MISS'); // 2.6 vs 10: ×0.26
  const pps = t.find((x) => x.what.startsWith('turnpike-xdp-native IPv4/100 B: relayed pps'))!;
  assert.equal(pps.verdict, 'PASS');
  const us = t.find((x) => x.what.startsWith('turnpike-userspace'))!;
  assert.equal(us.verdict, 'MISS');
  assert.equal(us.margin, '20% short of the limit');
  assert.equal(t.find((x) => x.what.startsWith('XDP binding maps'))!.verdict, 'PASS');
});

test('XDP below coturn while generator-capped is not a MISS: its ceiling was not reached', () => {
  const r = results();
  r.contenders[1]!.sizes = [summarizeCase(4, 100, [run(0.1, 2.5, 100_000)], [], 2)];
  const pps = checkTargets(r).find((x) => x.what.startsWith('turnpike-xdp-native IPv4/100 B: relayed pps'))!;
  assert.equal(pps.verdict, 'n/a');
  assert.match(pps.value, /generator-capped/);
});

test('a net cost at or below the baseline is noise, never a PASS', () => {
  const r = results();
  r.contenders[1]!.sizes = [summarizeCase(4, 100, [run(0.1, 1.5, 300_000)], [], 2)]; // own cost 0.1 + (1.5 - 2) < 0
  const t = checkTargets(r).find((x) => x.what.startsWith('turnpike-xdp-native IPv4/100 B: relay\'s own CPU'))!;
  assert.equal(t.verdict, 'n/a');
  assert.match(t.margin, /noise/);
});

test('the markdown stands alone: machine, load, command, baseline row, column legend, targets with margins', () => {
  const md = renderMarkdown(results());
  for (const needle of ['Test CPU, 2 cores', 'Linux 6.18.0', '4.6.1', '0.10 at start', '`npm run bench -- --quick`', '| no relay (baseline) |',
    'How it is measured', 'relay\'s own cost', '| background softirq | 10–10 ms per second', 'pps per CPU-second', 'generator-capped', '25% under the limit', '(MISS) for reference',
    '1 (1× allocate: TURN 3 failed: 437 Allocation Mismatch) / 3']) {
    assert.ok(md.includes(needle), `missing: ${needle}`);
  }
  // Ratios against coturn beside the figures, none on coturn's own row.
  const xdpRow = md.split('\n').find((l) => l.startsWith('| turnpike-xdp-native | 0.10'))!;
  assert.match(xdpRow, /\*\*0\.60 ×0\.075\*\*/);
  const coturnRow = md.split('\n').find((l) => l.startsWith('| coturn | 4.00'))!;
  assert.doesNotMatch(coturnRow, /×/);
});

test('perf report lines are grouped by this run\'s threads, idle left out, symbols summed across a group\'s threads', async () => {
  const { parsePerfReport } = await import('../../bench/lib/profile.ts');
  const text = [
    '    30.00%        0:swapper          [k] pv_native_safe_halt',
    '     5.00%      101:flood            [k] veth_xmit',
    '     4.00%      102:flood            [k] veth_xmit',
    '     3.00%      999:flood            [k] veth_xmit', // another helper's flood: other
    '     2.00%      201:turnserver       [.] _int_malloc',
    '     1.00%       15:ksoftirqd/1      [k] veth_poll',
    '     0.50%      301:sink             [.] main',
    'garbage line',
  ].join('\n');
  const p = parsePerfReport(text, { relay: new Set([201]), generator: new Set([101, 102]), sink: new Set([301]) });
  assert.equal(p.idlePct, 30);
  assert.deepEqual(p.groups, { relay: 2, generator: 9, sink: 0.5, 'kernel threads': 1, other: 3 });
  assert.deepEqual(p.top[0], { pct: 9, group: 'generator', space: 'kernel', symbol: 'veth_xmit' });
  assert.deepEqual(p.top.map((t) => t.symbol), ['veth_xmit', '_int_malloc', 'veth_poll', 'main']);
});
