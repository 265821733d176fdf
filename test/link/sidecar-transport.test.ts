// The paired deployment in one process, on loopback: the sidecar's UDP
// sockets + link server + relay bridge, and the relay's TurnServer + Driver +
// SidecarTransport, with a real TURN client and a UDP peer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { randomInt } from 'node:crypto';
import { configSchema } from '../../src/config/schema.ts';
import { buildServerOptions } from '../../src/relay/build.ts';
import { TurnServer } from '../../src/relay/server/index.ts';
import type { ChannelBinding, DataPlaneEvent } from '../../src/relay/server/types.ts';
import { Driver } from '../../src/relay/transport/driver.ts';
import { SidecarTransport } from '../../src/relay/transport/sidecar.ts';
import { LinkServer } from '../../src/link/server.ts';
import { UdpSockets } from '../../src/sidecar/sockets.ts';
import { RelayBridge } from '../../src/sidecar/sockets/relay-bridge.ts';
import { relayLimits } from '../../src/sidecar/sockets/relay-guard.ts';
import { PROTOCOL_VERSION } from '../../src/link/protocol.ts';
import { TurnClient, TurnError } from '../helpers/turn-client.ts';
import { MemoryChannelMap, captureLogger, freeUdpPort, tempSocketPath, until } from './helpers.ts';

const fast = { initialMs: 10, maxMs: 50, jitter: 0, rejectedRetryMs: 60_000 };

async function world(opts: { ackTimeoutMs?: number } = {}) {
  const { path, cleanup } = tempSocketPath();
  const listenPort = await freeUdpPort();
  const min = 20000 + randomInt(0, 9000);
  const config = configSchema.parse({ listenPort, portRange: `${min}-${min + 200}`, users: 'alice:secret1', allowedPeers: '127.0.0.0/8' });
  const relayLog = captureLogger('relay');
  const sidecarLog = captureLogger('sidecar');

  const channels = new MemoryChannelMap();
  let bridge: RelayBridge | undefined;
  const sockets = new UdpSockets({ listenPort, listenAddresses: ['127.0.0.1'], onPacket: (l, r, d) => bridge?.packetIn(l, r, d) });
  await sockets.listenAll();
  const link = new LinkServer({ path, software: 'sidecar-test', logger: sidecarLog.logger });
  await link.listen();
  bridge = new RelayBridge({ server: link, sockets, channels, limits: relayLimits(config), logger: sidecarLog.logger });

  const server = new TurnServer(buildServerOptions(config, { relayAddresses: { v4: '127.0.0.1' } }));
  const transport = new SidecarTransport({ path, software: 'relay-test', logger: relayLog.logger, snapshot: () => server.snapshot(), backoff: fast, ackTimeoutMs: opts.ackTimeoutMs ?? 5000 });
  const driver = new Driver(server, transport);
  transport.attach(driver);

  const peer = createSocket('udp4');
  peer.bind(0, '127.0.0.1');
  await once(peer, 'listening');
  const clients: TurnClient[] = [];
  const client = async () => {
    const c = await TurnClient.open({ server: { address: '127.0.0.1', port: listenPort }, username: 'alice', password: 'secret1', retransmitMs: 300 });
    clients.push(c);
    return c;
  };
  const close = async () => {
    for (const c of clients) await c.close();
    peer.close();
    transport.stop();
    driver.close();
    await link.close();
    await sockets.close();
    cleanup();
  };
  return { path, config, listenPort, sockets, link, bridge, channels, server, transport, driver, peer, client, close, relayLog, sidecarLog };
}

const peerAddr = (peer: Socket) => ({ family: 4 as const, address: '127.0.0.1', port: peer.address().port });

