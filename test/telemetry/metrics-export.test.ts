// Counter values fed in (kernel snapshots, relay stats) come out exactly,
// both over OTLP/gRPC to an in-test collector and on GET /metrics.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createLogHub } from '../../src/shared/logger.ts';
import { createMetrics } from '../../src/telemetry/metrics.ts';
import { startAdmin } from '../../src/sidecar/admin.ts';
import { startOtlpCollector, pointValue, type DecodedExport } from '../helpers/otlp-collector.ts';
import type { ServerStats } from '../../src/relay/server/types.ts';
import { sink } from './sink.ts';

const relayStats = (over: Partial<ServerStats> & { toPeer?: [number, number]; toClient?: [number, number] } = {}): ServerStats => ({
  allocations: over.allocations ?? 2,
  permissions: over.permissions ?? 3,
  channels: over.channels ?? 1,
  relayed: {
    toPeer: { packets: over.toPeer?.[0] ?? 7, bytes: over.toPeer?.[1] ?? 700 },
    toClient: { packets: over.toClient?.[0] ?? 8, bytes: over.toClient?.[1] ?? 800 },
  },
  responses: over.responses ?? { 'allocate:success': 4, 'allocate:401': 5 },
  // Not a reason this version declares (a newer relay's): exported all the same, under the label cap.
  dropped: over.dropped ?? ({ malformed: 1 } as ServerStats['dropped']),
});

function promValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    const body = line.slice(name.length + 1, line.lastIndexOf('}'));
    const got = Object.fromEntries([...body.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v) && Object.keys(labels).length === Object.keys(got).filter((k) => !k.startsWith('otel_')).length) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return undefined;
}

test('OTLP export and /metrics report the counters fed in, per datapath, exactly', async () => {
  const collector = await startOtlpCollector();
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never });
  const metrics = createMetrics({
    version: '9.9.9',
    instanceId: '11111111-2222-4333-8444-555555555555',
    otlpEndpoint: collector.url,
    exportIntervalMs: 200,
   
    log: hub.get('metrics'),
  });
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, logHub: hub, metrics, ready: () => ({ ready: true, reasons: [] }), status: () => ({}) });
  after(async () => {
    await admin.close();
    await metrics.shutdown();
    await collector.close();
  });

  // Two kernel snapshots (cumulative): the second's values are what count.
  metrics.onKernelCounters({ paths: { chan_to_udp_44: { packets: 1n, bytes: 100n } }, reasons: { pass_stun: 1n } });
  metrics.onKernelCounters({
    paths: { chan_to_udp_44: { packets: 10n, bytes: 1000n }, udp_to_chan_46: { packets: 4n, bytes: 400n }, chan_to_chan_66: { packets: 2, bytes: 20 } },
    reasons: { pass_stun: 6n, pass_no_binding: 2n, drop_adjust_head: 3n, bogus_name: 9n },
  });
  // The relay counts 7/700 to peers, restarts, and counts 2/200 more: 9/900 in all.
  metrics.onRelayStats(relayStats());
  metrics.onRelayStats(relayStats({ toPeer: [2, 200], toClient: [1, 100], responses: { 'allocate:success': 1 }, dropped: {} }));
  metrics.onMapStats({ tp_chan_to_peer: { entries: 5, capacity: 65536 } });
  metrics.onLinkStats({ queueDepth: 4, droppedFrames: 6 });

  const hasAll = (e: DecodedExport) =>
    pointValue(e, 'turnpike.relayed.bytes', { datapath: 'userspace', direction: 'to_peer' }) === 900 &&
    pointValue(e, 'turnpike.relayed.bytes', { datapath: 'xdp', direction: 'to_peer', family: 'ipv4' }) === 1000;
  const e = await collector.waitFor(hasAll);

  assert.equal(e.resource['service.name'], 'turnpike-sidecar');
  assert.equal(e.resource['service.version'], '9.9.9');
  assert.equal(e.resource['service.instance.id'], '11111111-2222-4333-8444-555555555555');
  assert.equal(typeof e.resource['host.name'], 'string');
  const bytes = e.metrics.find((m) => m.name === 'turnpike.relayed.bytes')!;
  assert.equal(bytes.unit, 'By');
  assert.equal(bytes.kind, 'sum');
  assert.equal(bytes.monotonic, true);
  const expect: [string, Record<string, string>, number][] = [
    ['turnpike.relayed.bytes', { datapath: 'xdp', direction: 'to_peer', family: 'ipv4' }, 1000],
    ['turnpike.relayed.packets', { datapath: 'xdp', direction: 'to_peer', family: 'ipv4' }, 10],
    ['turnpike.relayed.bytes', { datapath: 'xdp', direction: 'to_client', family: 'ipv6' }, 400],
    ['turnpike.relayed.packets', { datapath: 'xdp', direction: 'channel_to_channel', family: 'ipv6' }, 2],
    ['turnpike.relayed.bytes', { datapath: 'userspace', direction: 'to_peer' }, 900],
    ['turnpike.relayed.packets', { datapath: 'userspace', direction: 'to_peer' }, 9],
    ['turnpike.relayed.bytes', { datapath: 'userspace', direction: 'to_client' }, 900],
    ['turnpike.xdp.passed', { reason: 'stun' }, 6],
    ['turnpike.xdp.passed', { reason: 'no_binding' }, 2],
    ['turnpike.xdp.dropped', { reason: 'adjust_head' }, 3],
    ['turnpike.responses', { method: 'allocate', code: 'success' }, 5],
    ['turnpike.responses', { method: 'allocate', code: '401' }, 5],
    ['turnpike.relay.dropped', { reason: 'malformed' }, 1],
    ['turnpike.allocations.active', {}, 2],
    ['turnpike.map.entries', { map: 'tp_chan_to_peer' }, 5],
    ['turnpike.map.capacity', { map: 'tp_chan_to_peer' }, 65536],
    ['turnpike.link.queue_depth', {}, 4],
    ['turnpike.link.dropped_frames', {}, 6],
  ];
  for (const [name, attrs, v] of expect) assert.equal(pointValue(e, name, attrs), v, `${name} ${JSON.stringify(attrs)}`);
  // No per-user or per-address attribute anywhere.
  const keys = new Set(e.metrics.flatMap((m) => m.points.flatMap((p) => Object.keys(p.attributes))));
  // v8js.gc.type appears only if this process happened to collect garbage during the test.
  keys.delete('v8js.gc.type');
  assert.deepEqual([...keys].sort(), ['code', 'datapath', 'direction', 'family', 'map', 'method', 'process', 'reason', 'transport'].sort());

  const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  assert.equal(promValue(text, 'turnpike_relayed_bytes_total', { datapath: 'xdp', direction: 'to_peer', family: 'ipv4', transport: 'udp' }), 1000);
  assert.equal(promValue(text, 'turnpike_relayed_packets_total', { datapath: 'userspace', direction: 'to_peer' }), 9);
  assert.equal(promValue(text, 'turnpike_xdp_dropped_total', { reason: 'adjust_head' }), 3);
});

