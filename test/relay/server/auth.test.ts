import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD, encodeMessage, longTermKey, verifyIntegrity } from '../../../src/relay/stun/index.ts';
import { createRateLimiter } from '../../../src/relay/policy/index.ts';
import { Harness, REALM, TurnClient, addr, decodeOk, expectOutputs, response } from './harness.ts';

const c1 = addr('198.51.100.1', 40001);

/** A request with raw extra attributes appended (the codec cannot encode unknown ones). */
function rawRequest(method: number, attrs: Array<[number, number[]]>): Uint8Array {
  const body: number[] = [];
  for (const [t, v] of attrs) {
    body.push(t >> 8, t & 0xff, v.length >> 8, v.length & 0xff, ...v);
    while (body.length % 4) body.push(0);
  }
  const type = (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2);
  const head = [type >> 8, type & 0xff, body.length >> 8, body.length & 0xff, 0x21, 0x12, 0xa4, 0x42, ...TurnClient.txid()];
  return new Uint8Array([...head, ...body]);
}

test('Binding request needs no credentials; Binding indication is ignored', () => {
  const h = new Harness();
  const c = h.client(c1);
  expectOutputs(c.request(METHOD.BINDING, {}, { auth: false }), [
    response(c1, METHOD.BINDING, 'success', (m) => {
      assert.deepEqual(m.attributes.xorMappedAddress, c1);
      assert.equal(m.integrity, undefined);
    }),
  ]);
  const v6 = addr('2001:db8:1::5', 5000);
  expectOutputs(h.client(v6).request(METHOD.BINDING, {}, { auth: false }), [
    response(v6, METHOD.BINDING, 'success', (m) => assert.deepEqual(m.attributes.xorMappedAddress, v6)),
  ]);
  expectOutputs(c.request(METHOD.BINDING, {}, { auth: false, cls: 'indication' }), []);
  assert.deepEqual(h.server.stats().responses, { 'binding:success': 2 });
});

test('wrong password and unknown user get 401 with a fresh nonce and no integrity', () => {
  const h = new Harness();
  const bad = h.client(c1, 'alice', 'wrong');
  bad.challenge();
  const unknown = h.client(addr('198.51.100.2', 1), 'mallory', 'x');
  unknown.challenge();
  for (const c of [bad, unknown]) {
    expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [
      response(c.address, METHOD.ALLOCATE, 401, (m) => {
        assert.equal(m.integrity, undefined);
        assert.equal(m.attributes.realm, REALM);
        assert.ok(m.attributes.nonce);
      }),
    ]);
  }
  assert.equal(h.server.stats().allocations, 0);
});

test('a nonce that is not ours gets 401; integrity without USERNAME gets 400', () => {
  const h = new Harness();
  const c = h.client(c1);
  c.nonce = 'forged-nonce';
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [response(c1, METHOD.ALLOCATE, 401)]);
  const noUser = encodeMessage(
    { method: METHOD.ALLOCATE, cls: 'request', transactionId: TurnClient.txid(), attributes: { requestedTransport: 17, realm: REALM, nonce: c.nonce! } },
    { key: c.key },
  );
  expectOutputs(c.send(noUser), [response(c1, METHOD.ALLOCATE, 400, (m) => assert.equal(m.integrity, undefined))]);
});

test('stale nonce gets 438 with a new nonce that then works', () => {
  const h = new Harness({ nonce: { secret: 's', ttlSeconds: 60 } });
  const c = h.client(c1);
  c.challenge();
  const old = c.nonce;
  h.advance(61_000);
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [
    response(c1, METHOD.ALLOCATE, 438, (m) => {
      assert.equal(m.attributes.realm, REALM);
      assert.ok(m.attributes.nonce && m.attributes.nonce !== old);
    }),
  ]);
  c.allocate();
});

test('a request on an allocation with another user\'s credentials gets 441 (protected with that user\'s key)', () => {
  const h = new Harness();
  const alice = h.client(c1, 'alice');
  alice.allocate();
  const bob = h.client(c1, 'bob');
  bob.nonce = alice.nonce;
  const [m] = expectOutputs(bob.refresh(600), [response(c1, METHOD.REFRESH, 441)]) as [ReturnType<typeof decodeOk>];
  assert.equal(verifyIntegrity(m, longTermKey('bob', REALM, 'bob-pw')).result, 'ok');
  expectOutputs(bob.createPermission(addr('203.0.113.5', 1)), [response(c1, METHOD.CREATE_PERMISSION, 441)]);
  expectOutputs(alice.refresh(600), [response(c1, METHOD.REFRESH, 'success')]);
});

test('420 for an unknown comprehension-required attribute, listing it', () => {
  const h = new Harness();
  const data = rawRequest(METHOD.ALLOCATE, [[0x0019, [17, 0, 0, 0]], [0x0031, [1, 2, 3, 4]]]);
  expectOutputs(h.client(c1).send(data), [
    response(c1, METHOD.ALLOCATE, 420, (m) => assert.deepEqual(m.attributes.unknownAttributes, [0x0031])),
  ]);
  // Unknown comprehension-optional attributes are ignored: the request proceeds to auth.
  const ok = rawRequest(METHOD.ALLOCATE, [[0x0019, [17, 0, 0, 0]], [0x8031, [1, 2, 3, 4]]]);
  expectOutputs(h.client(c1).send(ok), [response(c1, METHOD.ALLOCATE, 401)]);
});

test('a request with an unknown method gets 400', () => {
  const h = new Harness();
  expectOutputs(h.client(c1).send(rawRequest(0x00a, [])), [response(c1, 0x00a, 400)]);
});

test('unauthenticated requests are rate limited per source address; authenticated ones have a budget of their own', () => {
  const h = new Harness({ rateLimits: { unauthenticated: createRateLimiter({ perSecond: 1, burst: 2, maxEntries: 100 }) } });
  const c = h.client(c1);
  c.challenge();
  c.challenge();
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }, { auth: false }), []);
  assert.equal(h.server.stats().dropped['rate-limited'], 1);
  // Another source address has its own bucket.
  h.client(addr('198.51.100.9', 1)).challenge();
  // The limited client still gets service with valid credentials.
  c.allocate();
  for (let i = 0; i < 5; i++) expectOutputs(c.refresh(600), [response(c1, METHOD.REFRESH, 'success')]);
  h.advance(1000);
  c.challenge();
});
