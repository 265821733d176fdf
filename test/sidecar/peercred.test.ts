// Who is on the link: SO_PEERCRED through koffi, and the Sidecar admitting
// only the relay's user (or its own) whatever the socket file lets in. The
// other process is a real one of another uid (nobody), so this runs as root.
import { test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema, type Config } from '../../src/config/schema.ts';
import { createLogHub } from '../../src/shared/logger.ts';
import { startTelemetry } from '../../src/telemetry/index.ts';
import { PROTOCOL_VERSION, encodeFrame } from '../../src/link/protocol.ts';
import { Sidecar } from '../../src/sidecar/sidecar.ts';
import { peerCredentials } from '../../src/sidecar/peercred.ts';
import { requireRoot } from '../helpers/env.ts';
import { sink } from '../telemetry/sink.ts';

const NOBODY = 65534;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('peerCredentials reads the connecting process\'s pid, uid and gid', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tppeer-'));
  dirs.push(dir);
  const path = join(dir, 's.sock');
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer((s) => {
      resolve(s);
      server.close();
    });
    server.listen(path);
  });
  const c = createConnection(path);
  const s = await accepted;
  try {
    assert.deepEqual(peerCredentials(s), { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
  } finally {
    c.destroy();
    s.destroy();
  }
});

/** Connects to the link as `uid` (a child process), says HELLO, and returns the first frame's type and REJECT code. */
async function helloAs(path: string, uid: number): Promise<{ type: number; code?: number }> {
  const hello = encodeFrame({ kind: 'hello', version: PROTOCOL_VERSION, role: 'relay', pid: 1, software: 'intruder' }).toString('hex');
  const script = `
    const s = require('node:net').createConnection(${JSON.stringify(path)});
    let got = Buffer.alloc(0);
    s.on('connect', () => s.write(Buffer.from('${hello}', 'hex')));
    s.on('data', (d) => { got = Buffer.concat([got, d]); if (got.length >= 6) { console.log(JSON.stringify({ type: got[4], code: got[4] === 2 ? got[5] : undefined })); process.exit(0); } });
    s.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(0); });
    setTimeout(() => process.exit(3), 5000);`;
  const child = spawn(process.execPath, ['-e', script], { uid, gid: uid, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  await once(child, 'exit');
  return JSON.parse(out) as { type: number; code?: number };
}

async function sidecarWith(t: TestContext, raw: Record<string, unknown>) {
  const dir = mkdtempSync(join(tmpdir(), 'tppeer-'));
  dirs.push(dir);
  chmodSync(dir, 0o711); // another user must reach the socket inside
  // The socket's group is nogroup: the file modes let nobody in; only the uid check stands.
  const config: Config = { ...configSchema.parse({ ebpf: 'off', listenAddresses: '127.0.0.1', stateDir: dir, relayGid: NOBODY, ...raw }), listenPort: 0, admin: { host: '127.0.0.1', port: 0 } };
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never, filter: 'info' });
  const telemetry = await startTelemetry({ config, version: 't', stateDir: dir, logHub: hub });
  const sidecar = await Sidecar.start(config, { version: 't', logHub: hub, telemetry });
  t.after(async () => {
    await sidecar.stop();
    await telemetry.shutdown();
  });
  const status = async () => (await (await fetch(`http://127.0.0.1:${sidecar.adminAddress.port}/status`)).json()) as Record<string, any>;
  return { path: join(dir, 'link.sock'), out, status, telemetry };
}

test('a process of another user on the link socket gets REJECT forbidden, logged and counted as a security event', async (t) => {
  if (!requireRoot(t)) return;
  const s = await sidecarWith(t, { relayUser: 'tp-no-such-user-here' });
  const r = await helloAs(s.path, NOBODY);
  assert.deepEqual(r, { type: 0x02, code: 5 }, 'REJECT forbidden, and no HELLO before it');
  const st = await s.status();
  assert.equal(st.relay.relayConnected, false);
  assert.deepEqual(st.security, { 'link-peer': 1 });
  const line = s.out.find((l) => l.event === 'security' && l.rule === 'link-peer');
  assert.ok(line, 'security event logged');
  assert.match(String(line.detail), new RegExp(`uid ${NOBODY} connected to the link; only our own uid 0 may`));
});

test('the relay\'s user is admitted (relayUid from the launcher)', async (t) => {
  if (!requireRoot(t)) return;
  const s = await sidecarWith(t, { relayUid: NOBODY });
  const r = await helloAs(s.path, NOBODY);
  assert.deepEqual(r, { type: 0x01 }, 'the sidecar\'s HELLO: the handshake goes on');
  assert.deepEqual((await s.status()).security, {});
});
