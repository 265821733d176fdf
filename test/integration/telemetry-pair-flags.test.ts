// Issue 5 on the real pair (sidecar + relay processes, loopback, userspace
// datapath), with the real SDKs against in-test servers: posthog-node against
// a fake PostHog (/flags), @sentry/node against a fake Sentry envelope
// endpoint.
//   - stream-logs on: log lines of BOTH processes arrive in Sentry envelopes
//     (the relay's travel as LOG frames to the sidecar); off: they stop.
//   - PostHog down, slow or answering garbage: the flag is false and the relay
//     is unaffected (a Binding request is answered, the link stays up).
//   - POST /log reaches the relay's module loggers at once (LOG_FILTER frame).
// Relay lines are provoked with POST /log: applying a new filter makes the
// relay log "log filter set by the sidecar" with the filter text, a marker
// unique per phase.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startFakePostHog, type FakePostHog } from '../helpers/fake-posthog.ts';
import { startFakeSentry, type FakeSentry, type SentryLog } from '../helpers/fake-sentry.ts';
import { createSocket, type Socket } from 'node:dgram';
import { TurnClient, TurnError } from '../helpers/turn-client.ts';
import { USER, PASS, bindingRequest, hasLine, sleep, startLoopbackPair, waitUntil, type LoopbackPair } from './telemetry-pair-harness.ts';

const FLUSH_MS = 200;
let ph: FakePostHog;
let sentry: FakeSentry;
let pair: LoopbackPair;

before(async () => {
  ph = await startFakePostHog();
  sentry = await startFakeSentry();
  ph.setFlag('stream-logs', { enabled: false });
  pair = await startLoopbackPair({
    sidecarEnv: {
      TURNPIKE_POSTHOG_KEY: 'phc_pair',
      TURNPIKE_POSTHOG_HOST: ph.host,
      TURNPIKE_FLAGS_INTERVAL: '1',
      TURNPIKE_SENTRY_DSN: sentry.dsn,
      TURNPIKE_SENTRY_FLUSH_MS: String(FLUSH_MS),
    },
  });
});

after(async () => {
  await pair?.stop();
  await ph?.close();
  await sentry?.close();
});

/** Changes the log filter through the admin port; resolves once the relay applied it (its line reached the sidecar). */
async function provokeRelayLine(text: string): Promise<void> {
  const r = await pair.http('POST', '/log', text);
  assert.equal(r.status, 200, r.body);
  await waitUntil(`relay applied "${text}"`, () =>
    hasLine(pair.sidecar, 'log filter set by the sidecar', (l) => l.process === 'relay' && String(l.filter).includes(text)),
  );
}

const relayLine = (marker: string) => (l: SentryLog) =>
  l.attributes.process === 'relay' && l.body === 'log filter set by the sidecar' && String(l.attributes.filter).includes(marker);
const sidecarLine = (marker: string) => (l: SentryLog) =>
  l.attributes.module === 'admin' && l.body === 'log filter changed' && String(l.attributes.to).includes(marker);

const flagState = async () => (await pair.status()).flags['stream-logs'] as boolean;

test('stream-logs on: lines of sidecar and relay reach Sentry; off: they stop', async () => {
  // Off (PostHog says so): lines are produced and forwarded, none streamed.
  await provokeRelayLine('phase_off1=info');
  await sleep(FLUSH_MS * 5);
  assert.equal(sentry.logs().filter((l) => relayLine('phase_off1')(l) || sidecarLine('phase_off1')(l)).length, 0, 'nothing streamed while off');

  ph.setFlag('stream-logs', { enabled: true });
  await waitUntil('flag on in the sidecar', async () => (await flagState()) === true, 5000);
  await provokeRelayLine('phase_on=info');
  const logs = await Promise.race([
    sentry.waitForLogs((ls) => ls.some(relayLine('phase_on')) && ls.some(sidecarLine('phase_on'))),
    sleep(10_000).then(() => assert.fail(`no sidecar+relay lines in Sentry; got ${JSON.stringify(sentry.logs().map((l) => l.body))}`)),
  ]);
  const fromRelay = logs.find(relayLine('phase_on'))!;
  assert.equal(fromRelay.level, 'info');
  assert.equal(fromRelay.attributes.module, 'relay');
  // The relay line carries the relay's own fields, not the sidecar's.
  assert.equal(fromRelay.attributes.process, 'relay');
  assert.equal(logs.find(sidecarLine('phase_on'))!.attributes.process, 'sidecar');
  // The sidecar's flag transition line itself streamed too (it is logged as the flag turns on).
  assert.ok(hasLine(pair.sidecar, 'feature flag changed', (l) => l.to === true));

  ph.setFlag('stream-logs', { enabled: false });
  await waitUntil('flag off in the sidecar', async () => (await flagState()) === false, 5000);
  // Let anything buffered before the switch go out first.
  await sleep(FLUSH_MS * 3);
  const before = sentry.logs().length;
  await provokeRelayLine('phase_off2=info');
  await sleep(FLUSH_MS * 5);
  const late = sentry.logs().slice(before);
  assert.equal(late.filter((l) => relayLine('phase_off2')(l) || sidecarLine('phase_off2')(l)).length, 0, `streamed after off: ${JSON.stringify(late)}`);
});

