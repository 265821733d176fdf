import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { spawnSync } from 'node:child_process';
import { LinkClient, backoffDelay } from '../../src/link/client.ts';
import { LinkServer } from '../../src/link/server.ts';
import { MAX_BODY_BYTES, PROTOCOL_VERSION, encodeFrame, type Frame } from '../../src/link/protocol.ts';
import type { LinkConnection } from '../../src/link/connection.ts';
import { captureLogger, tempSocketPath, until } from './helpers.ts';

const fast = { initialMs: 10, maxMs: 50, jitter: 0, rejectedRetryMs: 60_000 };

function pair(path: string, clientExtra: Partial<ConstructorParameters<typeof LinkClient>[0]> = {}) {
  const slog = captureLogger('sidecar');
  const clog = captureLogger('relay');
  const server = new LinkServer({ path, software: 'sidecar-test', logger: slog.logger });
  const client = new LinkClient({ path, software: 'relay-test', logger: clog.logger, backoff: fast, ...clientExtra });
  return { server, client, slog, clog };
}

test('handshake, frames both ways, socket mode 0660, close is noticed by the server', async () => {
  const { path, cleanup } = tempSocketPath();
  const { server, client } = pair(path);
  try {
    await server.listen();
    assert.equal(statSync(path).mode & 0o777, 0o660);
    const serverOpen = once(server, 'open') as Promise<[LinkConnection]>;
    client.start();
    const [[sconn], [cconn]] = await Promise.all([serverOpen, once(client, 'open') as Promise<[LinkConnection]>]);
    assert.equal(sconn.peer?.role, 'relay');
    assert.equal(sconn.peer?.pid, process.pid);
    assert.equal(cconn.peer?.software, 'sidecar-test');

    const got = once(sconn, 'frame') as Promise<[Frame]>;
    cconn.send({ kind: 'packet-out', from: { family: 4, port: 3478 }, to: { family: 4, address: '192.0.2.1', port: 7 }, data: Buffer.from('abc') });
    const [f] = await got;
    assert.equal(f.kind, 'packet-out');
    assert.equal(Buffer.from((f as { data: Uint8Array }).data).toString(), 'abc');

    const back = once(cconn, 'frame') as Promise<[Frame]>;
    sconn.send({ kind: 'port-opened', token: 5, family: 6, port: 50000, ok: false, error: 'EADDRINUSE' });
    assert.deepEqual((await back)[0], { kind: 'port-opened', token: 5, family: 6, port: 50000, ok: false, error: 'EADDRINUSE' });

    const closed = once(server, 'close') as Promise<[LinkConnection, { reason: string; byPeer: boolean }]>;
    client.stop();
    const [, info] = await closed;
    assert.equal(info.byPeer, true);
    assert.equal(server.current, null);
  } finally {
    client.stop();
    await server.close();
    cleanup();
  }
});

test('the client reconnects with backoff when the sidecar comes (back) later', async () => {
  const { path, cleanup } = tempSocketPath();
  const { server, client, clog } = pair(path);
  try {
    client.start();
    await until(() => client.attempts >= 3, 'a few failed attempts');
    assert.ok(clog.has(/cannot connect to the sidecar/));
    // Listening before the socket exists: the client connects as soon as it appears.
    const first = once(client, 'open');
    await server.listen();
    await first;
    // Sidecar restart: the relay notices and connects again.
    await server.close();
    await once(client, 'close');
    const again = new LinkServer({ path, software: 'sidecar-2', logger: captureLogger('s2').logger });
    const reopened = once(client, 'open');
    await again.listen();
    const [conn] = (await reopened) as [LinkConnection];
    assert.equal(conn.peer?.software, 'sidecar-2');
    client.stop();
    await again.close();
  } finally {
    client.stop();
    await server.close();
    cleanup();
  }
});

test('backoff grows exponentially, is capped and jittered', () => {
  const b = { initialMs: 100, maxMs: 5000, jitter: 0.2 };
  assert.deepEqual([0, 1, 2, 3, 10].map((n) => backoffDelay(n, b, () => 0)), [100, 200, 400, 800, 5000]);
  assert.equal(backoffDelay(3, b, () => 1), 640);
  assert.equal(backoffDelay(1000, b, () => 0.5), 4500);
});

test('version mismatch: a clear error on both sides, and no tight reconnect loop', async () => {
  const { path, cleanup } = tempSocketPath();
  const { server, client, slog, clog } = pair(path, { version: 99 });
  try {
    await server.listen();
    client.start();
    const [info] = (await once(client, 'close')) as [{ rejected?: string; reason: string }];
    assert.equal(info.rejected, 'version');
    assert.match(info.reason, new RegExp(`version mismatch: .* speaks version (${PROTOCOL_VERSION}|99).* speaks version (${PROTOCOL_VERSION}|99)`));
    await until(() => slog.has(/version mismatch/) && clog.has(/version mismatch/), 'both sides logging the mismatch');
    const errors = [...slog.records, ...clog.records].filter((r) => r.level === 50 && /version mismatch/.test(r.msg));
    assert.ok(errors.length >= 2, 'logged at error level on both sides');
    const attempts = client.attempts;
    await new Promise((r) => setTimeout(r, 200)); // many backoff periods of the fast schedule
    assert.equal(client.attempts, attempts, 'waits rejectedRetryMs before trying again');
  } finally {
    client.stop();
    await server.close();
    cleanup();
  }
});

