// The admin HTTP server: health, readiness, status, metrics, runtime log
// filter; bad requests get 4xx and never take it down.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { createLogHub, type LogHub } from '../../src/shared/logger.ts';
import { createMetrics, type Metrics } from '../../src/telemetry/metrics.ts';
import { startAdmin, statusDocument, type Admin, type Readiness, type SidecarStatus } from '../../src/sidecar/admin.ts';
import { sink, type Sink } from './sink.ts';

let out: Sink;
let hub: LogHub;
let metrics: Metrics;
let admin: Admin;
let readiness: Readiness = { ready: false, reasons: ['relay not connected', 'eBPF required but not loaded'] };
let base: string;

before(async () => {
  out = sink();
  hub = createLogHub({ destination: out.stream as never, filter: 'info' });
  metrics = createMetrics({ version: '1', instanceId: 'i', log: hub.get('metrics') });
  admin = await startAdmin({
    host: '127.0.0.1',
    port: 0,
    logHub: hub,
    metrics,
    ready: async () => readiness,
    status: () => ({ mode: 'xdp', interface: 'veth0', maps: { tp_chan_to_peer: { entries: 1, capacity: 8 } }, counters: { x: 1n } }),
    maxBodyBytes: 256,
  });
  base = `http://127.0.0.1:${admin.port}`;
});

after(async () => {
  await admin.close();
  await metrics.shutdown();
});

const get = (path: string) => fetch(base + path);
const post = (path: string, body: string, type = 'text/plain') => fetch(base + path, { method: 'POST', body, headers: { 'content-type': type } });

test('healthz, readyz (503 with reasons, then 200), status, metrics', async () => {
  assert.equal((await get('/healthz')).status, 200);
  let r = await get('/readyz');
  assert.equal(r.status, 503);
  assert.deepEqual(((await r.json()) as Readiness).reasons, ['relay not connected', 'eBPF required but not loaded']);
  readiness = { ready: true, reasons: [] };
  r = await get('/readyz');
  assert.equal(r.status, 200);
  const status = (await (await get("/status")).json()) as any;
  assert.equal(status.mode, 'xdp');
  assert.equal(status.counters.x, '1');
  metrics.onLinkStats({ queueDepth: 2, droppedFrames: 0 });
  const text = await (await get('/metrics')).text();
  assert.match(text, /^turnpike_link_queue_depth\{[^}]*\} 2$/m);
});

test('a log filter change applies at once, to the named module only', async () => {
  const a = hub.get('bpf');
  const b = hub.get('link');
  a.debug('bpf debug before');
  assert.equal((await (await get('/log')).text()).trim(), 'info');
  const r = await post('/log', 'bpf=debug');
  assert.equal(r.status, 200);
  assert.equal((await r.text()).trim(), 'info,bpf=debug');
  a.debug('bpf debug after');
  b.debug('link debug after');
  assert.ok(!out.find((l) => l.msg === 'bpf debug before'));
  assert.ok(out.find((l) => l.msg === 'bpf debug after' && l.module === 'bpf'));
  assert.ok(!out.find((l) => l.msg === 'link debug after'));
  assert.ok(out.find((l) => l.module === 'admin' && l.msg === 'log filter changed' && l.to === 'info,bpf=debug'));
  // A later module-only change keeps bpf=debug; a full filter replaces it.
  await post('/log', 'link=trace');
  assert.equal((await (await get('/log')).text()).trim(), 'info,bpf=debug,link=trace');
  await post('/log', JSON.stringify({ filter: 'warn' }), 'application/json');
  assert.equal((await (await get('/log')).text()).trim(), 'warn');
  hub.get('bpf').info('bpf info after warn');
  assert.ok(!out.find((l) => l.msg === 'bpf info after warn'));
});

test('a bad filter is a 400 with the reason, and nothing changes', async () => {
  await post('/log', 'info,bpf=debug');
  for (const bad of ['bpf=loud', '', 'a b=info', ',,,']) {
    const r = await post('/log', bad);
    assert.equal(r.status, 400, bad);
    assert.match(await r.text(), /bad log filter/);
  }
  const j = await post('/log', '{not json', 'application/json');
  assert.equal(j.status, 400);
  assert.equal((await (await get('/log')).text()).trim(), 'info,bpf=debug');
});

