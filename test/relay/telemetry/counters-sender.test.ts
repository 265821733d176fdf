// The relay's counters sender: a snapshot the link's schema refuses is never
// sent (the sidecar would close the link on it); it is counted and reported
// once, and valid snapshots keep flowing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCountersSender } from '../../../src/relay/telemetry/counters.ts';
import type { RelayCounters } from '../../../src/link/counters.ts';
import { relayCounters } from '../../link/samples.ts';

test('an invalid snapshot is counted and reported once, never sent', () => {
  const sent: RelayCounters[] = [];
  const reports: string[] = [];
  let snapshot: RelayCounters = { ...relayCounters, dropped: { ['x'.repeat(100)]: 1 } };
  const sender = startCountersSender({
    link: { connected: true, sendCounters: (c) => (sent.push(c), true) },
    collect: () => snapshot,
    intervalMs: 60_000,
    onInvalid: (reason) => reports.push(reason),
  });
  try {
    assert.equal(sender.sendNow(), false);
    assert.equal(sender.sendNow(), false);
    assert.deepEqual(sent, []);
    assert.equal(reports.length, 1);
    assert.match(reports[0]!, /^dropped/);
    snapshot = relayCounters;
    assert.equal(sender.sendNow(), true);
    assert.deepEqual(sent, [relayCounters]);
    assert.deepEqual(sender.stats(), { sent: 1, refused: 0, invalid: 2 });
  } finally {
    sender.stop();
  }
});
