// `turnpike status` against a real sidecar (in process, userspace datapath)
// with a stand-in relay on the link that reports counters: the view shows the
// relay connected, its state, the relayed rate between the two reads, drops
// and refusals; --json adds the rates to the /status document; --watch
// refreshes until interrupted; the admin address comes from the
// configuration; an unreachable sidecar is a clear error, exit 1.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema, type Config } from '../../src/config/schema.ts';
import { createLogHub } from '../../src/shared/logger.ts';
import { startTelemetry } from '../../src/telemetry/index.ts';
import { LinkClient } from '../../src/link/index.ts';
import type { RelayCounters } from '../../src/link/index.ts';
import { Sidecar } from '../../src/sidecar/sidecar.ts';
import { adminUrl, ratesBetween, renderStatus, runStatus, sampleOf, type StatusDoc } from '../../src/cmd/status.ts';
import { sink } from '../telemetry/sink.ts';
import { captureLogger, until } from '../link/helpers.ts';
import { repoRoot } from '../interop/harness.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const counters = (toPeer: number, toClient: number): RelayCounters => ({
  allocations: 3,
  permissions: 4,
  channels: 2,
  reservations: 0,
  relayed: { toPeer: { packets: toPeer, bytes: toPeer * 100 }, toClient: { packets: toClient, bytes: toClient * 100 } },
  responses: { 'allocate:success': 3 },
  dropped: { 'no-permission': 7 },
  refused: { 'allocations-per-user': 2 },
});

/** A sidecar with a stand-in relay connected; `report` sends the relay's counters and waits until /status has them. */
async function sidecarWithRelay() {
  const dir = mkdtempSync(join(tmpdir(), 'tpstatus-'));
  dirs.push(dir);
  const config: Config = { ...configSchema.parse({ ebpf: 'off', listenAddresses: '127.0.0.1', stateDir: dir }), listenPort: 0, admin: { host: '127.0.0.1', port: 0 } };
  const hub = createLogHub({ destination: sink().stream as never, filter: 'warn' });
  const telemetry = await startTelemetry({ config, version: '0.0.0-test', stateDir: dir, logHub: hub });
  const sidecar = await Sidecar.start(config, { version: '0.0.0-test', logHub: hub, telemetry });
  const client = new LinkClient({ path: join(dir, 'link.sock'), software: 'relay-test', logger: captureLogger('relay').logger, backoff: { initialMs: 10 } });
  client.start();
  await until(() => client.connection?.state === 'open', 'relay connected');
  const admin = `127.0.0.1:${sidecar.adminAddress.port}`;
  const report = async (c: RelayCounters) => {
    client.connection!.send({ kind: 'counters', counters: c });
    for (let i = 0; i < 200; i++) {
      const st = (await (await fetch(`http://${admin}/status`)).json()) as StatusDoc;
      if (st.relayCounters?.relayed?.toPeer.packets === c.relayed.toPeer.packets) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.fail('counters did not reach /status');
  };
  return {
    dir,
    admin,
    report,
    async stop() {
      client.stop();
      await sidecar.stop('test');
      await telemetry.shutdown();
    },
  };
}

function collect() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { write: (t: string) => void out.push(t), error: (t: string) => void err.push(t), tty: false } };
}

