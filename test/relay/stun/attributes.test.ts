// Every attribute survives encode -> decode, with and without integrity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ATTR, METHOD, decodeMessage, encodeMessage, errorResponse, successResponse, newTransactionId, longTermKey,
  verifyIntegrity, formatAddress, addressToBytes, transactionIdKey,
  type StunAttributes, type StunMessage, type StunMessageInit,
} from '../../../src/relay/stun/index.ts';

const txid = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);

function roundTrip(init: StunMessageInit, opts = {}): StunMessage {
  const r = decodeMessage(encodeMessage(init, opts));
  if (r.kind !== 'message') assert.fail(`${r.kind}: ${'reason' in r ? r.reason : ''}`);
  return r.message;
}

const ALL: StunAttributes = {
  mappedAddress: { family: 4, address: '192.0.2.1', port: 1 },
  xorMappedAddress: { family: 6, address: '2001:db8::1', port: 65535 },
  xorRelayedAddress: [{ family: 4, address: '198.51.100.1', port: 49152 }, { family: 6, address: '2001:db8::2', port: 49153 }],
  xorPeerAddress: [{ family: 4, address: '203.0.113.9', port: 5000 }, { family: 6, address: '::ffff:203.0.113.10', port: 5001 }, { family: 6, address: 'fe80::1:2:3:4', port: 0 }],
  alternateServer: { family: 6, address: '2001:db8:0:0:1::', port: 3478 },
  username: 'user\u00e9', realm: 'example.org', nonce: 'abc.def', software: 'turnpike',
  errorCode: { code: 438, reason: 'Stale Nonce' },
  unknownAttributes: [0x0031, 0x7fff],
  lifetime: 600, requestedTransport: 17, requestedAddressFamily: 6, additionalAddressFamily: 6,
  addressErrorCode: { family: 4, code: 440, reason: 'Address Family not Supported' },
  channelNumber: 0x4001, data: new Uint8Array([0, 1, 2, 3, 4]), dontFragment: true,
  evenPort: { reserve: true }, reservationToken: new Uint8Array([9, 8, 7, 6, 5, 4, 3, 2]),
  priority: 0x7e0000ff, useCandidate: true, iceControlled: 0xfedcba9876543210n, iceControlling: 1n,
  passwordAlgorithms: new Uint8Array([0, 2, 0, 0]), passwordAlgorithm: new Uint8Array([0, 2, 0, 0]),
  userhash: new Uint8Array(32).fill(7),
};

test('every attribute round-trips', () => {
  for (const cls of ['request', 'indication', 'success', 'error'] as const) {
    const m = roundTrip({ method: METHOD.ALLOCATE, cls, transactionId: txid, attributes: ALL });
    assert.equal(m.cls, cls);
    assert.equal(m.method, METHOD.ALLOCATE);
    assert.deepEqual(m.transactionId, txid);
    const got = { ...m.attributes } as Record<string, unknown>;
    const want = { ...ALL } as Record<string, unknown>;
    for (const k of ['data', 'reservationToken', 'passwordAlgorithms', 'passwordAlgorithm', 'userhash']) {
      got[k] = Array.from(got[k] as Uint8Array);
      want[k] = Array.from(want[k] as Uint8Array);
    }
    // IPv4-mapped text given with family 6 stays family 6 and canonical
    assert.deepEqual(got, want);
  }
});

test('each attribute alone round-trips (no cross-talk)', () => {
  for (const [k, v] of Object.entries(ALL)) {
    const m = roundTrip({ method: METHOD.SEND, cls: 'indication', transactionId: txid, attributes: { [k]: v } });
    assert.deepEqual(Object.keys(m.attributes), [k], k);
  }
});

test('every method and class survives the type-field bit interleaving', () => {
  for (let method = 0; method <= 0xfff; method += 0x111) {
    for (const cls of ['request', 'indication', 'success', 'error'] as const) {
      const m = roundTrip({ method, cls, transactionId: txid, attributes: {} });
      assert.equal(m.method, method);
      assert.equal(m.cls, cls);
    }
  }
});

test('integrity sha1, sha256 and both verify; the wrong key does not', () => {
  const key = longTermKey('alice', 'example.org', 'pw');
  const bad = longTermKey('alice', 'example.org', 'pw2');
  for (const integrity of ['sha1', 'sha256', 'both'] as const) {
    for (const fingerprint of [false, true]) {
      const m = roundTrip({ method: METHOD.ALLOCATE, cls: 'request', transactionId: txid, attributes: { username: 'alice', lifetime: 60 } }, { key, integrity, fingerprint });
      const expectAlg = integrity === 'sha1' ? 'sha1' : 'sha256';
      assert.deepEqual(verifyIntegrity(m, key), { result: 'ok', algorithm: expectAlg });
      assert.equal(verifyIntegrity(m, bad).result, 'bad');
      assert.equal(m.hasFingerprint, fingerprint);
    }
  }
  const plain = roundTrip({ method: METHOD.BINDING, cls: 'request', transactionId: txid, attributes: {} });
  assert.equal(verifyIntegrity(plain, key).result, 'missing');
});