/** Binds every allocation port of the pair, so the relay's Allocate attempts fail in the sidecar. */
async function occupyPortRange(): Promise<Socket[]> {
  const socks: Socket[] = [];
  for (let p = pair.portRange.min; p <= pair.portRange.max; p++) {
    const s = createSocket('udp4');
    await new Promise<void>((resolve) => {
      s.once('error', () => resolve());
      s.bind({ port: p, address: '0.0.0.0', exclusive: true }, () => resolve());
    });
    socks.push(s);
  }
  return socks;
}

/** An Allocate whose port opens all fail: the relay logs one debug line per failed open (module `transport`). */
async function failedAllocate(): Promise<void> {
  const c = await TurnClient.open({ server: { address: '127.0.0.1', port: pair.listenPort }, username: USER, password: PASS });
  try {
    await assert.rejects(c.allocate(), (e: unknown) => e instanceof TurnError && e.code === 508);
  } finally {
    await c.close();
  }
}

const openFailures = () =>
  pair.sidecar.lines().filter((l) => l.process === 'relay' && l.module === 'transport' && l.msg === 'sidecar could not open allocation port').length;
const relayWarnings = () => pair.sidecar.lines().filter((l) => l.process === 'relay' && l.module === 'server' && l.msg === 'could not open a relay port').length;

test('POST /log changes the named relay module at once and leaves the others', async () => {
  // Start from a known filter: default info everywhere.
  assert.equal((await pair.http('POST', '/log', 'info')).status, 200);
  await waitUntil('relay back at info', () => hasLine(pair.sidecar, 'log filter set by the sidecar', (l) => l.filter === 'info'));
  const r = await pair.http('POST', '/log', 'server=debug');
  assert.equal(r.status, 200);
  const applied = await waitUntil('relay applied server=debug', () =>
    pair.sidecar.lines().find((l) => l.process === 'relay' && l.msg === 'log filter set by the sidecar' && l.filter === 'info,server=debug'),
  );
  assert.equal(applied.previous, 'info');
  // The sidecar's own view is the same filter.
  const got = await pair.http('GET', '/log');
  assert.match(got.body, /server=debug/);
  // A filter that does not parse changes nothing on either side.
  const bad = await pair.http('POST', '/log', 'server=loud');
  assert.equal(bad.status, 400);
  await sleep(300);
  assert.ok(!hasLine(pair.sidecar, 'log filter from the sidecar does not parse; keeping the current one'));
  assert.equal(pair.sidecar.lines().filter((l) => l.process === 'relay' && l.msg === 'log filter set by the sidecar').at(-1)?.filter, 'info,server=debug');

  // Effect on the relay's loggers: `transport` is still at info, so failed port opens (debug) stay silent...
  const socks = await occupyPortRange();
  try {
    const warned = relayWarnings();
    await failedAllocate();
    await waitUntil('relay server warning forwarded', () => relayWarnings() > warned);
    assert.equal(openFailures(), 0, 'transport debug lines while transport is at info');
    // ...and once `transport=debug` is posted, the next ones are logged (forwarded over the link at level 20).
    assert.equal((await pair.http('POST', '/log', 'transport=debug')).status, 200);
    await waitUntil('relay applied transport=debug', () =>
      hasLine(pair.sidecar, 'log filter set by the sidecar', (l) => l.process === 'relay' && l.filter === 'info,server=debug,transport=debug'),
    );
    await failedAllocate();
    await waitUntil('transport debug lines', () => openFailures() > 0);
    const line = pair.sidecar.lines().find((l) => l.msg === 'sidecar could not open allocation port')!;
    assert.equal(line.level, 20);
    // They came over the link: the relay's own stdout does not have them.
    assert.ok(!pair.relay.text().includes('sidecar could not open allocation port'));
  } finally {
    for (const s of socks) s.close();
  }
});

for (const mode of ['down', 'slow', 'garbage'] as const) {
  test(`PostHog ${mode}: flag false, relay unaffected`, async () => {
    await ph.setMode('ok');
    ph.setFlag('stream-logs', { enabled: true });
    await waitUntil('flag on', async () => (await flagState()) === true, 5000);
    const unavailable = () => pair.sidecar.lines().filter((l) => l.msg === 'PostHog flags unavailable; flags are off').length;
    const warnedBefore = unavailable();
    await ph.setMode(mode);
    // slow: the SDK's request times out (3 s) before the fake answers.
    await waitUntil(`flag off with PostHog ${mode}`, async () => (await flagState()) === false, 12_000);
    // The warning is logged once per outage (stdout is asynchronous: wait for it).
    await waitUntil('PostHog failure logged', () => unavailable() > warnedBefore, 5000);
    assert.equal(unavailable(), warnedBefore + 1);
    // The relay is unaffected: TURN answers, the link is up, the sidecar is ready.
    assert.ok((await bindingRequest(pair.listenPort)) !== undefined, 'Binding request answered');
    const st = await pair.status();
    assert.equal(st.relay.relayConnected, true);
    assert.equal((await pair.http('GET', '/readyz')).status, 200);
    await ph.setMode('ok');
    ph.setFlag('stream-logs', { enabled: false });
    await waitUntil('flag off again', async () => (await flagState()) === false, 5000);
  });
}
