// End to end through startTelemetry: the real posthog-node and @sentry/node
// against in-test PostHog and Sentry servers. The stream-logs flag turns log
// streaming (sidecar lines and relay lines fed in as frames would be) on and
// off within an evaluation interval; errors go to Sentry regardless.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { LogHub } from '../../src/shared/logger.ts';
import type { Telemetry } from '../../src/telemetry/index.ts';
import type { FakePostHog } from '../helpers/fake-posthog.ts';
import type { FakeSentry } from '../helpers/fake-sentry.ts';
import type { Sink } from './sink.ts';
import { relayLine, startSdkRig, type SdkRig } from './sdk-rig.ts';

let ph: FakePostHog;
let sentry: FakeSentry;
let out: Sink;
let hub: LogHub;
let tel: Telemetry;
let rig: SdkRig;
let seq = 0;

/** Resolves on the next stream-logs transition to `on`. */
const flagBecomes = (on: boolean) =>
  new Promise<void>((resolve) => {
    const off = tel.flags.onChange((name, s) => {
      if (name === 'stream-logs' && s.on === on) {
        off();
        resolve();
      }
    });
  });

/** A marker line proves everything logged before it was flushed. */
async function barrier(): Promise<void> {
  const mark = `barrier-${++seq}`;
  tel.relayLog(relayLine(50, 'probe', mark)); // error level: passes any filter
  await tel.sentry!.flush(2000);
  await sentry.waitForLogs((l) => l.some((x) => x.body === mark));
}

before(async () => {
  rig = await startSdkRig({ filter: 'info,bpf=debug', tuning: { flagsIntervalMs: 300, flagRequestTimeoutMs: 1000, sentryFlushMs: 100 } });
  ({ ph, sentry, out, hub, tel } = rig);
});

after(() => rig.close());

test('flag off: nothing is streamed', async () => {
  await tel.flags.refresh();
  assert.equal(tel.flags.isEnabled('stream-logs'), false);
  hub.get('alloc').info('sidecar line while off');
  tel.relayLog(relayLine(30, 'alloc', 'relay line while off'));
  await tel.sentry!.flush(2000);
  assert.equal(sentry.logs().length, 0);
});

test('flag on: sidecar and relay lines arrive in Sentry envelopes with module attributes', async () => {
  const on = flagBecomes(true);
  ph.setFlag('stream-logs', { enabled: true });
  await on; // by the interval, not by refresh()
  hub.get('alloc').info({ allocations: 3 }, 'sidecar line while on');
  tel.relayLog(relayLine(30, 'link', 'relay line while on', { channel: 16384 }));
  const logs = await sentry.waitForLogs((l) => l.some((x) => x.body === 'sidecar line while on') && l.some((x) => x.body === 'relay line while on'));
  const side = logs.find((x) => x.body === 'sidecar line while on')!;
  assert.equal(side.level, 'info');
  assert.equal(side.attributes.module, 'alloc');
  assert.equal(side.attributes.allocations, 3);
  assert.equal(side.attributes['sentry.release'], 'turnpike@0.1.0');
  assert.equal(side.attributes['sentry.environment'], 'test');
  const relay = logs.find((x) => x.body === 'relay line while on')!;
  assert.equal(relay.attributes.module, 'link');
  assert.equal(relay.attributes.process, 'relay');
  assert.equal(relay.attributes.channel, 16384);
  assert.ok(!logs.some((x) => /while off/.test(x.body)));
  // Relay lines also reach stdout, as the relay wrote them.
  assert.ok(out.find((l) => l.msg === 'relay line while on' && l.process === 'relay'));
});

test('the flag payload is the stream filter, applied per module', async () => {
  const changed = new Promise<void>((resolve) => {
    const off = tel.flags.onChange((_n, s) => s.payload === 'warn,bpf=debug' && (off(), resolve()));
  });
  ph.setFlag('stream-logs', { enabled: true, payload: 'warn,bpf=debug' });
  await changed;
  hub.get('bpf').debug('bpf debug streamed');
  hub.get('alloc').info('alloc info filtered');
  tel.relayLog(relayLine(20, 'bpf', 'relay bpf debug streamed'));
  tel.relayLog(relayLine(30, 'alloc', 'relay alloc info filtered'));
  await barrier();
  const bodies = sentry.logs().map((l) => l.body);
  assert.ok(bodies.includes('bpf debug streamed'));
  assert.ok(bodies.includes('relay bpf debug streamed'));
  assert.ok(!bodies.includes('alloc info filtered'));
  assert.ok(!bodies.includes('relay alloc info filtered'));
});

test('errors reach Sentry as events from the sidecar and the relay', async () => {
  hub.get('link').error({ err: new Error('sidecar boom') }, 'link failed');
  tel.relayLog(relayLine(50, 'alloc', 'relay failed', { err: { type: 'TypeError', message: 'relay boom', stack: 'TypeError: relay boom\n    at x (y.js:1:1)' } }));
  await tel.sentry!.flush(2000);
  const side = await sentry.waitForEvent((e) => e.exception?.values?.[0]?.value === 'sidecar boom');
  assert.equal(side.release, 'turnpike@0.1.0');
  const relay = await sentry.waitForEvent((e) => e.exception?.values?.[0]?.value === 'relay boom');
  assert.equal(relay.exception.values[0].type, 'TypeError');
  assert.equal(relay.tags.process, 'relay');
});

test('flag off again: streaming stops', async () => {
  const off = flagBecomes(false);
  ph.setFlag('stream-logs', { enabled: false });
  await off;
  hub.get('alloc').warn('sidecar line after off');
  tel.relayLog(relayLine(40, 'alloc', 'relay line after off'));
  await tel.sentry!.flush(2000);
  await new Promise((r) => setTimeout(r, 300));
  const bodies = sentry.logs().map((l) => l.body);
  assert.ok(!bodies.includes('sidecar line after off'));
  assert.ok(!bodies.includes('relay line after off'));
});

test('PostHog failing turns streaming off', async () => {
  const on = flagBecomes(true);
  ph.setFlag('stream-logs', { enabled: true });
  await on;
  const off = flagBecomes(false);
  await ph.setMode('error');
  await off;
  hub.get('alloc').warn('line while posthog fails');
  await tel.sentry!.flush(2000);
  assert.ok(!sentry.logs().some((l) => l.body === 'line while posthog fails'));
  await ph.setMode('ok');
});