test('a second relay is refused while one is connected', async () => {
  const { path, cleanup } = tempSocketPath();
  const { server, client } = pair(path);
  const second = new LinkClient({ path, software: 'relay-2', logger: captureLogger('r2').logger, backoff: fast });
  try {
    await server.listen();
    client.start();
    await once(server, 'open');
    second.start();
    const [info] = (await once(second, 'close')) as [{ rejected?: string; reason: string }];
    assert.equal(info.rejected, 'busy');
    assert.match(info.reason, /another relay/);
    assert.ok(server.current?.peer?.software === 'relay-test');
  } finally {
    second.stop();
    client.stop();
    await server.close();
    cleanup();
  }
});

test('stale socket file is replaced; a live sidecar is a clear error', async () => {
  const { path, cleanup } = tempSocketPath();
  try {
    const live = createServer();
    await new Promise<void>((r) => live.listen(path, r));
    const s1 = new LinkServer({ path, software: 's1', logger: captureLogger('s1').logger });
    await assert.rejects(s1.listen(), /another sidecar is listening on .*link\.sock/);
    await new Promise<void>((r) => live.close(() => r()));
    // A sidecar that died without cleaning up leaves its socket file behind.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    assert.ok(statSync(path).isSocket(), 'a dead socket file is left behind');
    const log = captureLogger('s2');
    const s2 = new LinkServer({ path, software: 's2', logger: log.logger });
    await s2.listen();
    assert.ok(log.has(/stale link socket/));
    await s2.close();
    // Something that is not a socket is never unlinked.
    writeFileSync(path, 'not a socket');
    await assert.rejects(new LinkServer({ path, software: 's3', logger: captureLogger('s3').logger }).listen(), /cannot listen/);
    assert.ok(statSync(path).isFile());
  } finally {
    cleanup();
  }
});

test('an oversize or malformed frame closes the connection with a reason, the server survives', async () => {
  const { path, cleanup } = tempSocketPath();
  const slog = captureLogger('sidecar');
  const server = new LinkServer({ path, software: 's', logger: slog.logger });
  try {
    await server.listen();
    for (const [bad, why] of [
      [(() => { const b = Buffer.alloc(5); b.writeUInt32BE(MAX_BODY_BYTES + 100, 0); return b; })(), /oversize frame/],
      [Buffer.from([0, 0, 0, 1, 0x99]), /unknown frame type 0x99/],
      [Buffer.from('GET / HTTP/1.1\r\n\r\n'), /oversize frame|not a turnpike/],
      [encodeFrame({ kind: 'ping', nonce: 1 }), /ping frame before the handshake/],
    ] as const) {
      const s = createConnection(path);
      await once(s, 'connect');
      s.write(bad);
      s.resume();
      await once(s, 'close');
      await until(() => slog.records.some((r) => why.test(String(r.reason ?? r.msg))), String(why));
    }
    assert.equal(server.current, null);
  } finally {
    await server.close();
    cleanup();
  }
});

test('keepalive: a peer that goes silent is dropped', async () => {
  const { path, cleanup } = tempSocketPath();
  const slog = captureLogger('sidecar');
  const server = new LinkServer({ path, software: 's', logger: slog.logger, keepaliveIntervalMs: 20, keepaliveTimeoutMs: 100 });
  try {
    await server.listen();
    // A relay that says hello and then never answers pings.
    const s = createConnection(path);
    await once(s, 'connect');
    s.write(encodeFrame({ kind: 'hello', version: PROTOCOL_VERSION, role: 'relay', pid: 1, software: 'mute' }));
    s.resume();
    const [, info] = (await once(server, 'close')) as [unknown, { reason: string }];
    assert.match(info.reason, /keepalive timeout/);
    s.destroy();
  } finally {
    await server.close();
    cleanup();
  }
});

test('a waiting client connects as soon as the sidecar\'s socket appears, not at its next backoff step', async () => {
  const { path, cleanup } = tempSocketPath();
  const { server, client } = pair(path, { backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 } });
  try {
    const failed = once(client, 'close');
    client.start();
    await failed; // no socket yet: the next try is a minute away
    await new Promise((r) => setTimeout(r, 100));
    const opened = once(client, 'open');
    const t0 = Date.now();
    await server.listen();
    await opened;
    assert.ok(Date.now() - t0 < 30_000, 'connected on the socket\'s appearance');
  } finally {
    client.stop();
    await server.close();
    cleanup();
  }
});
