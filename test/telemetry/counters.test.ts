import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CumulativeAccumulator, LabelCap, pathAttributes, reasonAttributes, responseAttributes, KERNEL_PATH_NAMES } from '../../src/telemetry/counters.ts';
import { KERNEL_REASONS, REASON_NAMES } from '../../src/shared/reasons.ts';

test('accumulator adds deltas of cumulative snapshots', () => {
  const a = new CumulativeAccumulator();
  a.observe('x', 10);
  a.observe('x', 15);
  a.observe('x', 15);
  assert.equal(a.get('x'), 15);
});

test('a counter reset (source restarted) counts from zero, never twice', () => {
  const a = new CumulativeAccumulator();
  a.observe('x', 100);
  a.observe('x', 3); // relay restarted and has counted 3 since
  a.observe('x', 7);
  assert.equal(a.get('x'), 107);
});

test('reset(prefix) makes the next snapshot count from zero even when it is larger', () => {
  const a = new CumulativeAccumulator();
  a.observe('r/x', 5);
  a.observe('k/y', 5);
  a.reset('r/');
  a.observe('r/x', 9); // new relay, 9 since its start
  a.observe('k/y', 9);
  assert.equal(a.get('r/x'), 14);
  assert.equal(a.get('k/y'), 9);
});

test('the total is monotonic and equals the sum of increments for any snapshot sequence with restarts', () => {
  fc.assert(
    fc.property(fc.array(fc.record({ restart: fc.boolean(), inc: fc.nat(1000) }), { maxLength: 50 }), (steps) => {
      const a = new CumulativeAccumulator();
      let source = 0;
      let expected = 0;
      let prevTotal = 0;
      for (const s of steps) {
        if (s.restart) {
          source = 0;
          a.reset();
        }
        source += s.inc;
        expected += s.inc;
        a.observe('x', source);
        assert.ok(a.get('x') >= prevTotal);
        prevTotal = a.get('x');
      }
      assert.equal(a.get('x'), expected);
    }),
  );
});

test('kernel path names map to direction and output family', () => {
  assert.deepEqual(pathAttributes('chan_to_udp_46'), { direction: 'to_peer', family: 'ipv6' });
  assert.deepEqual(pathAttributes('udp_to_chan_64'), { direction: 'to_client', family: 'ipv4' });
  assert.deepEqual(pathAttributes('chan_to_chan_44'), { direction: 'channel_to_channel', family: 'ipv4' });
  assert.equal(pathAttributes('bogus'), undefined);
  assert.equal(KERNEL_PATH_NAMES.length, 12);
  for (const n of KERNEL_PATH_NAMES) assert.ok(pathAttributes(n));
});

test('reason names split into verdict and reason; responses into method and code', () => {
  assert.deepEqual(reasonAttributes('pass_stun'), { verdict: 'pass', reason: 'stun' });
  assert.deepEqual(reasonAttributes('drop_adjust_head'), { verdict: 'drop', reason: 'adjust_head' });
  assert.equal(reasonAttributes('stun'), undefined);
  // The verdict is the table's (the one the program applies), not a guess from the name.
  assert.equal(reasonAttributes('drop_not_a_reason'), undefined);
  KERNEL_REASONS.forEach((r, i) => assert.deepEqual(reasonAttributes(REASON_NAMES[i]!), { verdict: r.verdict, reason: r.reason }));
  assert.deepEqual(responseAttributes('allocate:401'), { method: 'allocate', code: '401' });
  assert.deepEqual(responseAttributes('refresh'), { method: 'refresh', code: 'unknown' });
});

test('label cap folds values beyond the cap into other', () => {
  const c = new LabelCap(2);
  assert.equal(c.label('a'), 'a');
  assert.equal(c.label('b'), 'b');
  assert.equal(c.label('c'), 'other');
  assert.equal(c.label('a'), 'a');
});
