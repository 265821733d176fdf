// TURN over TCP and TLS through the standalone transport on loopback, with the
// real TurnServer: messages in any chunking, bad input closed and counted
// (garbage, oversize, silent and slow clients, a TLS handshake that never
// ends, too many connections from one source) with the relay unaffected, and
// a certificate replaced on disk served to the next handshake.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { once } from 'node:events';
import { decodeMessage, encodeMessage, newTransactionId, METHOD } from '../../../src/relay/stun/index.ts';
import { TurnServer } from '../../../src/relay/server/server.ts';
import { buildServerOptions } from '../../../src/relay/build.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { Driver } from '../../../src/relay/transport/driver.ts';
import { StandaloneTransport, streamOptions } from '../../../src/relay/transport/standalone.ts';
import { freePort } from '../../interop/harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'tpstream-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A self-signed P-256 certificate for 127.0.0.1 written to `name`.{cert,key}.pem; returns the paths. */
function makeCert(name: string, cn: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.cert.pem`);
  const key = join(dir, `${name}.key.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

const files = makeCert('live', 'first');

async function startRelay(overrides: Record<string, unknown> = {}) {
  const listenPort = await freePort();
  const tlsPort = await freePort();
  const config = configSchema.parse({
    listenPort, listenAddresses: '127.0.0.1', users: 'u:p', portRange: '10000-10100',
    tlsCert: files.cert, tlsKey: files.key, tlsPort, streamMaxConnectionsPerSource: 4, ...overrides,
  });
  const streams = streamOptions(config);
  const server = new TurnServer(buildServerOptions(config, { relayAddresses: { v4: '127.0.0.1' } }));
  const transport = new StandaloneTransport({
    listenPort, listenAddresses: config.listenAddresses,
    streams: { ...streams, limits: { ...streams.limits, handshakeTimeoutMs: 400 } },
  });
  const driver = new Driver(server, transport);
  transport.attach(driver);
  await transport.listenAll();
  return { listenPort, tlsPort, transport, close: async () => (driver.close(), await transport.close()) };
}

const binding = () => encodeMessage({ method: METHOD.BINDING, cls: 'request', transactionId: newTransactionId(), attributes: {} }, { fingerprint: true });

async function tcp(port: number): Promise<Socket> {
  const s = createConnection({ host: '127.0.0.1', port });
  await once(s, 'connect');
  return s;
}

async function tls(port: number): Promise<TLSSocket> {
  const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await once(s, 'secureConnect');
  return s;
}

/** Waits for one STUN response on the stream and checks it is a Binding success. */
async function expectBindingSuccess(s: Socket): Promise<void> {
  const [chunk] = (await once(s, 'data')) as [Buffer];
  const d = decodeMessage(new Uint8Array(chunk));
  assert.equal(d.kind, 'message');
  if (d.kind === 'message') assert.equal(d.message.cls, 'success');
}

/** A fresh TCP connection gets a Binding answered. */
async function assertServes(port: number): Promise<void> {
  const s = await tcp(port);
  s.write(binding());
  await expectBindingSuccess(s);
  s.destroy();
}

/** The relay counts a connection when its side has closed, a moment after the client sees it: wait for that. */
async function allClosed(transport: StandaloneTransport): Promise<void> {
  const open = () => transport.stats().streams!.open;
  for (let i = 0; i < 50 && open().tcp + open().tls > 0; i++) await new Promise((r) => setTimeout(r, 20));
}

/** Resolves when the relay closes the stream; rejects after `ms`. */
function closedWithin(s: Socket, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (s.destroyed) return resolve();
    const t = setTimeout(() => reject(new Error(`not closed within ${ms} ms`)), ms);
    s.on('error', () => {});
    s.once('close', () => (clearTimeout(t), resolve()));
  });
}

