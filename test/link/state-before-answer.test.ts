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

test('answers that change the state leave after the state document: a relay killed right after them loses nothing', async () => {
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
  const server = new TurnServer(buildServerOptions(config, { relayAddresses: { v4: '127.0.0.1' } }));
  const relay = (s: TurnServer) =>
    new SidecarTransport({
      path,
      software: 'relay-test',
      logger: captureLogger('relay').logger,
      snapshot: () => s.snapshot(),
      backoff: { initialMs: 10, maxMs: 50 },
      state: { changes: () => s.stateChanges, encode: () => encodeStateDocument(s.saveState(0, Date.now())), intervalMs: INTERVAL_MS },
    });
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
    bridge.stopGrace();
    await link.close();
    await sockets.close();
    cleanup();
  }
});