/** Metrics (no export) served on an admin server's /metrics, closed after the file's tests. */
async function servedMetrics() {
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never });
  const metrics = createMetrics({ version: '1', instanceId: 'i', log: hub.get('metrics'), bpfLog: hub.get('bpf') });
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, logHub: hub, metrics, ready: () => ({ ready: true, reasons: [] }), status: () => ({}) });
  after(async () => {
    await admin.close();
    await metrics.shutdown();
  });
  return { metrics, admin, out };
}

test('relayDisconnected: gauges drop to 0 and the next relay counts from zero', async () => {
  const { metrics, admin } = await servedMetrics();
  metrics.onRelayStats(relayStats({ toPeer: [3, 30] }));
  metrics.relayDisconnected();
  // The new relay has already counted 5 packets (more than the old one's 3): all 5 are new.
  metrics.onRelayStats(relayStats({ toPeer: [5, 50], allocations: 0 }));
  const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  assert.equal(promValue(text, 'turnpike_relayed_packets_total', { datapath: 'userspace', direction: 'to_peer' }), 8);
  assert.equal(promValue(text, 'turnpike_allocations_active', {}), 0);
});

test('lost perf events are counted and warned; a kernel drop diagnostic warns with its reason', async () => {
  const { metrics, admin, out } = await servedMetrics();
  metrics.onPerfLost(7n, 1);
  metrics.onPerfLost(3, 0);
  metrics.onDiagEvent({ kind: 1, reason: 15, ret: -22, path: 0, cpu: 1 }); // TP_DIAG_DROP, TP_DROP_ADJUST_HEAD
  metrics.onDiagEvent({ kind: 'drop', reason: 'drop_bounds', ret: 0 });
  const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  assert.equal(promValue(text, 'turnpike_perf_events_lost_total', {}), 10);
  assert.equal(promValue(text, 'turnpike_xdp_diagnostics_total', { kind: 'drop', reason: 'adjust_head' }), 1);
  assert.equal(promValue(text, 'turnpike_xdp_diagnostics_total', { kind: 'drop', reason: 'bounds' }), 1);
  const lost = out.find((l) => l.module === 'bpf' && /events lost/.test(l.msg));
  assert.equal(lost?.level, 40);
  assert.equal(lost?.lost, 7);
  const drop = out.find((l) => l.module === 'bpf' && l.reason === 'drop_adjust_head');
  assert.equal(drop?.level, 40);
  assert.equal(drop?.ret, -22);
  assert.equal(drop?.path, 'chan_to_udp_44');
  assert.match(drop?.msg, /adjust_head/);
});