test('a Binding request over TCP, byte by byte, and two merged in one write, over TLS', async () => {
  const relay = await startRelay();
  try {
    const a = await tcp(relay.listenPort);
    const req = binding();
    for (const byte of req) a.write(Uint8Array.of(byte));
    await expectBindingSuccess(a);
    a.destroy();
    const b = await tls(relay.tlsPort);
    const got: Buffer[] = [];
    b.on('data', (d: Buffer) => got.push(d));
    b.write(Buffer.concat([binding(), binding()]));
    for (let i = 0; i < 50 && Buffer.concat(got).length < 2 * 32; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(Buffer.concat(got).length % 4, 0);
    assert.ok(Buffer.concat(got).length >= 64, 'two responses');
    b.destroy();
    assert.equal(relay.transport.stats().streams?.accepted.tcp, 1);
    assert.equal(relay.transport.stats().streams?.accepted.tls, 1);
  } finally {
    await relay.close();
  }
});

test('bad input is closed and counted, and the relay still serves: garbage, oversize, silence, a slow message, an unfinished TLS handshake', async () => {
  const relay = await startRelay();
  try {
    const garbage = await tcp(relay.listenPort);
    garbage.write('\x16\x03\x01\x02\x00\x01\x00\x01\xfc');
    const oversize = await tcp(relay.listenPort);
    oversize.write(Uint8Array.of(0x40, 0x01, 0xff, 0xff));
    const silent = await tcp(relay.listenPort);
    const slow = await tcp(relay.listenPort);
    slow.write(binding());
    await expectBindingSuccess(slow);
    slow.write(binding().subarray(0, 10)); // and never the rest
    const handshake = await tcp(relay.tlsPort);
    handshake.write('\x16\x03\x01\x00'); // the start of a ClientHello, never finished
    await Promise.all([closedWithin(garbage, 2000), closedWithin(silent, 2000), closedWithin(slow, 2000), closedWithin(handshake, 2000)]);
    // 4 + 65535 padded is 65540, within the default read buffer: that one is still waiting for its bytes, and times out.
    await closedWithin(oversize, 2000);
    await allClosed(relay.transport);
    const closed = relay.transport.stats().streams!.closed;
    assert.equal(closed['tcp:garbage'], 1, JSON.stringify(closed));
    assert.equal(closed['tcp:handshake-timeout'], 2, JSON.stringify(closed)); // silent, and the unfinished ChannelData before any message
    assert.equal(closed['tcp:frame-timeout'], 1, JSON.stringify(closed));
    assert.equal(closed['tls:handshake-timeout'], 1, JSON.stringify(closed));
    await assertServes(relay.listenPort);
  } finally {
    await relay.close();
  }
});

test('a message larger than the read buffer closes its connection at once', async () => {
  const relay = await startRelay({ streamReadBuffer: 2048 });
  try {
    const s = await tcp(relay.listenPort);
    s.write(Uint8Array.of(0x40, 0x01, 0x10, 0x00));
    await closedWithin(s, 300);
    assert.equal(relay.transport.stats().streams!.closed['tcp:oversize'], 1);
  } finally {
    await relay.close();
  }
});

test('connections per source are capped; a refused one reads nothing and frees nothing', async () => {
  const relay = await startRelay({ streamMaxConnectionsPerSource: 2 });
  try {
    const held = [await tcp(relay.listenPort), await tcp(relay.tlsPort)];
    const third = await tcp(relay.listenPort);
    await closedWithin(third, 1000);
    const stats = relay.transport.stats().streams!;
    assert.equal(stats.closed['tcp:source-limit'], 1);
    assert.equal(stats.open.tcp + stats.open.tls, 2);
    for (const s of held) s.destroy();
    await allClosed(relay.transport);
    await assertServes(relay.listenPort);
  } finally {
    await relay.close();
  }
});

test('a certificate replaced on disk is served to the next handshake, without a restart', async () => {
  const relay = await startRelay();
  try {
    const first = await tls(relay.tlsPort);
    assert.equal(first.getPeerCertificate().subject.CN, 'first');
    first.destroy();
    // As certbot does: new files written beside, renamed over the live ones.
    const next = makeCert('next', 'second');
    renameSync(next.key, files.key);
    renameSync(next.cert, files.cert);
    let cn = 'first';
    for (let i = 0; i < 50 && cn === 'first'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const s = await tls(relay.tlsPort);
      cn = String(s.getPeerCertificate().subject.CN);
      s.destroy();
    }
    assert.equal(cn, 'second');
    assert.ok(relay.transport.stats().tls!.reloads >= 1);
    // A broken pair keeps the one in use.
    writeFileSync(files.cert, 'not a certificate');
    await new Promise((r) => setTimeout(r, 400));
    const s = await tls(relay.tlsPort);
    assert.equal(s.getPeerCertificate().subject.CN, 'second');
    s.destroy();
  } finally {
    await relay.close();
  }
});
