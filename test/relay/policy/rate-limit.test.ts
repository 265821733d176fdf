// Token buckets per source with injected time: IPv6 by prefix, bounded memory
// that a flood of fresh sources cannot use to reset a bucket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRateLimiter, sourceKey } from '../../../src/relay/policy/index.ts';

const passes = (l: ReturnType<typeof createRateLimiter>, source: string, now: number, n: number) =>
  Array.from({ length: n }, () => l.admit(source, now) === 'pass');

test('burst then refill at perSecond', () => {
  const l = createRateLimiter({ perSecond: 2, burst: 3, maxEntries: 10 });
  const t = 1000;
  assert.deepEqual(passes(l, 'a', t, 4), [true, true, true, false]);
  assert.equal(l.admit('a', t), 'limited');
  assert.equal(l.admit('a', t + 499), 'limited', 'just under one token');
  assert.equal(l.admit('a', t + 500), 'pass', 'one token after 500 ms at 2/s');
  assert.equal(l.admit('a', t + 500), 'limited');
  // idle long: capped at burst
  assert.deepEqual(passes(l, 'a', t + 60_000, 4), [true, true, true, false]);
});

test('sources are independent; a clock stepping back refills nothing', () => {
  const l = createRateLimiter({ perSecond: 1, burst: 2, maxEntries: 10 });
  assert.deepEqual(passes(l, 'a', 0, 3), [true, true, false]);
  assert.equal(l.admit('b', 0), 'pass');
  assert.equal(l.admit('a', -5000), 'limited');
  assert.equal(l.admit('a', 999), 'limited', 'back-stepped clock did not move the bucket');
  assert.equal(l.admit('a', 1000), 'pass');
});

test('source keys: IPv4 per address, IPv6 per prefix, IPv4-mapped IPv6 as IPv4', () => {
  assert.equal(sourceKey('198.51.100.7', 64), '198.51.100.7');
  assert.equal(sourceKey('2001:db8:1:2:3:4:5:6', 64), '2001:db8:1:2::');
  assert.equal(sourceKey('2001:db8:1:2:3:4:5:6', 56), '2001:db8:1::');
  assert.equal(sourceKey('2001:db8:1:2ff:3:4:5:6', 60), '2001:db8:1:2f0::');
  assert.equal(sourceKey('2001:db8:1:2:3:4:5:6', 128), '2001:db8:1:2:3:4:5:6');
  assert.equal(sourceKey('ffff::1', 1), '8000::');
  // A dual-stack socket's view of an IPv4 client: not all of IPv4 in one ::ffff:0:0/64 bucket.
  assert.equal(sourceKey('::ffff:198.51.100.7', 64), '198.51.100.7');
});

test('IPv6 sources in one prefix share a bucket; other prefixes do not', () => {
  const l = createRateLimiter({ perSecond: 1, burst: 2, maxEntries: 10 });
  assert.equal(l.admit('2001:db8:0:1::a', 0), 'pass');
  assert.equal(l.admit('2001:db8:0:1:ffff:ffff:ffff:ffff', 0), 'pass');
  assert.equal(l.admit('2001:db8:0:1::b', 0), 'limited', 'rotating addresses inside the /64 buys nothing');
  assert.equal(l.admit('2001:db8:0:2::a', 0), 'pass');
  assert.equal(l.size, 2);
  const wide = createRateLimiter({ perSecond: 1, burst: 1, maxEntries: 10, ipv6Prefix: 48 });
  assert.equal(wide.admit('2001:db8:0:1::a', 0), 'pass');
  assert.equal(wide.admit('2001:db8:0:2::a', 0), 'limited');
  const exact = createRateLimiter({ perSecond: 1, burst: 1, maxEntries: 10, ipv6Prefix: 128 });
  assert.equal(exact.admit('2001:db8::1', 0), 'pass');
  assert.equal(exact.admit('2001:db8::2', 0), 'pass');
});

test('a flood of fresh sources cannot reset an active bucket: they share the overflow bucket', () => {
  const l = createRateLimiter({ perSecond: 1, burst: 2, maxEntries: 3 });
  assert.deepEqual(passes(l, 'victim', 0, 3), [true, true, false]);
  let passed = 0;
  for (let i = 0; i < 10_000; i++) {
    if (l.admit(`spoofed-${i}`, 100) === 'pass') passed++;
  }
  assert.equal(l.size, 3, 'memory stays bounded');
  assert.equal(passed, 2 + 2, "two fresh sources fill the table, then all share the overflow bucket's burst of 2");
  assert.equal(l.admit('spoofed-x', 100), 'limited-overflow');
  assert.equal(l.admit('victim', 100), 'limited', "the victim's bucket kept its state");
});

test('buckets that have refilled are forgotten to make room (forgetting them resets nothing)', () => {
  const l = createRateLimiter({ perSecond: 1, burst: 2, maxEntries: 2 });
  assert.equal(l.admit('a', 0), 'pass');
  assert.equal(l.admit('b', 0), 'pass');
  // a and b are still refilling at 0.5 s: c takes from the overflow bucket.
  assert.deepEqual(['c', 'c', 'c'].map((s) => l.admit(s, 500)), ['pass', 'pass', 'limited-overflow']);
  assert.equal(l.size, 2);
  // At 1 s a and b are full again: c and d get buckets of their own.
  assert.equal(l.admit('c', 1000), 'pass');
  assert.equal(l.admit('d', 1000), 'pass');
  assert.equal(l.size, 2);
  assert.deepEqual(passes(l, 'd', 1000, 2), [true, false], 'd has its own bucket');
});

test('bad options are a configuration error', () => {
  assert.throws(() => createRateLimiter({ perSecond: 0, burst: 1, maxEntries: 1 }));
  assert.throws(() => createRateLimiter({ perSecond: 1, burst: 0, maxEntries: 1 }));
  assert.throws(() => createRateLimiter({ perSecond: 1, burst: 1, maxEntries: 0 }));
  assert.throws(() => createRateLimiter({ perSecond: 1, burst: 1, maxEntries: 1, ipv6Prefix: 0 }));
  assert.throws(() => createRateLimiter({ perSecond: 1, burst: 1, maxEntries: 1, ipv6Prefix: 129 }));
});