test('attributes after MESSAGE-INTEGRITY are ignored; a later USERNAME cannot smuggle in', () => {
  const key = longTermKey('a', 'r', 'p');
  const signed = encodeMessage({ method: METHOD.REFRESH, cls: 'request', transactionId: txid, attributes: { lifetime: 0 } }, { key });
  // append LIFETIME=600 and an unknown comprehension-required attribute after MI
  const extra = new Uint8Array([0x00, 0x0d, 0x00, 0x04, 0, 0, 2, 0x58, 0x00, 0x31, 0x00, 0x00]);
  const buf = new Uint8Array(signed.length + extra.length);
  buf.set(signed); buf.set(extra, signed.length);
  const len = buf.length - 20; buf[2] = len >> 8; buf[3] = len & 0xff;
  const r = decodeMessage(buf);
  assert.equal(r.kind, 'message');
  if (r.kind !== 'message') return;
  assert.equal(r.message.attributes.lifetime, 0);
  assert.equal(verifyIntegrity(r.message, key).result, 'ok');
});

test('first occurrence wins for single-valued attributes; XOR-PEER-ADDRESS keeps all', () => {
  const a = encodeMessage({ method: METHOD.CREATE_PERMISSION, cls: 'request', transactionId: txid, attributes: { lifetime: 1, xorPeerAddress: [{ family: 4, address: '8.8.8.8', port: 1 }] } });
  const b = encodeMessage({ method: METHOD.CREATE_PERMISSION, cls: 'request', transactionId: txid, attributes: { lifetime: 2, xorPeerAddress: [{ family: 4, address: '9.9.9.9', port: 2 }] } });
  const joined = new Uint8Array(a.length + b.length - 20);
  joined.set(a); joined.set(b.subarray(20), a.length);
  const len = joined.length - 20; joined[2] = len >> 8; joined[3] = len & 0xff;
  const r = decodeMessage(joined);
  assert.equal(r.kind, 'message');
  if (r.kind !== 'message') return;
  assert.equal(r.message.attributes.lifetime, 1);
  assert.deepEqual(r.message.attributes.xorPeerAddress?.map((p) => p.address), ['8.8.8.8', '9.9.9.9']);
});

test('response helpers, transaction ids, address text', () => {
  const req = { method: METHOD.ALLOCATE, transactionId: txid };
  const e = roundTrip(errorResponse(req, 401, { realm: 'r', nonce: 'n' }));
  assert.equal(e.cls, 'error');
  assert.deepEqual(e.attributes.errorCode, { code: 401, reason: 'Unauthenticated' });
  assert.equal(e.attributes.realm, 'r');
  assert.deepEqual(roundTrip(errorResponse(req, 486, {}, 'quota')).attributes.errorCode, { code: 486, reason: 'quota' });
  assert.equal(roundTrip(successResponse(req, { lifetime: 5 })).attributes.lifetime, 5);
  assert.equal(newTransactionId().length, 12);
  assert.deepEqual(newTransactionId((n) => new Uint8Array(n).fill(3)), new Uint8Array(12).fill(3));
  assert.equal(transactionIdKey(txid), '0102030405060708090a0b0c');
  for (const [text, canon] of <Array<[string, string]>>[['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['0:0:0:0:0:0:0:1', '::1'], ['::ffff:1.2.3.4', '::ffff:1.2.3.4'], ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'], ['fe80::1%eth0', 'fe80::1'], ['64:ff9b::192.0.2.1', '64:ff9b::c000:201']]) {
    assert.equal(formatAddress(addressToBytes(text)!), canon, text);
  }
  assert.equal(addressToBytes('1.2.3'), undefined);
  assert.equal(addressToBytes('01.2.3.256'), undefined);
});

test('IPv6 text is RFC 5952 canonical: what the WHATWG URL serializer writes, dotted only for IPv4-mapped', () => {
  const group = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })); // zero runs and ::ffff: often
  fc.assert(fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (g) => {
    const b = new Uint8Array(16);
    g.forEach((x, i) => { b[2 * i] = x >> 8; b[2 * i + 1] = x & 0xff; });
    const mapped = g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
    const want = mapped ? `::ffff:${b.subarray(12).join('.')}` : new URL(`http://[${g.map((x) => x.toString(16)).join(':')}]/`).hostname.slice(1, -1);
    assert.equal(formatAddress(b), want);
  }), { seed: 0x5eed5707, numRuns: 3000 });
});

test('encoder rejects programmer errors', () => {
  assert.throws(() => encodeMessage({ method: 1, cls: 'request', transactionId: new Uint8Array(11), attributes: {} }));
  assert.throws(() => encodeMessage({ method: 1, cls: 'request', transactionId: txid, attributes: {} }, { integrity: 'sha1' }));
  assert.throws(() => encodeMessage({ method: 1, cls: 'request', transactionId: txid, attributes: { xorPeerAddress: [{ family: 4, address: 'nope', port: 1 }] } }));
  assert.throws(() => encodeMessage({ method: 1, cls: 'request', transactionId: txid, attributes: { xorPeerAddress: [{ family: 4, address: '2001:db8::1', port: 1 }] } }));
  assert.throws(() => encodeMessage({ method: 1, cls: 'request', transactionId: txid, attributes: { xorPeerAddress: [{ family: 4, address: '1.2.3.4', port: 70000 }] } }));
  assert.throws(() => encodeMessage({ method: 1, cls: 'request', transactionId: txid, attributes: { data: new Uint8Array(70000) } }));
  assert.equal(ATTR.XOR_PEER_ADDRESS, 0x0012);
});
