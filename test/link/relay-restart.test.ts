// A relay process that ends and a new one that starts, in-process: the
// sidecar's bridge keeps the ports, the bindings and the relay's state
// document for its grace time, and the next relay (startSidecarTransport, as
// cmd/relay.ts runs it) restores them: the client's allocation, permission,
// channel and nonce carry on with no new Allocate and no 438. Without a relay
// back in time, the sidecar clears everything as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createSocket, type Socket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { configSchema } from '../../src/config/schema.ts';
import { createLogHub } from '../../src/shared/logger.ts';
import { LinkServer } from '../../src/link/server.ts';
import { UdpSockets } from '../../src/sidecar/sockets.ts';
import { RelayBridge } from '../../src/sidecar/sockets/relay-bridge.ts';
import { relayLimits } from '../../src/sidecar/sockets/relay-guard.ts';
import { buildServerOptions } from '../../src/relay/build.ts';
import { TurnServer } from '../../src/relay/server/index.ts';
import { startSidecarTransport } from '../../src/relay/transport/sidecar.ts';
import type { RelayedAddresses } from '../../src/link/protocol.ts';
import { TurnClient, TurnError } from '../helpers/turn-client.ts';
import { sink } from '../telemetry/sink.ts';
import { MemoryChannelMap, captureLogger, freeUdpPort, tempSocketPath, until } from './helpers.ts';

async function world(graceMs: number) {
  const { path, cleanup } = tempSocketPath();
  const listenPort = await freeUdpPort();
  const min = 20000 + randomInt(0, 9000);
  const config = configSchema.parse({ socket: path, listenPort, portRange: `${min}-${min + 200}`, users: 'alice:secret1', allowedPeers: '127.0.0.0/8', relayTransport: 'sidecar' });
  const sidecarLog = captureLogger('sidecar');
  const channels = new MemoryChannelMap();
  let bridge: RelayBridge | undefined;
  const sockets = new UdpSockets({ listenPort, listenAddresses: ['127.0.0.1'], onPacket: (l, r, d) => bridge?.packetIn(l, r, d) });
  await sockets.listenAll();
  const link = new LinkServer({ path, software: 'sidecar-test', logger: sidecarLog.logger, relayAddresses: { v4: '127.0.0.1' } });
  bridge = new RelayBridge({ server: link, sockets, channels, limits: relayLimits(config), logger: sidecarLog.logger, graceMs });
  await link.listen();
  const relayLines = sink();
  const logs = createLogHub({ destination: relayLines.stream as never, filter: 'info' });
  const buildServer = (a: RelayedAddresses) => new TurnServer(buildServerOptions(config, { relayAddresses: a }));
  /** One relay process's life: cmd/relay.ts's transport over this sidecar. */
  const startRelay = () => startSidecarTransport({ config, buildServer, logs });

  const peer = createSocket('udp4');
  peer.bind(0, '127.0.0.1');
  await once(peer, 'listening');
  const client = await TurnClient.open({ server: { address: '127.0.0.1', port: listenPort }, username: 'alice', password: 'secret1', retransmitMs: 300 });
  const close = async () => {
    await client.close();
    peer.close();
    bridge!.stopGrace();
    await link.close();
    await sockets.close();
    cleanup();
  };
  const newClient = () => TurnClient.open({ server: { address: '127.0.0.1', port: listenPort }, username: 'alice', password: 'secret1', retransmitMs: 300 });
  return { bridge: bridge!, link, sockets, channels, peer, client, newClient, startRelay, relayLines, sidecarLog, close };
}

const peerAddr = (peer: Socket) => ({ family: 4 as const, address: '127.0.0.1', port: peer.address().port });

async function echoThrough(w: Awaited<ReturnType<typeof world>>, text: string): Promise<void> {
  const atPeer = once(w.peer, 'message') as Promise<[Buffer]>;
  w.client.sendChannelData(0x4001, Buffer.from(text));
  assert.equal((await atPeer)[0].toString(), text);
}

