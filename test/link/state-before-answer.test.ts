// A relay killed right after answering must not take the answered change
// with it: the answer to a request that changed the state (here an Allocate
// and a CreatePermission) leaves only after a state document holding the
// change has gone to the sidecar (at once after a quiet interval, else at
// the next interval). The relay then stops without its final save (as a
// SIGKILL would), and the next relay is handed a document with the
// allocation and its permission. (Found by the soak: an allocation answered within the
// last 250 ms before a SIGKILL came back as 437 from the restarted relay.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomInt } from 'node:crypto';
import { configSchema } from '../../src/config/schema.ts';
import { buildServerOptions } from '../../src/relay/build.ts';
import { TurnServer } from '../../src/relay/server/index.ts';
import { encodeStateDocument, parseStateDocument } from '../../src/relay/server/state-document.ts';
import { Driver } from '../../src/relay/transport/driver.ts';
import { SidecarTransport } from '../../src/relay/transport/sidecar.ts';
import { LinkServer } from '../../src/link/server.ts';
import { UdpSockets } from '../../src/sidecar/sockets.ts';
import { RelayBridge } from '../../src/sidecar/sockets/relay-bridge.ts';
import { relayLimits } from '../../src/sidecar/sockets/relay-guard.ts';
import { TurnClient, toStunAddress } from '../helpers/turn-client.ts';
import { MemoryChannelMap, captureLogger, freeUdpPort, tempSocketPath } from './helpers.ts';

const INTERVAL_MS = 1000;

interface Setup {
  config: ReturnType<typeof configSchema.parse>;
  listenPort: number;
  bridge: RelayBridge;
  relay(s: TurnServer): SidecarTransport;
  close(): Promise<void>;
}

/** A sidecar's link and sockets on loopback, and relays made on demand whose documents carry `padBytes` of trailing whitespace. */
async function sidecarWithLink(intervalMs: number, padBytes = 0): Promise<Setup> {
  const { path, cleanup } = tempSocketPath();
  const listenPort = await freeUdpPort();
  const min = 20000 + randomInt(0, 9000);
  const config = configSchema.parse({ listenPort, portRange: `${min}-${min + 200}`, users: 'alice:secret1', allowedPeers: '127.0.0.0/8' });
  let bridge: RelayBridge | undefined;
  const sockets = new UdpSockets({ listenPort, listenAddresses: ['127.0.0.1'], onPacket: (l, r, d) => bridge?.packetIn(l, r, d) });
  await sockets.listenAll();
  const link = new LinkServer({ path, software: 'sidecar-test', logger: captureLogger('sidecar').logger });
  await link.listen();
  bridge = new RelayBridge({ server: link, sockets, channels: new MemoryChannelMap(), limits: relayLimits(config), logger: captureLogger('sidecar').logger, graceMs: 10_000 });
  const pad = Buffer.alloc(padBytes, 0x20); // JSON allows trailing whitespace: the document still parses
  const relay = (s: TurnServer) =>
    new SidecarTransport({
      path,
      software: 'relay-test',
      logger: captureLogger('relay').logger,
      snapshot: () => s.snapshot(),
      backoff: { initialMs: 10, maxMs: 50 },
      state: { changes: () => s.stateChanges, encode: () => Buffer.concat([encodeStateDocument(s.saveState(0, Date.now())), pad]), intervalMs },
    });
  const b = bridge;
  return {
    config, listenPort, bridge: b, relay,
    close: async () => {
      b.stopGrace();
      await link.close();
      await sockets.close();
      cleanup();
    },
  };
}

test('answers that change the state leave after the state document: a relay killed right after them loses nothing', async () => {
  const { config, listenPort, bridge, relay, close } = await sidecarWithLink(INTERVAL_MS);
  const server = new TurnServer(buildServerOptions(config, { relayAddresses: { v4: '127.0.0.1' } }));
  const first = relay(server);
  const driver = new Driver(server, first);
  first.attach(driver);
  const client = await TurnClient.open({ server: { address: '127.0.0.1', port: listenPort }, username: 'alice', password: 'secret1', retransmitMs: 300 });
  let second: SidecarTransport | undefined;
  try {
    const synced = once(bridge, 'resynced');
    first.start();
    await once(first, 'open');
    await synced;
    // A quiet interval: the Allocate's document goes at once, the CreatePermission's at the next tick.
    await new Promise((r) => setTimeout(r, INTERVAL_MS + 100));
    const relayed = (await client.allocate({ lifetime: 600 })).relayed[0]!;
    await client.createPermission([toStunAddress('127.0.0.1', 0)]);
    // Killed: no final save, the link just closes.
    const gone = once(bridge, 'relay-close');
    first.stop();
    driver.close();
    await gone;

    second = relay(new TurnServer(buildServerOptions(config, { relayAddresses: { v4: '127.0.0.1' } })));
    const held = once(second, 'held-state') as Promise<[Uint8Array]>;
    second.start();
    const parsed = parseStateDocument((await held)[0]);
    assert.ok(parsed.ok, 'the held document parses');
    assert.equal(parsed.doc.allocations.length, 1, 'the answered allocation is in the document the sidecar held');
    const a = parsed.doc.allocations[0]!;
    assert.equal(JSON.stringify(a).includes(String(relayed.port)), true, `the allocation on port ${relayed.port}: ${JSON.stringify(a)}`);
    assert.equal(JSON.stringify(a).includes('127.0.0.1'), true, 'its permission for the peer');
  } finally {
    await client.close();
    second?.stop();
    await close();
  }
});

// A document of a few thousand allocations is megabytes. Queued in one turn it
// filled the link writer past its limit, so the answers that followed it were
// dropped (ChannelBinds timed out at 10 binds/s with 2,000 allocations), and
// past the control reserve the link was torn down.
test('a multi-megabyte state document neither drops the answers that wait for it nor tears the link down', { timeout: 60_000 }, async () => {
  const { config, listenPort, bridge, relay, close } = await sidecarWithLink(100, 3 << 20);
  const server = new TurnServer(buildServerOptions(config, { relayAddresses: { v4: '127.0.0.1' } }));
  const t = relay(server);
  const driver = new Driver(server, t);
  t.attach(driver);
  const clients = await Promise.all(Array.from({ length: 8 }, () => TurnClient.open({ server: { address: '127.0.0.1', port: listenPort }, username: 'alice', password: 'secret1', retransmitMs: 10_000, timeoutMs: 20_000 })));
  let closes = 0;
  bridge.on('relay-close', () => closes++);
  try {
    const synced = once(bridge, 'resynced');
    t.start();
    await once(t, 'open');
    await synced;
    await Promise.all(clients.map(async (c, i) => {
      await c.allocate({ lifetime: 600 });
      for (let k = 0; k < 3; k++) await c.channelBind(0x4000 + k, toStunAddress('127.0.0.1', 40000 + i * 10 + k));
    }));
    assert.equal(clients.reduce((n, c) => n + c.retransmits, 0), 0, 'every answer came the first time (a retransmit is sent only after 10 s)');
    assert.equal(closes, 0, 'the link stayed up');
    assert.equal(t.stats().droppedBackpressure, 0, 'no answer was dropped at the link');
    assert.ok(bridge.stats().heldStateBytes > 3 << 20, 'the sidecar holds the whole document');
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    t.stop();
    driver.close();
    await close();
  }
});
