// Issue 15 on the real pair (sidecar + relay processes on loopback, the real
// posthog-node and @sentry/node against in-test servers), driven by coturn's
// turnutils_uclient: with TURNPIKE_LOG=info and `stream-logs` on with payload
// `debug`, the session's allocation, permission and channel lines (made by
// the relay at debug only because the stream wants them) arrive in Sentry at
// debug, and neither process prints them; with the flag off none arrive.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startFakePostHog, type FakePostHog } from '../helpers/fake-posthog.ts';
import { startFakeSentry, type FakeSentry, type SentryLog } from '../helpers/fake-sentry.ts';
import { requireCapability } from '../helpers/env.ts';
import { haveCoturnTools, runUclient, startPeer, describe, type Peer, type Relay } from '../interop/harness.ts';
import { USER, PASS, hasLine, sleep, startLoopbackPair, waitUntil, type LoopbackPair } from './telemetry-pair-harness.ts';

const FLUSH_MS = 200;
let ph: FakePostHog;
let sentry: FakeSentry;
let pair: LoopbackPair | undefined;
let peer: Peer | undefined;

before(async () => {
  if (!haveCoturnTools) return;
  ph = await startFakePostHog();
  sentry = await startFakeSentry();
  ph.setFlag('stream-logs', { enabled: false });
  peer = await startPeer();
  pair = await startLoopbackPair({
    sidecarEnv: {
      TURNPIKE_POSTHOG_KEY: 'phc_session',
      TURNPIKE_POSTHOG_HOST: ph.host,
      TURNPIKE_FLAGS_INTERVAL: '1',
      TURNPIKE_SENTRY_DSN: sentry.dsn,
      TURNPIKE_SENTRY_FLUSH_MS: String(FLUSH_MS),
    },
    // uclient's sockets all come from 127.0.0.1: lift the per-source budget so every line of the session is kept.
    relayEnv: { TURNPIKE_SESSION_LOG_RATE: '1000' },
  });
});

after(async () => {
  await pair?.stop();
  await peer?.stop();
  await ph?.close();
  await sentry?.close();
});

const sessionLines = (logs: SentryLog[]) => logs.filter((l) => l.attributes.module === 'session');
const printedSessionLines = (p: LoopbackPair) => [...p.sidecar.lines(), ...p.relay.lines()].filter((l) => l.module === 'session');
const flagState = async (p: LoopbackPair) => (await p.status()).flags['stream-logs'] as boolean;

/** One uclient session (allocate, permissions, channels, data, refresh, delete) through the pair: 0 lost. */
async function uclientSession(p: LoopbackPair): Promise<void> {
  const relay = { kind: 'turnpike', port: p.listenPort, portRange: p.portRange, output: () => '', stop: async () => {} } satisfies Relay;
  const s = await runUclient(relay, peer!, { user: USER, password: PASS });
  assert.deepEqual(s.errors, [], describe(s));
  assert.equal(s.lost, 0, describe(s));
}

/** Sets the flag and waits until the relay runs with that stream filter. */
async function setStreaming(p: LoopbackPair, on: boolean): Promise<void> {
  ph.setFlag('stream-logs', on ? { enabled: true, payload: 'debug' } : { enabled: false });
  await waitUntil(`flag ${on ? 'on' : 'off'} in the sidecar`, async () => (await flagState(p)) === on, 10_000);
  await waitUntil(`relay stream filter ${on ? 'debug' : 'off'}`, () =>
    p.sidecar.lines().filter((l) => l.process === 'relay' && l.msg === 'stream filter set by the sidecar').at(-1)?.stream === (on ? 'debug' : 'off'),
  );
}

function ready(t: TestContext): LoopbackPair | undefined {
  if (!requireCapability(t, haveCoturnTools && pair !== undefined, 'needs coturn (turnutils_uclient, turnutils_peer)')) return undefined;
  return pair;
}

test('flag off: a uclient session streams nothing and prints no session line', async (t) => {
  const p = ready(t);
  if (!p) return;
  await uclientSession(p);
  await sleep(FLUSH_MS * 5);
  assert.deepEqual(sessionLines(sentry.logs()), []);
  assert.deepEqual(printedSessionLines(p), []);
});

test('TURNPIKE_LOG=info, stream-logs on with payload debug: the session lines arrive in Sentry at debug; stdout shows none', async (t) => {
  const p = ready(t);
  if (!p) return;
  await setStreaming(p, true);
  await uclientSession(p);
  const want = ['allocation created', 'permission installed', 'channel bound'];
  const logs = await Promise.race([
    sentry.waitForLogs((ls) => want.every((m) => sessionLines(ls).some((l) => l.body === m))),
    sleep(15_000).then(() => assert.fail(`missing session lines in Sentry; got ${JSON.stringify(sessionLines(sentry.logs()).map((l) => l.body))}`)),
  ]);
  const lines = sessionLines(logs);
  assert.ok(lines.every((l) => l.level === 'debug' && l.attributes.process === 'relay'), JSON.stringify(lines.slice(0, 3)));
  const created = lines.find((l) => l.body === 'allocation created')!;
  assert.match(String(created.attributes.client), /^127\.0\.0\.1:\d+$/);
  assert.equal(created.attributes.transport, 'udp');
  assert.equal(created.attributes.user, USER);
  const bound = lines.find((l) => l.body === 'channel bound')!;
  // uclient binds a channel for RTP (the peer's port) and one for RTCP (port + 1).
  assert.ok([peer!.port, peer!.port + 1].map((port) => `127.0.0.1:${port}`).includes(String(bound.attributes.peer)), String(bound.attributes.peer));
  assert.equal(typeof bound.attributes.channel, 'number');
  // Made for the stream only: neither process printed one.
  assert.deepEqual(printedSessionLines(p), []);
  assert.ok(hasLine(p.sidecar, 'feature flag changed'), 'info lines are printed as before');
});

test('stream-logs off again: a new session streams nothing', async (t) => {
  const p = ready(t);
  if (!p) return;
  await setStreaming(p, false);
  await sleep(FLUSH_MS * 3); // what was buffered before the switch goes out first
  const before = sessionLines(sentry.logs()).length;
  await uclientSession(p);
  await sleep(FLUSH_MS * 5);
  assert.equal(sessionLines(sentry.logs()).length, before, 'session lines streamed after the flag went off');
  assert.deepEqual(printedSessionLines(p), []);
});