test('relay restart within the grace time: ports, binding, allocation and nonce survive; the new relay relays at once', async () => {
  const w = await world(5000);
  try {
    const first = await startRelay(w);
    const relayed = (await w.client.allocate({ lifetime: 600 })).relayed[0]!;
    await w.client.createPermission([peerAddr(w.peer)]);
    await w.client.channelBind(0x4001, peerAddr(w.peer));
    await echoThrough(w, 'before');
    // The state document reaches the sidecar within its debounce.
    await until(() => w.bridge.stats().heldStateBytes > 0 && w.channels.map.size === 1, 'state held');
    await new Promise((r) => setTimeout(r, 400));

    const gone = once(w.bridge, 'relay-close');
    await first.close();
    await gone;
    await w.bridge.settled();
    assert.ok(w.sockets.hasPort(4, relayed.port), 'allocation port kept open');
    assert.equal(w.channels.map.size, 1, 'binding kept in the map');
    // With no relay, a datagram for it is dropped and counted, not buffered.
    const dropped = w.bridge.stats().droppedNoRelay;
    w.client.sendChannelData(0x4001, Buffer.from('into the gap'));
    await until(() => w.bridge.stats().droppedNoRelay > dropped, 'dropped while no relay');

    const resynced = once(w.bridge, 'resynced') as Promise<[number, number, number, number]>;
    const second = await startRelay(w);
    try {
      const [, ports, chans, failed] = await resynced;
      assert.deepEqual([ports, chans, failed], [1, 1, 0], 'the new relay re-announced what the old one had');
      assert.ok(!w.channels.ops.includes('clear'), 'the map was never cleared');
      assert.equal(w.bridge.stats().graceReturns, 1);
      const st = second.server.stats();
      assert.equal(st.allocations, 1);
      assert.equal(st.permissions, 1);
      assert.equal(st.channels, 1);
      // The same allocation relays at once: no new Allocate, and the old nonce still passes.
      await echoThrough(w, 'after');
      const lifetime = await w.client.refresh(600);
      assert.equal(lifetime, 600);
      const responses = second.server.stats().responses;
      assert.equal(responses['refresh:success'], 1);
      assert.equal(responses['refresh:438'] ?? 0, 0, 'no stale nonce after the restart');
      assert.equal(responses['refresh:401'] ?? 0, 0);
      assert.ok(w.relayLines.lines.some((l) => l.msg === 'state restored from the previous relay' && l.allocations === 1 && l.channels === 1));
    } finally {
      await second.close();
    }
  } finally {
    await w.close();
  }
});

test('no relay within the grace time: ports closed, map cleared, state forgotten; the next relay starts empty', async () => {
  const w = await world(300);
  try {
    const first = await startRelay(w);
    const relayed = (await w.client.allocate()).relayed[0]!;
    await w.client.createPermission([peerAddr(w.peer)]);
    await w.client.channelBind(0x4001, peerAddr(w.peer));
    await until(() => w.bridge.stats().heldStateBytes > 0, 'state held');
    const expired = once(w.bridge, 'grace-expired');
    await first.close();
    await expired;
    await w.bridge.settled();
    assert.equal(w.sockets.hasPort(4, relayed.port), false);
    assert.equal(w.channels.map.size, 0);
    assert.equal(w.bridge.stats().heldStateBytes, 0);
    assert.ok(w.sidecarLog.has(/no relay back within the grace time/));

    const resynced = once(w.bridge, 'resynced') as Promise<[number, number, number, number]>;
    const second = await startRelay(w);
    try {
      const [, ports, chans] = await resynced;
      assert.deepEqual([ports, chans], [0, 0]);
      assert.equal(second.server.stats().allocations, 0);
    } finally {
      await second.close();
    }
  } finally {
    await w.close();
  }
});

test('drain: new Allocates get 300 with ALTERNATE-SERVER (or 508 without one), existing allocations keep working, also after a relay restart', async () => {
  const w = await world(5000);
  const others: TurnClient[] = [];
  try {
    const first = await startRelay(w);
    await w.client.allocate();
    await w.client.createPermission([peerAddr(w.peer)]);
    await w.client.channelBind(0x4001, peerAddr(w.peer));
    w.link.current!.send({ kind: 'drain', alternate: { family: 4, address: '192.0.2.50', port: 3478 } });
    await until(() => first.server.draining, 'relay draining');
    const late = await w.newClient();
    others.push(late);
    await assert.rejects(late.allocate(), (e: unknown) => e instanceof TurnError && e.code === 300);
    await echoThrough(w, 'still served');
    assert.equal(await w.client.refresh(600), 600);
    // A restarted relay is told again (as the sidecar does on every connect while draining); without an alternate: 508.
    await first.close();
    const second = await startRelay(w);
    try {
      await until(() => w.bridge.stats().relayConnected, 'relay back');
      w.link.current!.send({ kind: 'drain' });
      await until(() => second.server.draining, 'second relay draining');
      const later = await w.newClient();
      others.push(later);
      await assert.rejects(later.allocate(), (e: unknown) => e instanceof TurnError && e.code === 508);
      await echoThrough(w, 'served after the restart');
    } finally {
      await second.close();
    }
  } finally {
    for (const c of others) await c.close();
    await w.close();
  }
});

function startRelay(w: Awaited<ReturnType<typeof world>>) {
  return w.startRelay();
}
