// Token bucket with injected time and bounded memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRateLimiter } from '../../../src/relay/policy/index.ts';

test('burst then refill at perSecond', () => {
  const l = createRateLimiter({ perSecond: 2, burst: 3, maxEntries: 10 });
  const t = 1000;
  assert.deepEqual([1, 2, 3, 4].map(() => l.take('a', t)), [true, true, true, false]);
  assert.equal(l.take('a', t + 499), false, 'just under one token');
  assert.equal(l.take('a', t + 500), true, 'one token after 500 ms at 2/s');
  assert.equal(l.take('a', t + 500), false);
  // idle long: capped at burst
  assert.deepEqual([1, 2, 3, 4].map(() => l.take('a', t + 60_000)), [true, true, true, false]);
});

test('keys are independent; cost > 1; clock stepping back refills nothing', () => {
  const l = createRateLimiter({ perSecond: 1, burst: 2, maxEntries: 10 });
  assert.equal(l.take('a', 0, 2), true);
  assert.equal(l.take('a', 0), false);
  assert.equal(l.take('b', 0), true);
  assert.equal(l.take('a', -5000), false);
  assert.equal(l.take('a', 999), false, 'back-stepped clock did not move the bucket');
  assert.equal(l.take('a', 1000), true);
  assert.equal(l.take('c', 0, 3), false, 'cost above burst never passes');
});

test('memory is bounded: the least recently used key is evicted', () => {
  const l = createRateLimiter({ perSecond: 0, burst: 1, maxEntries: 3 });
  for (const k of ['a', 'b', 'c']) assert.equal(l.take(k, 0), true);
  assert.equal(l.take('a', 1), false); // touch a: now b is the oldest
  assert.equal(l.take('d', 2), true); // evicts b
  assert.equal(l.size, 3);
  assert.equal(l.take('a', 3), false, 'a kept its empty bucket');
  assert.equal(l.take('b', 4), true, 'b was evicted and comes back full');
  for (let i = 0; i < 10_000; i++) l.take(`k${i}`, i);
  assert.equal(l.size, 3);
});

test('bad options are a configuration error', () => {
  assert.throws(() => createRateLimiter({ perSecond: -1, burst: 1, maxEntries: 1 }));
  assert.throws(() => createRateLimiter({ perSecond: 1, burst: 0, maxEntries: 1 }));
  assert.throws(() => createRateLimiter({ perSecond: 1, burst: 1, maxEntries: 0 }));
});