test('the kernel poll reads on its interval and survives a failing reader', async () => {
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never });
  const metrics = createMetrics({ version: '1', instanceId: 'i', log: hub.get('metrics'), bpfLog: hub.get('bpf') });
  after(() => metrics.shutdown());
  let n = 0;
  const poll = metrics.setKernelReader(async () => {
    n++;
    if (n === 2) throw new Error('map gone');
    return { paths: { chan_to_udp_66: { packets: BigInt(n), bytes: BigInt(n * 10) } }, reasons: {} };
  }, 20);
  while (n < 4) await new Promise((r) => setTimeout(r, 10));
  poll.stop();
  assert.ok(out.find((l) => l.module === 'bpf' && l.level === 40 && /kernel counters failed/.test(l.msg)));
  assert.ok(out.find((l) => l.module === 'bpf' && /readable again/.test(l.msg)));
});

test('limit refusals, reserved ports and writes refused by a full kernel map are labelled counts on /metrics', async () => {
  const { metrics, admin } = await servedMetrics();
  metrics.onRelayStats({ ...relayStats(), reservations: 3, refused: { 'channels-per-user': 2, 'allocations-per-user': 1 } });
  metrics.onRelayStats({ ...relayStats(), reservations: 1, refused: { 'channels-per-user': 5, 'allocations-per-user': 1 } });
  metrics.onMapStats({ tp_chan_to_peer: { entries: 2, capacity: 2, full: true, refusedWrites: 4 }, tp_peer_to_chan: { entries: 2, capacity: 2, full: true, refusedWrites: 4 } });
  const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  assert.equal(promValue(text, 'turnpike_relay_refused_total', { reason: 'channels-per-user' }), 5);
  assert.equal(promValue(text, 'turnpike_relay_refused_total', { reason: 'allocations-per-user' }), 1);
  assert.equal(promValue(text, 'turnpike_reservations_active', {}), 1);
  assert.equal(promValue(text, 'turnpike_map_refused_writes_total', { map: 'tp_chan_to_peer' }), 4);
  assert.equal(promValue(text, 'turnpike_map_entries', { map: 'tp_peer_to_chan' }), 2);
});

test('client transport: allocations, userspace relaying and errors by udp/tcp/tls; TCP/TLS connections accepted, open and closed by reason', async () => {
  const { metrics, admin } = await servedMetrics();
  const flow = (p: number) => ({ toPeer: { packets: p, bytes: p * 100 }, toClient: { packets: p, bytes: p * 10 } });
  const zero = flow(0);
  const byTransport = (n: number) => ({
    udp: { allocations: 1, relayedByFamily: { ipv4: flow(n), ipv6: zero }, errors: n },
    tcp: { allocations: 2, relayedByFamily: { ipv4: flow(2 * n), ipv6: zero }, errors: 0 },
    tls: { allocations: 3, relayedByFamily: { ipv4: zero, ipv6: flow(3 * n) }, errors: 1 },
  });
  const streams = (n: number) => ({ open: { tcp: 2, tls: 3 }, accepted: { tcp: 4 * n, tls: 3 }, closed: { 'tcp:garbage': n, 'tls:handshake-timeout': 1, 'bogus key': 9 }, writeDropped: { tcp: 0, tls: n } });
  metrics.onRelayStats({ ...relayStats(), byTransport: byTransport(1), streams: streams(1) });
  metrics.onRelayStats({ ...relayStats(), byTransport: byTransport(2), streams: streams(2) });
  metrics.onKernelCounters({ paths: { chan_to_udp_44: { packets: 5n, bytes: 500n } }, reasons: {} });
  const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  for (const [t, n] of [['udp', 1], ['tcp', 2], ['tls', 3]] as const) assert.equal(promValue(text, 'turnpike_allocations_active', { transport: t }), n);
  assert.equal(promValue(text, 'turnpike_relayed_packets_total', { datapath: 'userspace', direction: 'to_peer', family: 'ipv4', transport: 'tcp' }), 4);
  assert.equal(promValue(text, 'turnpike_relayed_bytes_total', { datapath: 'userspace', direction: 'to_client', family: 'ipv6', transport: 'tls' }), 60);
  assert.equal(promValue(text, 'turnpike_relayed_bytes_total', { datapath: 'xdp', direction: 'to_peer', family: 'ipv4', transport: 'udp' }), 500);
  assert.equal(promValue(text, 'turnpike_responses_errors_total', { transport: 'udp' }), 2);
  assert.equal(promValue(text, 'turnpike_responses_errors_total', { transport: 'tls' }), 1);
  assert.equal(promValue(text, 'turnpike_stream_connections_active', { transport: 'tls' }), 3);
  assert.equal(promValue(text, 'turnpike_stream_connections_accepted_total', { transport: 'tcp' }), 8);
  assert.equal(promValue(text, 'turnpike_stream_connections_closed_total', { transport: 'tcp', reason: 'garbage' }), 2);
  assert.equal(promValue(text, 'turnpike_stream_connections_closed_total', { transport: 'tls', reason: 'handshake-timeout' }), 1);
  assert.ok(!text.includes('bogus'), 'a key that is not transport:reason is not a label');
  assert.equal(promValue(text, 'turnpike_stream_write_dropped_total', { transport: 'tls' }), 2);
});