test('TURN over the link: allocate, bind a channel (ack-gated), relay both ways', async () => {
  const w = await world();
  try {
    const synced = once(w.bridge, 'resynced');
    w.transport.start();
    await once(w.transport, 'open');
    await synced; // the empty initial snapshot

    const c = await w.client();
    const alloc = await c.allocate();
    const relayed = alloc.relayed[0]!;
    assert.ok(w.sockets.hasPort(4, relayed.port), 'the sidecar bound the allocation port the relay asked for');
    await c.createPermission([peerAddr(w.peer)]);

    // Hold the map write: the ChannelBind answer must wait for it.
    let release!: () => void;
    w.channels.gate = new Promise<void>((r) => (release = r));
    let answered = false;
    const bound = c.channelBind(0x4001, peerAddr(w.peer)).then(() => (answered = true));
    await until(() => w.channels.installsStarted === 1, 'the map write to start');
    await until(() => w.transport.stats().heldForAck >= 1, 'the success response to be held');
    assert.equal(answered, false, 'no ChannelBind success before the binding is installed');
    release();
    await bound;
    assert.deepEqual(w.channels.ops, ['replace 0', 'install 16385']);
    assert.equal(w.channels.map.size, 1);

    // client -> peer through the allocation port
    const atPeer = once(w.peer, 'message') as Promise<[Buffer, { port: number }]>;
    c.sendChannelData(0x4001, Buffer.from('to-peer'));
    const [m1, r1] = await atPeer;
    assert.equal(m1.toString(), 'to-peer');
    assert.equal(r1.port, relayed.port);
    // peer -> client as ChannelData
    const atClient = new Promise<{ channel?: number; data: Uint8Array }>((r) => c.onData(r));
    w.peer.send('to-client', relayed.port, '127.0.0.1');
    const d = await atClient;
    assert.equal(d.channel, 0x4001);
    assert.equal(Buffer.from(d.data).toString(), 'to-client');

    const st = w.transport.stats();
    assert.ok(st.packetsIn >= 6 && st.packetsOut >= 6);
    assert.equal(st.ackTimeouts, 0);
  } finally {
    await w.close();
  }
});

test('relay disconnect: the sidecar closes its ports and clears the map; reconnect re-announces state', async () => {
  const w = await world();
  try {
    w.transport.start();
    await once(w.bridge, 'resynced');
    const c = await w.client();
    const relayed = (await c.allocate()).relayed[0]!;
    await c.createPermission([peerAddr(w.peer)]);
    await c.channelBind(0x4002, peerAddr(w.peer));
    assert.equal(w.channels.map.size, 1);

    const gone = once(w.bridge, 'relay-close') as Promise<[string]>;
    w.transport.stop();
    const [reason] = await gone;
    assert.match(reason, /peer closed/);
    await w.bridge.settled();
    assert.equal(w.sockets.hasPort(4, relayed.port), false, 'allocation port closed');
    assert.equal(w.channels.map.size, 0, 'channel map cleared');
    assert.ok(w.sidecarLog.has(/relay disconnected/));

    const resynced = once(w.bridge, 'resynced') as Promise<[number, number, number, number]>;
    w.transport.start();
    const [, ports, chans, failed] = await resynced;
    assert.deepEqual([ports, chans, failed], [1, 1, 0]);
    assert.ok(w.sockets.hasPort(4, relayed.port), 'allocation port reopened from the snapshot');
    assert.equal(w.channels.map.size, 1, 'binding reinstalled from the snapshot');
    assert.equal([...w.channels.map.values()][0]!.channel, 0x4002);
    await until(() => w.transport.stats().snapshotsSent === 2, 'second snapshot');

    // Traffic flows again after the resync.
    const atPeer = once(w.peer, 'message') as Promise<[Buffer]>;
    c.sendChannelData(0x4002, Buffer.from('again'));
    assert.equal((await atPeer)[0].toString(), 'again');
  } finally {
    await w.close();
  }
});

test('sidecar restart: the relay reconnects on its own and resyncs a fresh sidecar', async () => {
  const w = await world();
  try {
    w.transport.start();
    await once(w.bridge, 'resynced');
    const c = await w.client();
    const relayed = (await c.allocate()).relayed[0]!;
    const down = once(w.transport, 'close');
    await w.link.close();
    await down;
    await w.bridge.settled();
    assert.equal(w.sockets.hasPort(4, relayed.port), false);
    // The "new" sidecar process: same sockets object, new link server and bridge.
    const link2 = new LinkServer({ path: w.path, software: 'sidecar-2', logger: captureLogger('s2').logger });
    const bridge2 = new RelayBridge({ server: link2, sockets: w.sockets, channels: w.channels, limits: relayLimits(w.config), logger: captureLogger('b2').logger });
    // Before listen(): the waiting relay may connect and resync while listen() still sets the file's mode.
    const resynced = once(bridge2, 'resynced');
    await link2.listen();
    const [, ports] = (await resynced) as [number, number];
    assert.equal(ports, 1);
    assert.ok(w.sockets.hasPort(4, relayed.port));
    await link2.close();
  } finally {
    await w.close();
  }
});

