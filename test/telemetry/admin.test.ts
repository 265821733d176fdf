// The admin HTTP server: health, readiness, status, metrics, runtime log
// filter; bad requests get 4xx and never take it down. State-changing requests
// need the admin token and every non-probe request an expected Host header.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogHub, type LogHub } from '../../src/shared/logger.ts';
import { createMetrics, type Metrics } from '../../src/telemetry/metrics.ts';
import { ADMIN_TOKEN_FILE, ensureAdminToken, hostAllowed, startAdmin, statusDocument, type Admin, type Readiness, type SidecarStatus } from '../../src/sidecar/admin.ts';
import { SecurityEvents } from '../../src/sidecar/security.ts';
import { sink, type Sink } from './sink.ts';

let out: Sink;
let hub: LogHub;
let metrics: Metrics;
let admin: Admin;
let readiness: Readiness = { ready: false, reasons: ['relay not connected', 'eBPF required but not loaded'] };
let base: string;
const TOKEN = 'a-test-admin-token-of-at-least-32-chars';

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
    token: TOKEN,
    security: new SecurityEvents(hub.get('security'), (rule) => metrics.onSecurityRefusal(rule)),
  });
  base = `http://127.0.0.1:${admin.port}`;
});

after(async () => {
  await admin.close();
  await metrics.shutdown();
});

const get = (path: string) => fetch(base + path);
const post = (path: string, body: string, type = 'text/plain') =>
  fetch(base + path, { method: 'POST', body, headers: { 'content-type': type, authorization: `Bearer ${TOKEN}` } });

/** A request with any Host header (fetch will not set one). */
function raw(method: string, path: string, headers: Record<string, string>, body = ''): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: admin.port, method, path, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

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
    sockets: { in: { listen: { packets: 1, bytes: 20 }, allocation: { packets: 0, bytes: 0 } }, out: { listen: { packets: 1, bytes: 32 }, allocation: { packets: 0, bytes: 0 } }, errors: {}, allocationPorts: 0, buffers: { recv: 1, send: 1 }, kernelDropped: { listen: 0, allocation: 0 } },
    relay: { relayConnected: true, packetsToRelay: 1, packetsFromRelay: 1, droppedNoRelay: 0, droppedBackpressure: 0, portsOpened: 0, portOpenFailures: 0, mapWrites: 0, mapWriteFailures: 0, resyncs: 1, disconnectCleanups: 0, droppedNotHeld: 0, violations: 0, graceReturns: 0, heldStateBytes: 0 },
    relayCounters: { channels: 1 },
    link: null,
    flags: { 'stream-logs': false },
    security: { 'admin-token': 2 },
  };
  const a2 = await startAdmin({ host: '127.0.0.1', port: 0, logHub: hub, ready: () => readiness, status: () => statusDocument(source) });
  try {
    const doc = (await (await fetch(`http://127.0.0.1:${a2.port}/status`)).json()) as any;
    assert.deepEqual(Object.keys(doc), ['version', 'instanceId', 'mode', 'ebpf', 'interface', 'maps', 'kernel', 'sockets', 'relay', 'relayCounters', 'link', 'flags', 'security', 'fastPath']);
    assert.deepEqual(doc.security, { 'admin-token': 2 });
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

test('a state-changing request needs the admin token: none or a wrong one is a 401, logged and counted, and changes nothing', async () => {
  await post('/log', 'info');
  const port = admin.port;
  const host = `127.0.0.1:${port}`;
  for (const auth of [undefined, 'Bearer wrong-token', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`]) {
    const r = await raw('POST', '/log', { host, ...(auth ? { authorization: auth } : {}) }, 'debug');
    assert.equal(r.status, 401, String(auth));
    assert.equal(r.headers['www-authenticate'], 'Bearer');
  }
  assert.equal((await (await get('/log')).text()).trim(), 'info', 'the filter did not change');
  const line = out.find((l) => l.event === 'security' && l.rule === 'admin-token');
  assert.ok(line, 'a security event was logged');
  assert.equal(line.level, 40);
  assert.match(String(line.detail), /POST \/log without the admin token/);
  assert.match(await (await get('/metrics')).text(), /^turnpike_security_refusals_total\{[^}]*rule="admin-token"[^}]*\} 4$/m);
  // With it, the change applies.
  const ok = await raw('POST', '/log', { host, authorization: `Bearer ${TOKEN}` }, 'debug');
  assert.equal(ok.status, 200);
  await post('/log', 'info');
});

test('the Host header: localhost names pass, any other name is refused on everything but the probes and /metrics', async () => {
  const port = admin.port;
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost', `[::1]:${port}`, `LOCALHOST:${port}`]) {
    assert.equal((await raw('GET', '/status', { host })).status, 200, host);
  }
  for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`, `10.0.0.1:${port}`]) {
    assert.equal((await raw('GET', '/status', { host })).status, 403, host);
    assert.equal((await raw('GET', '/log', { host })).status, 403, host);
    // A rebinding page with a stolen token still cannot change anything.
    assert.equal((await raw('POST', '/log', { host, authorization: `Bearer ${TOKEN}` }, 'debug')).status, 403, host);
    assert.equal((await raw('GET', '/healthz', { host })).status, 200, host);
    assert.equal((await raw('GET', '/metrics', { host })).status, 200, host);
    assert.notEqual((await raw('GET', '/readyz', { host })).status, 403, host);
  }
  assert.ok(out.find((l) => l.event === 'security' && l.rule === 'admin-host'));
  assert.equal((await (await get('/log')).text()).trim(), 'info');
});

test('Host rules: the configured address, and any IP literal (not a name) when the admin listens on a wildcard', () => {
  assert.equal(hostAllowed('192.0.2.7:9469', '192.0.2.7'), true);
  assert.equal(hostAllowed('[2001:db8::7]:9469', '2001:db8::7'), true);
  assert.equal(hostAllowed('192.0.2.8:9469', '192.0.2.7'), false);
  assert.equal(hostAllowed('192.0.2.8:9469', '0.0.0.0'), true);
  assert.equal(hostAllowed('[2001:db8::8]:9469', '::'), true);
  assert.equal(hostAllowed('turnpike.example:9469', '0.0.0.0'), false);
  assert.equal(hostAllowed(undefined, '127.0.0.1'), false);
  assert.equal(hostAllowed('', '127.0.0.1'), false);
});

test('without a token configured, no state-changing request is accepted', async () => {
  const a2 = await startAdmin({ host: '127.0.0.1', port: 0, logHub: hub, ready: () => readiness, status: () => ({}) });
  try {
    const r = await fetch(`http://127.0.0.1:${a2.port}/log`, { method: 'POST', body: 'debug', headers: { authorization: 'Bearer undefined' } });
    assert.equal(r.status, 401);
    assert.equal((await fetch(`http://127.0.0.1:${a2.port}/log`)).status, 200);
  } finally {
    await a2.close();
  }
});

test('the admin token file: created 0600 at first start, reused after, its mode repaired', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tpadmin-'));
  try {
    const first = ensureAdminToken(join(dir, 'state'));
    assert.equal(first.created, true);
    assert.equal(first.file, join(dir, 'state', ADMIN_TOKEN_FILE));
    assert.ok(first.token.length >= 32);
    assert.equal(statSync(first.file).mode & 0o777, 0o600);
    assert.equal(readFileSync(first.file, 'utf8').trim(), first.token);
    chmodSync(first.file, 0o644);
    const again = ensureAdminToken(join(dir, 'state'));
    assert.deepEqual([again.created, again.token], [false, first.token]);
    assert.equal(statSync(first.file).mode & 0o777, 0o600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
