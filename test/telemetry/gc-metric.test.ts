// GC pauses as the OpenTelemetry histogram v8js.gc.duration (by
// v8js.gc.type and process): the sidecar's own from perf_hooks, the relay's
// from the totals in its COUNTERS frames, turned back into records that keep
// count, sum and buckets exact, through a relay restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addGc, gcBucketOf, gcDeltas, GC_BUCKETS, type GcTotals } from '../../src/shared/gc.ts';
import type { ServerStats } from '../../src/shared/stats.ts';
import { metricsBehindAdmin } from './metrics-admin.ts';

test('a duration falls in the bucket OpenTelemetry counts it in (upper bound inclusive), above the last in the overflow bucket', () => {
  assert.equal(gcBucketOf(0), 0);
  assert.equal(gcBucketOf(GC_BUCKETS[0]), 0);
  assert.equal(gcBucketOf(0.0011), 3);
  assert.equal(gcBucketOf(5), GC_BUCKETS.length);
});

test('deltas between totals: per type and bucket, the count and the mean duration; a decrease is a restart', () => {
  const a: GcTotals = {};
  addGc(a, 'minor', 0.0003);
  addGc(a, 'minor', 0.0004);
  const b: GcTotals = structuredClone(a);
  addGc(b, 'minor', 0.0002);
  addGc(b, 'major', 0.003);
  addGc(b, 'major', 0.004);
  const d = gcDeltas(a, b);
  assert.deepEqual(d.map((x) => [x.type, x.n]), [['major', 2], ['minor', 1]]);
  assert.ok(Math.abs(d[0]!.seconds - 0.0035) < 1e-12 && gcBucketOf(d[0]!.seconds) === gcBucketOf(0.003));
  assert.ok(Math.abs(d[1]!.seconds - 0.0002) < 1e-12);
  assert.deepEqual(gcDeltas(b, b), [], 'nothing new, nothing recorded');
  const restarted: GcTotals = {};
  addGc(restarted, 'minor', 0.0003);
  assert.deepEqual(gcDeltas(b, restarted).map((x) => [x.type, x.n]), [['minor', 1]], 'a fresh process: its totals are all new');
});

const relayStats = (gc: GcTotals): ServerStats & { gc: GcTotals } => ({
  allocations: 0, permissions: 0, channels: 0,
  relayed: { toPeer: { packets: 0, bytes: 0 }, toClient: { packets: 0, bytes: 0 } },
  responses: {}, dropped: {}, gc,
});

/** `v8js_gc_duration*` samples of one series kind (_count, _sum) for a process, by gc type. */
function series(text: string, kind: 'count' | 'sum', process: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^v8js_gc_duration(?:_seconds)?_(count|sum)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== kind || !m[2]!.includes(`process="${process}"`)) continue;
    const type = /v8js_gc_type="([^"]+)"/.exec(m[2]!)![1]!;
    out[type] = Number(m[3]);
  }
  return out;
}

test('/metrics has v8js.gc.duration for the sidecar (its own GCs) and the relay (from its counters), exact through a relay restart', async () => {
  const { metrics, scrape } = await metricsBehindAdmin();

  // Garbage enough for a few scavenges in this process: the sidecar's own series.
  let keep: unknown[] = [];
  for (let i = 0; i < 200_000; i++) keep.push({ i, s: `x${i}` });
  keep = [];
  void keep;
  await new Promise((r) => setTimeout(r, 50)); // GC entries are delivered asynchronously

  const relay: GcTotals = {};
  addGc(relay, 'minor', 0.0005);
  addGc(relay, 'minor', 0.0007);
  metrics.onRelayStats(relayStats(relay));
  addGc(relay, 'major', 0.004);
  metrics.onRelayStats(relayStats(relay));
  metrics.onRelayStats(relayStats(relay)); // the same totals again: nothing new
  // The relay restarts: its totals count from zero.
  metrics.relayDisconnected();
  const again: GcTotals = {};
  addGc(again, 'minor', 0.001);
  metrics.onRelayStats(relayStats(again));

  const text = await scrape();
  assert.match(text, /^# TYPE v8js_gc_duration(_seconds)? histogram$/m);
  assert.ok((series(text, 'count', 'sidecar').minor ?? 0) > 0, `the sidecar's own scavenges are there:\n${text.split('\n').filter((l) => l.startsWith('v8js')).join('\n')}`);
  assert.deepEqual(series(text, 'count', 'relay'), { minor: 3, major: 1 });
  const sum = series(text, 'sum', 'relay');
  assert.ok(Math.abs(sum.minor! - 0.0022) < 1e-9 && Math.abs(sum.major! - 0.004) < 1e-9, JSON.stringify(sum));
  assert.match(text, /^v8js_gc_duration(_seconds)?_bucket\{[^}]*process="relay"[^}]*le="0.005"[^}]*\} 1$/m, 'the major GC in the (2 ms, 5 ms] bucket');
});
