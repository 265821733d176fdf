// Kernel binding maps full (real BPF maps of the mini_router fixture, capacity
// 2) under the paired deployment in one process: the sidecar's sockets, link
// server and relay bridge writing through KernelBindings, the relay's
// TurnServer, Driver and SidecarTransport, a real TURN client and UDP peers.
// ChannelBinds beyond the capacity still succeed and their channels are
// relayed in userspace; the sidecar warns once per episode (map, entries,
// capacity), counts the refused writes and reports `full` in its map stats
// (what /status and turnpike.map.* show), and says when the maps have room
// again. A kernel write that fails for another reason (a CHANNEL_ACK that is
// not ok) does not fail the ChannelBind either: the relay fails open.
import { relayLimits } from '../../src/sidecar/sockets/relay-guard.ts';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { randomInt } from 'node:crypto';
import { configSchema } from '../../src/config/schema.ts';
import { buildServerOptions } from '../../src/relay/build.ts';
import { TurnServer } from '../../src/relay/server/index.ts';
import { Driver } from '../../src/relay/transport/driver.ts';
import { SidecarTransport } from '../../src/relay/transport/sidecar.ts';
import { LinkServer } from '../../src/link/server.ts';
import { UdpSockets } from '../../src/sidecar/sockets.ts';
import { RelayBridge, type ChannelMap } from '../../src/sidecar/sockets/relay-bridge.ts';
import { KernelBindings } from '../../src/sidecar/ebpf.ts';
import { XdpRouter } from '../../src/sidecar/bpf/router.ts';
import { requireRoot, requireCapability } from '../helpers/env.ts';
import { TurnClient } from '../helpers/turn-client.ts';
import { buildFixture, canBuildBpf } from '../bpf/fixtures/build.ts';
import { captureLogger, tempSocketPath, until } from '../link/helpers.ts';

const closers: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** Sidecar half and relay half on loopback, the bridge writing `channels`; started and resynced. */
async function pair(channels: ChannelMap) {
  const { path, cleanup } = tempSocketPath();
  const probe = createSocket('udp4').bind(0, '127.0.0.1');
  await once(probe, 'listening');
  const listenPort = probe.address().port;
  probe.close();
  const min = 20000 + randomInt(0, 9000);
  const config = configSchema.parse({ listenPort, portRange: `${min}-${min + 50}`, users: 'alice:secret1', allowedPeers: '127.0.0.0/8' });
  const relayLog = captureLogger('relay');
  let bridge: RelayBridge | undefined;
  const sockets = new UdpSockets({ listenPort, listenAddresses: ['127.0.0.1'], onPacket: (l, r, d) => bridge?.packetIn(l, r, d) });
  await sockets.listenAll();
  const link = new LinkServer({ path, software: 'sidecar-test', logger: captureLogger('link').logger });
  await link.listen();
  bridge = new RelayBridge({ server: link, sockets, channels, limits: relayLimits(config), logger: captureLogger('bridge').logger });
  const server = new TurnServer(buildServerOptions(config, { relayAddresses: { v4: '127.0.0.1' } }));
  const transport = new SidecarTransport({ path, software: 'relay-test', logger: relayLog.logger, snapshot: () => server.snapshot(), backoff: { initialMs: 10, maxMs: 50, jitter: 0, rejectedRetryMs: 60_000 } });
  const driver = new Driver(server, transport);
  transport.attach(driver);
  const synced = once(bridge, 'resynced');
  transport.start();
  await synced;
  const client = await TurnClient.open({ server: { address: '127.0.0.1', port: listenPort }, username: 'alice', password: 'secret1', retransmitMs: 300 });
  closers.push(async () => {
    await client.close();
    transport.stop();
    driver.close();
    await link.close();
    await sockets.close();
    cleanup();
  });
  return { client, transport, relayLog };
}

async function peerSockets(n: number): Promise<Socket[]> {
  const peers = Array.from({ length: n }, () => createSocket('udp4').bind(0, '127.0.0.1'));
  await Promise.all(peers.map((p) => once(p, 'listening')));
  closers.push(() => peers.forEach((p) => p.close()));
  return peers;
}