test('the view: relay connected, state, relayed rate between two reads, drops and refusals; --json adds the rates', async () => {
  const s = await sidecarWithRelay();
  try {
    await s.report(counters(100, 50));
    // The view reads twice, a second apart; the relay reports 300 more packets in between.
    let c = collect();
    const view = runStatus(['status', '--interval', '1'], { env: { TURNPIKE_ADMIN: s.admin }, ...c.io });
    setTimeout(() => void s.report(counters(300, 150)), 300);
    assert.equal(await view, 0, c.err.join(''));
    const text = c.out.join('');
    assert.match(text, /^turnpike-sidecar 0\.0\.0-test at 127\.0\.0\.1:\d+ \(instance /);
    assert.match(text, /^datapath +userspace \(ebpf=off\)$/m);
    assert.match(text, /^relay +connected, resyncs \d+, link queue 0 frames$/m);
    assert.match(text, /^state +allocations 3, permissions 4, channels 2, reservations 0, ports 0$/m);
    assert.match(text, /^kernel maps +none \(userspace datapath\)$/m);
    const userspaceRate = /^ +userspace +([\d,]+) packets\/s/m.exec(text);
    assert.ok(userspaceRate, text);
    const pps = Number(userspaceRate[1]!.replace(/,/g, ''));
    assert.ok(pps > 300 / 1.6 && pps <= 300 / 0.95, `about 300 packets in about a second: ${pps}`);
    assert.match(text, /^ +xdp +0 packets\/s/m);
    assert.match(text, /^relayed +in all: xdp 0 packets, userspace 450 packets$/m);
    assert.match(text, /^drops +kernel: none$/m);
    assert.match(text, /^ +relay: no-permission 7$/m);
    assert.match(text, /^ +sockets: none$/m);
    assert.match(text, /^refusals +allocations-per-user 2$/m);
    assert.match(text, /^flags +stream-logs off$/m);

    // --json: the /status document, rates added.
    c = collect();
    assert.equal(await runStatus(['status', '--json', '--interval', '0.2', '--admin', s.admin], { env: {}, ...c.io }), 0, c.err.join(''));
    const doc = JSON.parse(c.out.join('')) as StatusDoc & { rates: ReturnType<typeof ratesBetween> };
    assert.equal(doc.mode, 'userspace');
    assert.equal(doc.relay?.relayConnected, true);
    assert.equal(doc.relayCounters?.allocations, 3);
    assert.equal(doc.rates.relayed.userspace.packetsPerSecond, 0, 'nothing relayed between these two reads');
    assert.ok(doc.rates.seconds >= 0.2 && doc.rates.seconds < 2);
  } finally {
    await s.stop();
  }
});

test('--watch refreshes until SIGINT; the address comes from the config file', async () => {
  const s = await sidecarWithRelay();
  try {
    const file = join(s.dir, 'turnpike.json');
    const [host, port] = s.admin.split(':');
    writeFileSync(file, JSON.stringify({ admin: `${host}:${port}` }));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cmd/status.ts', 'status', '--watch', '--json', '--interval', '0.2', '--config', file], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await until(() => out.split('\n').filter((l) => l.startsWith('{')).length >= 3, 'three refreshes', 20_000);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGINT');
    assert.equal(await exited, 0, err);
    for (const line of out.trim().split('\n')) assert.equal((JSON.parse(line) as StatusDoc).relay?.relayConnected, true);
  } finally {
    await s.stop();
  }
});

test('an unreachable sidecar: one clear line, exit 1; a bad flag: exit 2', async () => {
  let c = collect();
  assert.equal(await runStatus(['status', '--interval', '0.1'], { env: { TURNPIKE_ADMIN: '127.0.0.1:1' }, ...c.io }), 1);
  assert.match(c.err.join(''), /cannot reach the sidecar's admin server at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/);
  c = collect();
  assert.equal(await runStatus(['status', '--interval', 'soon'], { env: {}, ...c.io }), 2);
  assert.match(c.err.join(''), /interval.*must be a number of seconds/);
  c = collect();
  assert.equal(await runStatus(['restart'], { env: {}, ...c.io }), 2);
  assert.match(c.err.join(''), /unknown command "restart"/);
});

test('rates: a counter that went down was restarted and counts from zero; the xdp view shows maps and kernel drops', () => {
  const doc = (xdpPackets: number, relayPackets: number, boundsDrops = 0): StatusDoc => ({
    version: '1.2.3',
    mode: 'xdp',
    interface: 'eth0',
    ebpf: { attachMode: 'native', relayV4: '203.0.113.7' },
    maps: { tp_chan_to_peer: { entries: 16384, capacity: 65536, refusedWrites: 0 } },
    kernel: { paths: [{ path: 'chan_to_udp_44', packets: String(xdpPackets), bytes: String(xdpPackets * 125) }], reasons: { pass_stun: '9', drop_bounds: String(boundsDrops) } },
    relay: { relayConnected: true, resyncs: 1 },
    relayCounters: { allocations: 1, relayed: { toPeer: { packets: relayPackets, bytes: relayPackets * 10 }, toClient: { packets: 0, bytes: 0 } } },
    flags: {},
    security: { 'admin-token': boundsDrops > 0 ? 2 : 1 },
  });
  const a = sampleOf(doc(1000, 500), 0);
  const b = sampleOf(doc(3000, 20, 4), 2000);
  const r = ratesBetween(a, b);
  assert.equal(r.seconds, 2);
  assert.deepEqual(r.relayed.xdp, { packetsPerSecond: 1000, bitsPerSecond: 1_000_000 });
  assert.deepEqual(r.relayed.userspace, { packetsPerSecond: 10, bitsPerSecond: 800 }, 'the relay restarted: 20 since');
  assert.deepEqual(r.events, { 'kernel:bounds': 4, 'security:admin-token': 1 });
  const text = renderStatus(doc(3000, 20, 4), b, r, '127.0.0.1:9469');
  assert.match(text, /^datapath +xdp on eth0 \(native\), relayed addresses 203\.0\.113\.7 \/ -$/m);
  assert.match(text, /^kernel maps +tp_chan_to_peer 16,384\/65,536 \(25\.0%\)$/m);
  assert.match(text, /^ +xdp +1,000 packets\/s +1\.0 Mbit\/s +99\.0%$/m);
  assert.match(text, /^drops +kernel: bounds 4 \(\+4\)$/m);
  assert.match(text, /^security +admin-token 2 \(\+1\)$/m);
  assert.equal(adminUrl({ host: '::', port: 9469 }), 'http://[::1]:9469');
  assert.equal(adminUrl({ host: '0.0.0.0', port: 1 }), 'http://127.0.0.1:1');
  assert.equal(adminUrl({ host: '10.1.2.3', port: 9469 }), 'http://10.1.2.3:9469');
});
