// Firezone's relay exports data_relayed_ebpf_bytes and
// data_relayed_userspace_bytes; turnpike exports both names too, so
// dashboards built for Firezone keep working. Each must equal the sum of
// turnpike.relayed.bytes over its datapath, through kernel resets and relay
// restarts alike (both come from the same accumulated counters).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerStats } from '../../src/shared/stats.ts';
import { metricsBehindAdmin } from './metrics-admin.ts';

const flow = (packets: number, bytes: number) => ({ packets, bytes });
const relayStats = (toPeer: number, toClient: number): ServerStats => ({
  allocations: 1,
  permissions: 1,
  channels: 1,
  relayed: { toPeer: flow(1, toPeer), toClient: flow(1, toClient) },
  relayedByFamily: { ipv4: { toPeer: flow(1, toPeer), toClient: flow(1, toClient) }, ipv6: { toPeer: flow(0, 0), toClient: flow(0, 0) } },
  responses: {},
  dropped: {},
});

/** Sample lines of `name` (with or without labels) -> value. */
function samples(text: string, name: string): { labels: string; value: number }[] {
  return text.split('\n').flatMap((line) => {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    return m && m[1] === name ? [{ labels: m[2] ?? '', value: Number(m[3]) }] : [];
  });
}

const sumOf = (text: string, name: string, datapath: string) =>
  samples(text, name).filter((s) => s.labels.includes(`datapath="${datapath}"`)).reduce((a, s) => a + s.value, 0);

test('data_relayed_ebpf_bytes and data_relayed_userspace_bytes equal turnpike.relayed.bytes per datapath', async () => {
  const { metrics, scrape } = await metricsBehindAdmin();

  // Before any traffic both exist, at 0.
  let text = await scrape();
  assert.deepEqual(samples(text, 'data_relayed_ebpf_bytes_total').map((s) => s.value), [0]);
  assert.deepEqual(samples(text, 'data_relayed_userspace_bytes_total').map((s) => s.value), [0]);

  // Kernel: two paths of one direction/family and one of another; then the
  // program is reloaded (counters from zero) and counts 50 more.
  metrics.onKernelCounters({ paths: { chan_to_udp_44: { packets: 3n, bytes: 300n }, chan_to_udp_64: { packets: 1n, bytes: 40n }, udp_to_chan_44: { packets: 2n, bytes: 200n } }, reasons: {} });
  metrics.kernelReset();
  metrics.onKernelCounters({ paths: { udp_to_chan_66: { packets: 1n, bytes: 50n } }, reasons: {} });
  // Relay: 70 + 80, restarts, then 5 + 6.
  metrics.onRelayStats(relayStats(70, 80));
  metrics.relayDisconnected();
  metrics.onRelayStats(relayStats(5, 6));

  text = await scrape();
  const ebpf = samples(text, 'data_relayed_ebpf_bytes_total');
  const userspace = samples(text, 'data_relayed_userspace_bytes_total');
  assert.equal(ebpf.length, 1);
  assert.equal(userspace.length, 1);
  const ownLabels = (labels: string) => [...labels.matchAll(/(\w+)="/g)].map((m) => m[1]).filter((k) => !k!.startsWith('otel_scope_'));
  assert.deepEqual(ownLabels(ebpf[0]!.labels), [], 'no attributes of its own');
  assert.deepEqual(ownLabels(userspace[0]!.labels), []);
  assert.equal(ebpf[0]!.value, 300 + 40 + 200 + 50);
  assert.equal(userspace[0]!.value, 70 + 80 + 5 + 6);
  assert.equal(ebpf[0]!.value, sumOf(text, 'turnpike_relayed_bytes_total', 'xdp'));
  assert.equal(userspace[0]!.value, sumOf(text, 'turnpike_relayed_bytes_total', 'userspace'));
  assert.match(text, /^# TYPE data_relayed_ebpf_bytes_total counter$/m);
  assert.match(text, /^# TYPE data_relayed_userspace_bytes_total counter$/m);
});
