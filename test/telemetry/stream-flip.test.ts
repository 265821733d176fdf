// The operator's loop, with the real posthog-node and @sentry/node against the
// protocol-speaking local servers: relays at TURNPIKE_LOG=info, `stream-logs`
// turned on with payload `debug`: debug lines (the sidecar's own and the
// relay's, fed in as link frames would be) reach Sentry at debug and stdout
// shows none of them; the flip takes effect at the first evaluation after it
// (within one interval), and so does turning it off. The flag is evaluated
// with the person properties an operator targets by.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import type { LogHub } from '../../src/shared/logger.ts';
import type { Telemetry } from '../../src/telemetry/index.ts';
import type { FakePostHog } from '../helpers/fake-posthog.ts';
import type { FakeSentry, SentryLog } from '../helpers/fake-sentry.ts';
import { sleep } from '../helpers/wait.ts';
import type { Sink } from './sink.ts';
import { relayLine, startSdkRig, type SdkRig } from './sdk-rig.ts';

const INTERVAL_MS = 500;
const FLUSH_MS = 100;

let rig: SdkRig;
let ph: FakePostHog;
let sentry: FakeSentry;
let out: Sink;
let hub: LogHub;
let tel: Telemetry;

before(async () => {
  rig = await startSdkRig({
    filter: 'info',
    environment: 'staging',
    pool: 'eu-west-1a',
    version: '9.9.9',
    tuning: { flagsIntervalMs: INTERVAL_MS, flagRequestTimeoutMs: 1000, sentryFlushMs: FLUSH_MS },
  });
  ({ ph, sentry, out, hub, tel } = rig);
});

after(() => rig.close());

/**
 * Flips stream-logs in PostHog and resolves when the sidecar applied it, with
 * how many /flags requests PostHog had answered before the flip and at it.
 */
async function flip(on: boolean, payload?: unknown): Promise<{ requestsBefore: number; requestsAt: number; ms: number }> {
  const t0 = Date.now();
  const applied = new Promise<number>((resolve) => {
    const off = tel.flags.onChange((name, s) => {
      if (name === 'stream-logs' && s.on === on) {
        off();
        resolve(ph.requests.flags);
      }
    });
  });
  const requestsBefore = ph.requests.flags;
  ph.setFlag('stream-logs', { enabled: on, ...(payload !== undefined ? { payload } : {}) });
  const requestsAt = await applied;
  return { requestsBefore, requestsAt, ms: Date.now() - t0 };
}

/** A sidecar debug line and a relay debug line every 20 ms, numbered, until stopped. */
function ticker(run: string) {
  let seq = 0;
  const timer = setInterval(() => {
    seq++;
    hub.get('session').debug({ run, seq }, 'sidecar tick');
    tel.relayLog(relayLine(20, 'session', 'relay tick', { run, seq }));
  }, 20);
  return { seq: () => seq, stop: () => clearInterval(timer) };
}

const ticks = (logs: SentryLog[], run: string) => logs.filter((l) => (l.body === 'sidecar tick' || l.body === 'relay tick') && l.attributes.run === run);

test('stream-logs on with payload debug: debug lines of both processes reach Sentry at debug within one interval; stdout shows none', async () => {
  await tel.flags.refresh();
  assert.equal(tel.flags.isEnabled('stream-logs'), false);
  const t = ticker('on');
  try {
    await sleep(INTERVAL_MS);
    const on = flip(true, 'debug');
    // Ticks made before the flip is applied are never streamed: record where the flip lands.
    let seqAtOn = 0;
    tel.flags.onChange((name, s) => void (name === 'stream-logs' && s.on && seqAtOn === 0 && (seqAtOn = t.seq())));
    const r = await on;
    // The first evaluation after the change applied it: one interval at most.
    assert.ok(r.requestsAt <= r.requestsBefore + 1, `applied by evaluation #${r.requestsAt - r.requestsBefore} after the flip`);
    assert.ok(r.ms < INTERVAL_MS + 1000, `applied ${r.ms} ms after the flip (interval ${INTERVAL_MS} ms)`);
    const logs = await sentry.waitForLogs((ls) => ticks(ls, 'on').some((l) => l.body === 'relay tick') && ticks(ls, 'on').some((l) => l.body === 'sidecar tick'));
    const got = ticks(logs, 'on');
    assert.ok(got.every((l) => l.level === 'debug'));
    assert.ok(got.every((l) => (l.attributes.seq as number) > seqAtOn), 'nothing made before the flip was streamed');
    assert.equal(got.find((l) => l.body === 'relay tick')!.attributes.process, 'relay');
    assert.equal(got.find((l) => l.body === 'relay tick')!.attributes.module, 'session');
  } finally {
    t.stop();
  }
  // The local filter is still info: none of them was printed.
  assert.ok(!out.lines.some((l) => l.msg === 'sidecar tick' || l.msg === 'relay tick'), 'debug ticks on stdout');
  assert.ok(out.lines.some((l) => l.msg === 'feature flag changed'), 'info lines are still printed');
});

test('stream-logs off: streaming stops at the first evaluation after the flip', async () => {
  const t = ticker('off');
  let seqAtOff = 0;
  try {
    await sleep(INTERVAL_MS / 2);
    const off = flip(false);
    tel.flags.onChange((name, s) => void (name === 'stream-logs' && !s.on && seqAtOff === 0 && (seqAtOff = t.seq())));
    const r = await off;
    assert.ok(r.requestsAt <= r.requestsBefore + 1, `applied by evaluation #${r.requestsAt - r.requestsBefore} after the flip`);
    assert.ok(r.ms < INTERVAL_MS + 1000, `applied ${r.ms} ms after the flip (interval ${INTERVAL_MS} ms)`);
    await sleep(INTERVAL_MS);
  } finally {
    t.stop();
  }
  await tel.sentry!.flush(2000);
  await sleep(FLUSH_MS * 3);
  const streamed = ticks(sentry.logs(), 'off');
  assert.ok(streamed.length > 0, 'streamed until the flip');
  const late = streamed.filter((l) => (l.attributes.seq as number) > seqAtOff);
  assert.deepEqual(late.map((l) => [l.body, l.attributes.seq]), [], `streamed after the flag went off at seq ${seqAtOff}`);
  // And the sidecar no longer makes debug lines at all.
  assert.equal(hub.get('session').isLevelEnabled('debug'), false);
});

test('flags are evaluated with the person properties an operator targets by', async () => {
  tel.flags.setProperties({ datapath: 'xdp' });
  const n = ph.flagBodies.length;
  await tel.flags.refresh();
  const body = ph.flagBodies.slice(n).at(-1) as { person_properties?: Record<string, string> };
  assert.deepEqual(body.person_properties, { hostname: hostname(), version: '9.9.9', environment: 'staging', pool: 'eu-west-1a', datapath: 'xdp' });
});