test('resync with an allocation port taken meanwhile: the relay deletes that allocation (unbound, closed), the client gets 437', async () => {
  const w = await world();
  const holder = createSocket('udp4');
  try {
    w.transport.start();
    await once(w.bridge, 'resynced');
    const c = await w.client();
    const relayed = (await c.allocate()).relayed[0]!;
    await c.channelBind(0x4004, peerAddr(w.peer));
    // The link drops: the sidecar closes the allocation port and clears the map.
    const gone = once(w.bridge, 'relay-close');
    w.transport.stop();
    await gone;
    await w.bridge.settled();
    // Someone else binds the relayed port before the relay is back.
    holder.bind(relayed.port, '127.0.0.1');
    await once(holder, 'listening');
    const resynced = once(w.bridge, 'resynced') as Promise<[number, number, number, number]>;
    w.transport.start();
    const [, ports, chans, failed] = await resynced;
    assert.deepEqual([ports, chans, failed], [1, 1, 1]);
    await until(() => w.server.stats().allocations === 0, 'the allocation deleted');
    const warn = w.relayLog.records.find((r) => /not reopened after resync/.test(r.msg));
    assert.ok(warn, 'warned');
    assert.equal(warn.level, 40);
    assert.equal(warn.port, relayed.port);
    assert.match(String(warn.error), /EADDRINUSE/);
    // The binding the snapshot reinstalled is removed again.
    await until(() => w.channels.ops.at(-1) === 'remove 16388', 'the channel unbound in the map');
    await w.bridge.settled();
    assert.equal(w.channels.map.size, 0);
    assert.deepEqual(w.server.snapshot(), []);
    await assert.rejects(c.refresh(600), (e) => e instanceof TurnError && e.code === 437);
    // A fresh allocation works (on another port).
    const again = (await c.allocate()).relayed[0]!;
    assert.notEqual(again.port, relayed.port);
    assert.ok(w.sockets.hasPort(4, again.port));
  } finally {
    holder.close();
    await w.close();
  }
});

test('no ack in time: the held answer is sent anyway (fail open) and counted', async () => {
  const w = await world({ ackTimeoutMs: 100 });
  try {
    w.transport.start();
    await once(w.bridge, 'resynced');
    const c = await w.client();
    await c.allocate();
    await c.createPermission([peerAddr(w.peer)]);
    w.channels.gate = new Promise<void>(() => {}); // the map write never finishes
    await c.channelBind(0x4003, peerAddr(w.peer));
    assert.equal(w.transport.stats().ackTimeouts, 1);
    assert.ok(w.relayLog.has(/fail open/));
  } finally {
    await w.close();
  }
});

test('open-port with the sidecar away fails at once; a taken port reports false', async () => {
  const { path, cleanup } = tempSocketPath();
  const results: [number, boolean][] = [];
  const events: DataPlaneEvent[] = [];
  const transport = new SidecarTransport({ path, software: 'r', logger: captureLogger('r').logger, snapshot: () => events, backoff: fast });
  transport.attach({ datagram: () => {}, portOpened: (t, ok) => results.push([t, ok]), portLost: () => {} });
  transport.openPort(1, 4, 40000);
  await until(() => results.length === 1, 'immediate failure');
  assert.deepEqual(results, [[1, false]]);
  assert.equal(transport.stats().openPortsFailedNoLink, 1);

  const holder = createSocket('udp4');
  holder.bind(0, '127.0.0.1');
  await once(holder, 'listening');
  const sockets = new UdpSockets({ listenPort: 0, listenAddresses: ['127.0.0.1'], onPacket: () => {} });
  const link = new LinkServer({ path, software: 's', logger: captureLogger('s').logger });
  await link.listen();
  // Any port: the taken one is an ephemeral port of the host.
  new RelayBridge({ server: link, sockets, limits: relayLimits(configSchema.parse({ portRange: '1024-65535', listenPort: 1 })), logger: captureLogger('b').logger });
  try {
    transport.start();
    await once(transport, 'open');
    transport.openPort(2, 4, holder.address().port);
    await until(() => results.length === 2, 'port-opened');
    assert.deepEqual(results[1], [2, false]);
  } finally {
    transport.stop();
    holder.close();
    await link.close();
    await sockets.close();
    cleanup();
  }
});

test('version mismatch through the transport: both sides log it, the transport stays closed', async () => {
  const { path, cleanup } = tempSocketPath();
  const rlog = captureLogger('r');
  const slog = captureLogger('s');
  const link = new LinkServer({ path, software: 's', logger: slog.logger });
  await link.listen();
  const transport = new SidecarTransport({ path, software: 'r', logger: rlog.logger, snapshot: () => [], backoff: fast, version: PROTOCOL_VERSION + 1 });
  try {
    let opened = false;
    transport.on('open', () => (opened = true));
    transport.start();
    await until(() => rlog.has(/version mismatch/) && slog.has(/version mismatch/), 'mismatch logged on both sides');
    assert.equal(opened, false);
    assert.equal(transport.connected, false);
  } finally {
    transport.stop();
    await link.close();
    cleanup();
  }
});