const at = (p: Socket) => ({ family: 4 as const, address: '127.0.0.1', port: p.address().port });

/** ChannelData out on `channel` arrives at `peer`, and the peer's answer comes back on that channel. */
async function relaysBothWays(client: TurnClient, channel: number, peer: Socket, relayedPort: number): Promise<void> {
  const atPeer = once(peer, 'message') as Promise<[Buffer, { port: number }]>;
  client.sendChannelData(channel, Buffer.from(`out-${channel}`));
  const [out, from] = await atPeer;
  assert.equal(out.toString(), `out-${channel}`);
  assert.equal(from.port, relayedPort);
  const back = new Promise<{ channel?: number; data: Uint8Array }>((r) => client.onData(r));
  peer.send(`in-${channel}`, relayedPort, '127.0.0.1');
  const d = await back;
  assert.equal(d.channel, channel);
  assert.equal(Buffer.from(d.data).toString(), `in-${channel}`);
}

test('binding maps full: ChannelBinds still succeed and relay in userspace; one warning, refused writes counted, room again reported', async (t) => {
  if (!requireRoot(t) || !requireCapability(t, canBuildBpf(), 'needs clang to build the BPF fixture')) return;
  const router = XdpRouter.load({ objectPath: buildFixture('mini_router'), mapCapacity: 2, log: captureLogger('load').logger });
  closers.push(() => router.close());
  const bpfLog = captureLogger('bpf');
  const kernel = new KernelBindings(router, bpfLog.logger);
  const { client, transport } = await pair(kernel.channels);
  const peers = await peerSockets(4);

  const relayed = (await client.allocate()).relayed[0]!.port;
  await client.createPermission(peers.map(at));
  for (let i = 0; i < 4; i++) await client.channelBind(0x4001 + i, at(peers[i]!));

  assert.equal(router.bindingCount(), 2, 'the kernel holds what fits');
  const stats = kernel.stats();
  assert.deepEqual(stats.tp_chan_to_peer, { entries: 2, capacity: 2, full: true, refusedWrites: 2 });
  assert.deepEqual(stats.tp_peer_to_chan, stats.tp_chan_to_peer);
  const warnings = bpfLog.records.filter((r) => /binding map full/.test(r.msg));
  assert.equal(warnings.length, 1, 'one warning for the episode');
  assert.equal(warnings[0]!.level, 40);
  assert.equal(warnings[0]!.map, 'tp_chan_to_peer');
  assert.equal(warnings[0]!.entries, 2);
  assert.equal(warnings[0]!.capacity, 2);
  assert.equal(transport.stats().ackFailures, 0, 'a full map is not a failed binding');

  // Every channel works: the first two through the kernel map entries (this
  // fixture does not relay, so userspace here too), the rest only in userspace.
  for (let i = 0; i < 4; i++) await relaysBothWays(client, 0x4001 + i, peers[i]!, relayed);

  // Deleting the allocation unbinds every channel: the maps drain, the episode ends.
  await client.refresh(0);
  await until(() => router.bindingCount() === 0, 'the channels to be unbound');
  assert.deepEqual(kernel.stats().tp_chan_to_peer, { entries: 0, capacity: 2, full: false, refusedWrites: 2 });
  assert.equal(bpfLog.records.filter((r) => /room again/.test(r.msg)).length, 1);
});

test('a kernel write that fails (CHANNEL_ACK not ok): the ChannelBind still succeeds and the channel relays in userspace', async () => {
  const failing: ChannelMap = {
    install: () => {
      throw new Error('map write failed: Operation not permitted (EPERM)');
    },
    remove: () => {},
    replaceAll: () => {},
    clear: () => {},
  };
  const { client, transport, relayLog } = await pair(failing);
  const [peer] = await peerSockets(1);
  const relayed = (await client.allocate()).relayed[0]!.port;
  await client.channelBind(0x4001, at(peer!));
  assert.equal(transport.stats().ackFailures, 1);
  assert.ok(relayLog.has(/could not install a channel binding/));
  await relaysBothWays(client, 0x4001, peer!, relayed);
});
