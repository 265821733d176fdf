// Time-limited credentials (coturn REST, Firezone) are checked on every
// authenticated request against the injected wall clock, while lifetimes run
// on the server's monotonic `now`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD } from '../../../src/relay/stun/index.ts';
import {
  createCredentialChain,
  createFirezoneCredentials,
  createRestCredentials,
  createStaticCredentials,
  mintFirezoneCredential,
  mintRestCredential,
} from '../../../src/relay/auth/index.ts';
import { Harness, REALM, T0, USERS, addr, expectOutputs, response } from './harness.ts';

const c1 = addr('198.51.100.1', 40001);
const peer = addr('203.0.113.5', 6000);
const SECRET = 'shared-secret';
const HOUR = 3_600_000;

const schemes = [
  { name: 'REST', source: createRestCredentials(SECRET), mint: (ttl: number, wall: number) => mintRestCredential(SECRET, 'alice', ttl, wall) },
  { name: 'Firezone', source: createFirezoneCredentials(SECRET), mint: (ttl: number, wall: number) => mintFirezoneCredential(SECRET, 'salt', ttl, wall) },
];

/** A server whose wall clock the test moves apart from its monotonic `now`; static users and one time-limited scheme. */
function harness(scheme = schemes[0]!) {
  const clock = { wall: T0 };
  const h = new Harness({ credentials: createCredentialChain([createStaticCredentials(USERS), scheme.source]), wallClock: () => clock.wall });
  return { h, clock };
}

for (const scheme of schemes) {
  test(`an expired ${scheme.name} credential gets 401 on every request after Allocate, so it cannot keep its allocation alive`, () => {
    const { h, clock } = harness(scheme);
    const cred = scheme.mint(60, clock.wall);
    const c = h.client(c1, cred.username, cred.password);
    c.allocate();
    clock.wall += 30_000;
    h.advance(30_000);
    expectOutputs(c.refresh(600), [response(c1, METHOD.REFRESH, 'success')]);
    clock.wall += 31_000;
    h.advance(31_000);
    expectOutputs(c.refresh(600), [response(c1, METHOD.REFRESH, 401, (m) => assert.ok(m.attributes.nonce))]);
    expectOutputs(c.createPermission(peer), [response(c1, METHOD.CREATE_PERMISSION, 401)]);
    expectOutputs(c.channelBind(0x4000, peer), [response(c1, METHOD.CHANNEL_BIND, 401)]);
    // The allocation ends at the lifetime its last successful Refresh gave it.
    expectOutputs(h.advance(600_000 - 31_000 - 1), []);
    assert.equal(h.server.stats().allocations, 1);
    h.advance(1);
    assert.equal(h.server.stats().allocations, 0);
  });
}

test('credential expiry follows the wall clock: a step forward past it refuses, whatever the monotonic clock says', () => {
  const { h, clock } = harness();
  const cred = mintRestCredential(SECRET, 'alice', 3600, clock.wall);
  const c = h.client(c1, cred.username, cred.password);
  c.allocate();
  clock.wall += 2 * HOUR;
  expectOutputs(c.refresh(600), [response(c1, METHOD.REFRESH, 401, (m) => assert.equal(m.attributes.realm, REALM))]);
});

test('a wall-clock step of hours, either way, leaves lifetimes alone', () => {
  for (const step of [3 * HOUR, -3 * HOUR]) {
    const { h, clock } = harness();
    const c = h.client(c1);
    c.allocate();
    c.createPermission(peer);
    clock.wall += step;
    expectOutputs(h.advance(299_999), []);
    assert.equal(h.server.stats().permissions, 1);
    h.advance(1);
    assert.equal(h.server.stats().permissions, 0, 'the permission lasted 300 s');
    expectOutputs(h.advance(299_999), []);
    assert.equal(h.server.stats().allocations, 1);
    h.advance(1);
    assert.equal(h.server.stats().allocations, 0, 'the allocation lasted 600 s');
  }
});
