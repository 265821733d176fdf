// The Sidecar object in userspace mode (no eBPF): start brings up sockets,
// link and admin; /status and /readyz follow the relay; stop closes all of
// it, once. Start-up failures log their fatal line, close what was opened,
// and throw SidecarStartError (the entry point turns that into exit code 1).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema, type Config } from '../../src/config/schema.ts';
import { createLogHub } from '../../src/shared/logger.ts';
import { startTelemetry, type Telemetry } from '../../src/telemetry/index.ts';
import { LinkClient } from '../../src/link/index.ts';
import { Sidecar, SidecarStartError } from '../../src/sidecar/sidecar.ts';
import { sink, type Sink } from '../telemetry/sink.ts';
import { captureLogger, until } from '../link/helpers.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function setup(raw: Record<string, unknown> = {}, listenPort = 0) {
  const dir = mkdtempSync(join(tmpdir(), 'tpsidecar-'));
  dirs.push(dir);
  const config: Config = {
    ...configSchema.parse({ ebpf: 'off', listenAddresses: '127.0.0.1', stateDir: dir, ...raw }),
    listenPort,
    admin: { host: '127.0.0.1', port: 0 },
  };
  const out: Sink = sink();
  const hub = createLogHub({ destination: out.stream as never, filter: 'info' });
  const telemetry: Telemetry = await startTelemetry({ config, version: '0.0.0-test', stateDir: dir, logHub: hub });
  return { config, out, hub, telemetry, deps: { version: '0.0.0-test', logHub: hub, telemetry } };
}

const tick = () => new Promise((r) => setImmediate(r));

test('start, /status and /readyz follow the relay, stop closes everything once', async () => {
  const s = await setup();
  const sidecar = await Sidecar.start(s.config, s.deps);
  const base = `http://127.0.0.1:${sidecar.adminAddress.port}`;
  const status = async () => (await (await fetch(`${base}/status`)).json()) as Record<string, any>;
  const client = new LinkClient({ path: join(s.config.stateDir!, 'link.sock'), software: 'relay-test', logger: captureLogger('relay').logger, backoff: { initialMs: 10 } });
  try {
    const st = await status();
    assert.deepEqual(Object.keys(st), ['version', 'instanceId', 'mode', 'ebpf', 'interface', 'maps', 'kernel', 'sockets', 'relay', 'relayCounters', 'link', 'flags', 'security', 'fastPath']);
    assert.equal(st.version, '0.0.0-test');
    assert.equal(st.instanceId, s.telemetry.identity.id);
    assert.equal(st.mode, 'userspace');
    assert.equal(st.ebpf.reason, 'ebpf=off');
    assert.equal(st.interface, null);
    assert.deepEqual(st.maps, {});
    assert.equal(st.kernel, null);
    assert.equal(st.relay.relayConnected, false);
    assert.equal(st.relayCounters, null);
    assert.equal(st.link, null);
    assert.deepEqual(st.flags, { 'stream-logs': false });
    let ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 503);
    assert.deepEqual(((await ready.json()) as { reasons: string[] }).reasons, ['relay not connected']);

    const filters: string[] = [];
    client.on('open', (conn) => conn.on('frame', (f) => f.kind === 'log-filter' && filters.push(f.filter)));
    client.start();
    await until(() => client.connection?.state === 'open', 'relay connected');
    const counters = { allocations: 1, permissions: 0, channels: 2, relayed: { toPeer: { packets: 0, bytes: 0 }, toClient: { packets: 0, bytes: 0 } }, responses: {}, dropped: {} };
    client.connection!.send({ kind: 'counters', counters });
    await until(() => filters.length > 0, 'log filter sent on connect');
    assert.equal(filters[0], 'info');
    let st2: Record<string, any> = {};
    for (let i = 0; i < 200 && !st2.relayCounters; i++) {
      st2 = await status();
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(st2.relay.relayConnected, true);
    assert.deepEqual(st2.relayCounters, counters);
    assert.equal(typeof st2.link.framesIn, 'number');
    ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    s.hub.setFilter({ defaultLevel: 'info', modules: { link: 'debug' } });
    await until(() => filters.length > 1, 'log filter follows a change');
    assert.equal(filters.at(-1), 'info,link=debug');
  } finally {
    client.stop();
    const first = sidecar.stop('test');
    assert.equal(sidecar.stop('again'), first, 'a second stop is the same stop');
    await first;
    await s.telemetry.shutdown();
  }
  await tick();
  assert.equal(s.out.lines.filter((l) => l.msg === 'shutting down').length, 1);
  assert.ok(s.out.find((l) => l.msg === 'sidecar ready' && l.datapath === 'userspace'));
  await assert.rejects(fetch(`http://127.0.0.1:${sidecar.adminAddress.port}/healthz`), 'admin closed');
});

test('eBPF required but unavailable: fatal "cannot start", nothing opened', async () => {
  // An interface that is not there: with none named, the default route's (the host's own NIC) would be tried.
  const s = await setup({ ebpf: 'required', interface: 'tpnosuchif0' });
  await assert.rejects(Sidecar.start(s.config, s.deps), SidecarStartError);
  await s.telemetry.shutdown();
  await tick();
  const fatal = s.out.find((l) => l.msg === 'cannot start');
  assert.equal(fatal?.ebpf, 'required');
  assert.match(fatal?.reason, /eBPF is required but/);
});

test('listen port taken: fatal "cannot bind the listen port"', async () => {
  const taken = createSocket('udp4');
  taken.bind(0, '127.0.0.1');
  await once(taken, 'listening');
  const port = taken.address().port;
  try {
    const s = await setup({}, port);
    await assert.rejects(Sidecar.start(s.config, s.deps), SidecarStartError);
    await s.telemetry.shutdown();
    await tick();
    const fatal = s.out.find((l) => l.msg === 'cannot bind the listen port');
    assert.equal(fatal?.port, port);
    assert.deepEqual(fatal?.addresses, ['127.0.0.1']);
  } finally {
    taken.close();
  }
});

test('link socket unusable: fatal "cannot listen on the link socket", the listen port is released', async () => {
  const probe = createSocket('udp4');
  probe.bind(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = probe.address().port;
  probe.close();
  const s = await setup({}, port);
  const socketPath = join(s.config.stateDir!, 'link.sock');
  writeFileSync(socketPath, 'not a socket');
  await assert.rejects(Sidecar.start(s.config, s.deps), SidecarStartError);
  await s.telemetry.shutdown();
  await tick();
  const fatal = s.out.find((l) => l.msg === 'cannot listen on the link socket');
  assert.equal(fatal?.socket, socketPath);
  assert.match(fatal?.reason, /not a socket/);
  const again = createSocket('udp4');
  again.bind(port, '127.0.0.1');
  await once(again, 'listening');
  again.close();
});
