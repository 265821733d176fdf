// Per-source request budgets in the server's dispatch: Binding and every
// other answer sent without credentials spend the unauthenticated budget,
// authenticated requests their own; beyond either the request is dropped
// unanswered and counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD } from '../../../src/relay/stun/index.ts';
import { createRateLimiter } from '../../../src/relay/policy/index.ts';
import { buildServerOptions } from '../../../src/relay/build.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { fromEnv } from '../../../src/config/env.ts';
import { Harness, addr, expectOutputs, response, type TurnClient } from './harness.ts';

const c1 = addr('198.51.100.1', 40001);
const limiter = (perSecond: number, burst: number, maxEntries = 100) => createRateLimiter({ perSecond, burst, maxEntries });
const binding = (c: TurnClient) => c.request(METHOD.BINDING, {}, { auth: false });

test('Binding requests spend the unauthenticated budget: beyond it no answer (a reflector towards spoofed sources)', () => {
  const h = new Harness({ rateLimits: { unauthenticated: limiter(1, 2) } });
  const c = h.client(c1);
  expectOutputs(binding(c), [response(c1, METHOD.BINDING, 'success')]);
  expectOutputs(binding(c), [response(c1, METHOD.BINDING, 'success')]);
  expectOutputs(binding(c), []);
  assert.equal(h.server.stats().dropped['rate-limited'], 1);
  // The same budget pays for challenges.
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }, { auth: false }), []);
  assert.equal(h.server.stats().dropped['rate-limited'], 2);
  const other = addr('198.51.100.2', 40001);
  expectOutputs(binding(h.client(other)), [response(other, METHOD.BINDING, 'success')]);
  h.advance(1000);
  expectOutputs(binding(c), [response(c1, METHOD.BINDING, 'success')]);
  // Binding indications (keepalives) get no answer, so they cost nothing.
  expectOutputs(c.request(METHOD.BINDING, {}, { auth: false, cls: 'indication' }), []);
  assert.equal(h.server.stats().dropped['rate-limited'], 2);
});

test('authenticated requests are limited per source: dropped unanswered beyond the budget, served once it refills', () => {
  const h = new Harness({ rateLimits: { authenticated: limiter(1, 3) } });
  const c = h.client(c1);
  c.allocate(); // the 401 round trip is not charged here; the Allocate is
  expectOutputs(c.refresh(600), [response(c1, METHOD.REFRESH, 'success')]);
  expectOutputs(c.refresh(600), [response(c1, METHOD.REFRESH, 'success')]);
  expectOutputs(c.refresh(600), []);
  expectOutputs(c.createPermission(addr('203.0.113.5', 1)), []);
  assert.equal(h.server.stats().dropped['rate-limited-authenticated'], 2);
  // The same user from another source has its own budget (the limit is per source, not per user).
  const d = h.client(addr('198.51.100.2', 40001));
  d.allocate();
  h.advance(1000);
  expectOutputs(c.refresh(600), [response(c1, METHOD.REFRESH, 'success')]);
});

test('a failed authentication spends the unauthenticated budget, not the authenticated one', () => {
  const h = new Harness({ rateLimits: { unauthenticated: limiter(1, 2), authenticated: limiter(1, 1) } });
  const bad = h.client(c1, 'alice', 'wrong');
  bad.challenge();
  expectOutputs(bad.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [response(c1, METHOD.ALLOCATE, 401)]);
  expectOutputs(bad.request(METHOD.ALLOCATE, { requestedTransport: 17 }), []);
  assert.equal(h.server.stats().dropped['rate-limited'], 1);
  // The nonce bad got is good for alice on the same address: her one authenticated token is intact.
  const good = h.client(c1);
  good.nonce = bad.nonce;
  assert.ok(good.allocate().ports.v4);
  assert.equal(h.server.stats().dropped['rate-limited-authenticated'], undefined);
});

test('a 438 is charged to the authenticated budget: its nonce shows the source receives our answers', () => {
  const h = new Harness({ nonce: { secret: 's', ttlSeconds: 60 }, rateLimits: { unauthenticated: limiter(1, 1), authenticated: limiter(1, 2) } });
  const c = h.client(c1);
  c.challenge(); // the one unauthenticated token
  h.advance(61_000); // stale nonce; both buckets full again
  expectOutputs(binding(c), [response(c1, METHOD.BINDING, 'success')]); // spend the unauthenticated token
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [response(c1, METHOD.ALLOCATE, 438)]);
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }).filter((o) => o.kind === 'send'), []);
  assert.equal(h.server.stats().dropped['rate-limited'], undefined);
});

test('IPv6 clients share the budget of their /64', () => {
  const h = new Harness({ rateLimits: { unauthenticated: createRateLimiter({ perSecond: 1, burst: 1, maxEntries: 100, ipv6Prefix: 64 }) } });
  const a = addr('2001:db8:1:1::5', 5000);
  const b = addr('2001:db8:1:1:ffff::6', 5001);
  const other = addr('2001:db8:1:2::5', 5000);
  expectOutputs(binding(h.client(a)), [response(a, METHOD.BINDING, 'success')]);
  expectOutputs(binding(h.client(b)), []);
  expectOutputs(binding(h.client(other)), [response(other, METHOD.BINDING, 'success')]);
});

test('a flood of spoofed sources cannot refill the budget of the address it reflects to', () => {
  const h = new Harness({ rateLimits: { unauthenticated: limiter(1, 2, 16) } });
  const victim = h.client(c1);
  binding(victim);
  binding(victim);
  expectOutputs(binding(victim), []);
  let answered = 0;
  for (let i = 0; i < 2000; i++) {
    const spoofed = addr(`10.${(i >> 8) & 255}.${i & 255}.1`, 1000);
    answered += binding(h.client(spoofed)).length;
  }
  assert.equal(answered, 15 + 2, 'fifteen sources get buckets of their own, the rest share the overflow burst');
  assert.equal(h.server.stats().dropped['rate-limited-overflow'], 2000 - answered);
  // The victim's bucket was not evicted (it would have come back full).
  expectOutputs(binding(victim), []);
});

test('the settings reach the server: rates (burst of two seconds), IPv6 prefix, table size; defaults', () => {
  const env = { TURNPIKE_UNAUTH_RATE: '1', TURNPIKE_AUTH_RATE: '1', TURNPIKE_RATE_LIMIT_IPV6_PREFIX: '48', TURNPIKE_RATE_LIMIT_SOURCES: '2' };
  const config = configSchema.parse({ users: 'alice:alice-pw', realm: 'turnpike.test', ...fromEnv(env).raw });
  const { rateLimits, wallClock } = buildServerOptions(config, { relayAddresses: { v4: '192.0.2.10' } });
  assert.equal(wallClock, Date.now);
  const unauth = rateLimits!.unauthenticated!;
  assert.deepEqual(['2001:db8:1:1::1', '2001:db8:1:2::1', '2001:db8:1:3::1'].map((s) => unauth.admit(s, 0)), ['pass', 'pass', 'limited']);
  assert.deepEqual(['198.51.100.1', '198.51.100.2', '198.51.100.3'].map((s) => unauth.admit(s, 0)), ['pass', 'pass', 'pass']);
  assert.equal(unauth.size, 2, 'the third source took from the overflow bucket');
  assert.equal(rateLimits!.authenticated!.admit('198.51.100.1', 0), 'pass', 'a separate table');
  const defaults = configSchema.parse({});
  assert.deepEqual(
    [defaults.unauthRatePerSecond, defaults.authRatePerSecond, defaults.rateLimitIpv6Prefix, defaults.rateLimitSources],
    [50, 200, 64, 65_536],
  );
});
