// Link version 2 handshake: the sidecar names the relayed addresses in its
// HELLO (the relay has no network to choose them), and the server refuses a
// connecting process its checkPeer rejects before it says anything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { LinkClient } from '../../src/link/client.ts';
import { LinkServer } from '../../src/link/server.ts';
import { FrameReader } from '../../src/link/reader.ts';
import type { Hello, LinkConnection } from '../../src/link/connection.ts';
import type { Frame } from '../../src/link/protocol.ts';
import { configSchema } from '../../src/config/schema.ts';
import { createLogHub } from '../../src/shared/logger.ts';
import { buildServerOptions } from '../../src/relay/build.ts';
import { TurnServer } from '../../src/relay/server/index.ts';
import { startSidecarTransport } from '../../src/relay/transport/sidecar.ts';
import type { RelayedAddresses } from '../../src/link/protocol.ts';
import { sink } from '../telemetry/sink.ts';
import { captureLogger, tempSocketPath, until } from './helpers.ts';

const fast = { initialMs: 10, maxMs: 50, jitter: 0, rejectedRetryMs: 60_000 };

test('the relay learns the relayed addresses from the sidecar\'s HELLO', async () => {
  const { path, cleanup } = tempSocketPath();
  const server = new LinkServer({ path, software: 's', logger: captureLogger('s').logger, relayAddresses: { v4: '203.0.113.9', v6: '2001:db8::9' } });
  const client = new LinkClient({ path, software: 'r', logger: captureLogger('r').logger, backoff: fast });
  try {
    await server.listen();
    const opened = once(client, 'open') as Promise<[LinkConnection, Hello]>;
    const sopen = once(server, 'open') as Promise<[LinkConnection, Hello]>;
    client.start();
    const [[, sidecarHello], [, relayHello]] = await Promise.all([opened, sopen]);
    assert.deepEqual(sidecarHello.relayAddresses, { v4: '203.0.113.9', v6: '2001:db8::9' });
    assert.equal(relayHello.relayAddresses, undefined, 'the relay names none');
  } finally {
    client.stop();
    await server.close();
    cleanup();
  }
});

test('a process checkPeer refuses gets REJECT forbidden before any HELLO, the server reports it, the client retries slowly', async () => {
  const { path, cleanup } = tempSocketPath();
  const slog = captureLogger('s');
  let checks = 0;
  const server = new LinkServer({
    path,
    software: 's',
    logger: slog.logger,
    checkPeer: () => {
      checks++;
      return 'process 1 of uid 4242 connected to the link; only the relay user may';
    },
  });
  try {
    await server.listen();
    // What exactly a refused process receives: one REJECT, nothing before it.
    const s = createConnection(path);
    const frames: Frame[] = [];
    const reader = new FrameReader({ onFrame: (f) => frames.push(f), onError: (e) => assert.fail(e) });
    s.on('data', (d: Buffer) => reader.push(d));
    const refused = once(server, 'refused') as Promise<[string]>;
    await once(s, 'close');
    assert.deepEqual(frames, [{ kind: 'reject', code: 'forbidden', reason: 'process 1 of uid 4242 connected to the link; only the relay user may' }]);
    assert.match((await refused)[0], /uid 4242/);
    assert.equal(server.current, null);

    // A LinkClient sees a rejection (never an open) and waits rejectedRetryMs.
    const client = new LinkClient({ path, software: 'r', logger: captureLogger('r').logger, backoff: fast });
    let opened = false;
    client.on('open', () => (opened = true));
    client.start();
    const [info] = (await once(client, 'close')) as [{ rejected?: string; opened: boolean }];
    assert.equal(info.rejected, 'forbidden');
    assert.equal(info.opened, false);
    const attempts = client.attempts;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(client.attempts, attempts, 'no quick reconnect loop');
    assert.equal(opened, false);
    client.stop();
    await until(() => checks === 2, 'both connections checked');
  } finally {
    await server.close();
    cleanup();
  }
});

test('the relay builds its server with the first HELLO\'s addresses, and fails its transport when a later sidecar names others', async () => {
  const { path, cleanup } = tempSocketPath();
  const config = configSchema.parse({ socket: path, users: 'a:bcdefgh', relayTransport: 'sidecar' });
  const logs = createLogHub({ destination: sink().stream as never, filter: 'info' });
  const built: RelayedAddresses[] = [];
  const buildServer = (a: RelayedAddresses) => {
    built.push(a);
    return new TurnServer(buildServerOptions(config, { relayAddresses: a }));
  };
  const first = new LinkServer({ path, software: 's1', logger: captureLogger('s1').logger, relayAddresses: { v4: '203.0.113.1' } });
  await first.listen();
  const running = await startSidecarTransport({ config, buildServer, logs });
  try {
    assert.deepEqual(built, [{ v4: '203.0.113.1' }]);
    assert.deepEqual(running.describe().relayAddresses, { v4: '203.0.113.1 (sidecar)', v6: 'unavailable' });
    let failed: string | undefined;
    void running.failed?.then((r) => (failed = r));
    // The same addresses after a sidecar restart: nothing to do.
    await first.close();
    const same = new LinkServer({ path, software: 's2', logger: captureLogger('s2').logger, relayAddresses: { v4: '203.0.113.1' } });
    // Listened for before listen(): the waiting relay connects as soon as the
    // socket file appears and can finish its handshake while listen() still
    // sets the file's mode, so 'open' may come before listen() resolves.
    const sameOpen = once(same, 'open');
    await same.listen();
    await sameOpen;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(failed, undefined);
    await same.close();
    // Other addresses: allocations already handed out carry the old ones, so the relay must start anew.
    const other = new LinkServer({ path, software: 's3', logger: captureLogger('s3').logger, relayAddresses: { v4: '203.0.113.2' } });
    await other.listen();
    await until(() => failed !== undefined, 'the transport failed');
    assert.match(failed!, /203\.0\.113\.2.*instead of.*203\.0\.113\.1/);
    assert.equal(built.length, 1, 'the server was built once');
    await other.close();
  } finally {
    await running.close();
    cleanup();
  }
});
