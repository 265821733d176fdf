// Pinned bindings of an earlier sidecar are cleared when no relay re-announces
// within the grace time, and only then. The timer is injected: no real waiting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogHub } from '../../src/shared/logger.ts';
import { startResyncGrace, type Schedule } from '../../src/sidecar/resync-grace.ts';
import { sink } from '../telemetry/sink.ts';

function setup(pinned: number, opts: { relayConnected?: boolean } = {}) {
  const out = sink();
  const log = createLogHub({ destination: out.stream as never, filter: 'info' }).get('sidecar');
  const bindings = {
    count: pinned,
    cleared: 0,
    bindingCount() {
      return this.count;
    },
    clearBindings() {
      const n = this.count;
      this.count = 0;
      this.cleared++;
      return n;
    },
  };
  const timers: { fn: () => void; ms: number; cancelled: boolean }[] = [];
  const schedule: Schedule = (fn, ms) => {
    const t = { fn, ms, cancelled: false };
    timers.push(t);
    return () => (t.cancelled = true);
  };
  const state = { connected: opts.relayConnected ?? false };
  const grace = startResyncGrace({ bindings, graceMs: 1500, relayConnected: () => state.connected, log, schedule });
  const fire = () => {
    for (const t of timers) if (!t.cancelled) t.fn();
  };
  return { out, bindings, timers, state, grace, fire };
}

test('no pinned bindings: nothing to wait for, no timer, no log line', () => {
  const s = setup(0);
  assert.equal(s.timers.length, 0);
  assert.equal(s.out.lines.length, 0);
  s.grace.resynced();
  s.grace.cancel();
});

test('pinned bindings and no relay by the deadline: cleared, with the grace time in the warning', async () => {
  const s = setup(3);
  assert.equal(s.timers.length, 1);
  assert.equal(s.timers[0]!.ms, 1500);
  assert.equal(s.bindings.cleared, 0, 'nothing is cleared before the deadline');
  s.fire();
  assert.equal(s.bindings.cleared, 1);
  assert.equal(s.bindings.count, 0);
  await new Promise((r) => setImmediate(r));
  const found = s.out.find((l) => l.msg === 'pinned bindings found; waiting for the relay to re-announce its state');
  assert.equal(found?.bindings, 3);
  const cleared = s.out.find((l) => l.msg === 'relay did not re-announce its state: pinned bindings cleared');
  assert.equal(cleared?.cleared, 3);
  assert.equal(cleared?.graceMs, 1500);
});

test('the relay re-announced in time: the pins are its bindings now and stay', () => {
  const s = setup(2);
  s.grace.resynced();
  s.fire();
  assert.equal(s.bindings.cleared, 0);
  assert.equal(s.bindings.count, 2);
});

test('a relay connected at the deadline (still re-announcing) keeps the pins', () => {
  const s = setup(2);
  s.state.connected = true;
  s.fire();
  assert.equal(s.bindings.cleared, 0);
});

test('cancel (the sidecar stops) drops the timer', () => {
  const s = setup(2);
  s.grace.cancel();
  assert.equal(s.timers[0]!.cancelled, true);
  s.fire();
  assert.equal(s.bindings.cleared, 0);
});