test('unknown paths 404, wrong methods 405, oversized bodies 413, garbage requests 400; still serving', async () => {
  assert.equal((await get('/nope')).status, 404);
  const m = await fetch(base + '/healthz', { method: 'DELETE' });
  assert.equal(m.status, 405);
  assert.equal(m.headers.get('allow'), 'GET, HEAD');
  assert.equal((await post('/log', 'x'.repeat(10_000))).status, 413);
  const raw = await new Promise<string>((resolve) => {
    const s = connect(admin.port, '127.0.0.1', () => s.write('NOT HTTP AT ALL\r\n\r\n'));
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
  });
  assert.match(raw, /^HTTP\/1.1 400/);
  assert.equal((await get('/healthz')).status, 200);
});

test('a throwing status is a 500 and a throwing readiness check a 503, not a crash', async () => {
  const a2 = await startAdmin({
    host: '127.0.0.1',
    port: 0,
    logHub: hub,
    ready: () => {
      throw new Error('ready broke');
    },
    status: () => {
      throw new Error('status broke');
    },
  });
  try {
    assert.equal((await fetch(`http://127.0.0.1:${a2.port}/status`)).status, 500);
    const r = await fetch(`http://127.0.0.1:${a2.port}/readyz`);
    assert.equal(r.status, 503);
    assert.match(((await r.json()) as Readiness).reasons[0]!, /ready broke/);
    assert.equal((await fetch(`http://127.0.0.1:${a2.port}/metrics`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${a2.port}/healthz`)).status, 200);
  } finally {
    await a2.close();
  }
});

test('the /status document: its fields in order, mode and interface from the eBPF state, bigints as text', async () => {
  const source: SidecarStatus = {
    version: '1.2.3',
    instanceId: 'id-1',
    ebpf: { requested: 'auto', datapath: 'xdp', interface: 'veth0', attachMode: 'native', reason: undefined, relayV4: '10.0.0.1', relayV6: undefined },
    maps: { tp_chan_to_peer: { entries: 1, capacity: 8 }, tp_peer_to_chan: { entries: 1, capacity: 8 } },
    kernel: { paths: [{ path: 'chan_to_udp_44', packets: 3n, bytes: 300n }], reasons: { pass_stun: 2n } },
    sockets: { in: { listen: { packets: 1, bytes: 20 }, allocation: { packets: 0, bytes: 0 } }, out: { listen: { packets: 1, bytes: 32 }, allocation: { packets: 0, bytes: 0 } }, errors: {}, allocationPorts: 0, buffers: { recv: 1, send: 1 } },
    relay: { relayConnected: true, packetsToRelay: 1, packetsFromRelay: 1, droppedNoRelay: 0, droppedBackpressure: 0, portsOpened: 0, portOpenFailures: 0, mapWrites: 0, mapWriteFailures: 0, resyncs: 1, disconnectCleanups: 0 },
    relayCounters: { channels: 1 },
    link: null,
    flags: { 'stream-logs': false },
  };
  const a2 = await startAdmin({ host: '127.0.0.1', port: 0, logHub: hub, ready: () => readiness, status: () => statusDocument(source) });
  try {
    const doc = (await (await fetch(`http://127.0.0.1:${a2.port}/status`)).json()) as any;
    assert.deepEqual(Object.keys(doc), ['version', 'instanceId', 'mode', 'ebpf', 'interface', 'maps', 'kernel', 'sockets', 'relay', 'relayCounters', 'link', 'flags']);
    assert.equal(doc.mode, 'xdp');
    assert.equal(doc.interface, 'veth0');
    assert.deepEqual(doc.kernel, { paths: [{ path: 'chan_to_udp_44', packets: '3', bytes: '300' }], reasons: { pass_stun: '2' } });
    assert.equal(doc.relay.resyncs, 1);
    assert.deepEqual(doc.relayCounters, { channels: 1 });
    assert.equal(statusDocument({ ...source, ebpf: { ...source.ebpf, datapath: 'userspace', interface: undefined } }).interface, null);
  } finally {
    await a2.close();
  }
});
