import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { LinkServer } from '../../src/link/server.ts';
import { PROTOCOL_VERSION, encodeFrame } from '../../src/link/protocol.ts';
import type { LinkConnection } from '../../src/link/connection.ts';
import { captureLogger, tempSocketPath } from './helpers.ts';

const MAX_QUEUE = 256 * 1024;
const RESERVE = 64 * 1024;

/** A relay that completes the handshake and then never reads again. */
async function stuckRelay(path: string) {
  const s = createConnection(path);
  await once(s, 'connect');
  s.write(encodeFrame({ kind: 'hello', version: PROTOCOL_VERSION, role: 'relay', pid: 2, software: 'stuck' }));
  // Read the sidecar's hello, then stop reading for good.
  await once(s, 'data');
  s.pause();
  return s;
}

const turn = () => new Promise<void>((r) => setImmediate(r));

test('a relay that does not drain causes counted packet drops, not memory growth', async () => {
  const { path, cleanup } = tempSocketPath();
  const server = new LinkServer({ path, software: 's', logger: captureLogger('s').logger, maxQueueBytes: MAX_QUEUE, controlReserveBytes: RESERVE });
  try {
    await server.listen();
    const opened = once(server, 'open') as Promise<[LinkConnection]>;
    const relay = await stuckRelay(path);
    const [conn] = await opened;
    const payload = Buffer.alloc(1200, 1);
    const frame = { kind: 'packet-in' as const, local: { family: 4 as const, port: 3478 }, remote: { family: 4 as const, address: '198.51.100.9', port: 40000 }, data: payload };
    const before = process.memoryUsage();
    let maxQueue = 0;
    let maxSocket = 0;
    let sent = 0;
    let accepted = 0;
    // 200 turns x 500 datagrams x 1.2 kB = 120 MB offered to a reader that never reads.
    for (let t = 0; t < 200; t++) {
      for (let i = 0; i < 500; i++) {
        sent++;
        if (conn.send(frame)) accepted++;
      }
      const st = conn.stats();
      maxQueue = Math.max(maxQueue, st.queueBytes);
      await turn();
      maxSocket = Math.max(maxSocket, conn.stats().socketBufferedBytes);
    }
    const st = conn.stats();
    const after = process.memoryUsage();
    const grew = after.rss + after.arrayBuffers - (before.rss + before.arrayBuffers);
    console.log(`offered ${sent}, accepted ${accepted}, dropped ${st.packetsDropped}, max queue ${maxQueue} B, max socket buffer ${maxSocket} B, memory growth ${(grew / 1e6).toFixed(1)} MB`);
    assert.equal(st.packetsDropped, sent - accepted);
    assert.ok(st.packetsDropped > sent * 0.9, 'almost everything was dropped');
    assert.ok(maxQueue <= MAX_QUEUE, `queue stayed within its bound (${maxQueue})`);
    assert.ok(maxSocket <= MAX_QUEUE + RESERVE + 64 * 1024, `socket buffer bounded (${maxSocket})`);
    assert.ok(grew < 60e6, `memory grew ${grew} bytes for 120 MB offered`);
    assert.equal(conn.state, 'open', 'dropping packets does not tear the link down');
    relay.destroy();
  } finally {
    await server.close();
    cleanup();
  }
});

test('control frames beyond their reserve are a fatal link error (the owner reconnects)', async () => {
  const { path, cleanup } = tempSocketPath();
  const slog = captureLogger('s');
  const server = new LinkServer({ path, software: 's', logger: slog.logger, maxQueueBytes: MAX_QUEUE, controlReserveBytes: RESERVE });
  try {
    await server.listen();
    const opened = once(server, 'open') as Promise<[LinkConnection]>;
    const relay = await stuckRelay(path);
    const [conn] = await opened;
    const closed = once(server, 'close') as Promise<[LinkConnection, { reason: string }]>;
    let refused = 0;
    for (let t = 0; t < 500 && conn.state === 'open'; t++) {
      for (let i = 0; i < 1000; i++) if (!conn.send({ kind: 'port-opened', token: i, family: 4, port: 50000, ok: false, error: 'EADDRINUSE' })) refused++;
      await turn();
    }
    const [, info] = await closed;
    assert.match(info.reason, /control queue overflow/);
    assert.ok(refused > 0);
    assert.ok(conn.stats().queueBytes <= MAX_QUEUE + RESERVE);
    relay.destroy();
  } finally {
    await server.close();
    cleanup();
  }
});

test('many frames in one turn leave in one socket write burst', async () => {
  const { path, cleanup } = tempSocketPath();
  const server = new LinkServer({ path, software: 's', logger: captureLogger('s').logger });
  try {
    await server.listen();
    const opened = once(server, 'open') as Promise<[LinkConnection]>;
    const s = createConnection(path);
    await once(s, 'connect');
    s.write(encodeFrame({ kind: 'hello', version: PROTOCOL_VERSION, role: 'relay', pid: 3, software: 'r' }));
    const [conn] = await opened;
    const flushesBefore = conn.stats().flushes;
    for (let i = 0; i < 100; i++) conn.send({ kind: 'packet-in', local: { family: 6, port: 3478 }, remote: { family: 6, address: '2001:db8::5', port: 1 }, data: Buffer.alloc(100) });
    await turn();
    await turn();
    const st = conn.stats();
    assert.equal(st.flushes - flushesBefore, 1, 'one flush for 100 frames');
    assert.equal(st.packetsDropped, 0);
    s.destroy();
  } finally {
    await server.close();
    cleanup();
  }
});
