// Malformed datagrams: each fault has one outcome (drop with a stable reason,
// or a 400/420 reply for a parseable request), and nothing throws.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD, decodeMessage, encodeMessage, longTermKey, verifyIntegrity, classify, isStun } from '../../../src/relay/stun/index.ts';

const txid = new Uint8Array(12).fill(0xab);
const request = (attributes = {}, opts = {}) => encodeMessage({ method: METHOD.ALLOCATE, cls: 'request', transactionId: txid, attributes }, opts);

function withLength(buf: Uint8Array): Uint8Array {
  const l = buf.length - 20; buf[2] = l >> 8; buf[3] = l & 0xff;
  return buf;
}
function append(msg: Uint8Array, ...attrBytes: number[]): Uint8Array {
  const out = new Uint8Array(msg.length + attrBytes.length);
  out.set(msg); out.set(attrBytes, msg.length);
  return withLength(out);
}
const reason = (buf: Uint8Array) => {
  const r = decodeMessage(buf);
  return r.kind === 'drop' ? r.reason : r.kind;
};

test('framing faults are dropped with a stable reason', () => {
  const good = request({ lifetime: 600 }, { fingerprint: true });
  assert.equal(reason(good), 'message');
  assert.equal(reason(new Uint8Array(0)), 'not-stun');
  assert.equal(reason(good.subarray(0, 19)), 'not-stun', 'short header');
  const top = good.slice(); top[0] = top[0]! | 0x80;
  assert.equal(reason(top), 'not-stun');
  const cookie = good.slice(); cookie[5] = cookie[5]! ^ 1;
  assert.equal(reason(cookie), 'bad-cookie');
  const odd = good.slice(); odd[3]! += 1;
  assert.equal(reason(odd), 'bad-length');
  assert.equal(reason(good.subarray(0, good.length - 4)), 'truncated', 'datagram shorter than the length field');
  const longer = new Uint8Array(good.length + 4); longer.set(good);
  assert.equal(reason(longer), 'trailing-bytes');
  const fp = good.slice(); fp[fp.length - 1] = fp[fp.length - 1]! ^ 1;
  assert.equal(reason(fp), 'bad-fingerprint');
});

test('an attribute length that lies is dropped', () => {
  const m = request({ lifetime: 600 });
  const lie = m.slice(); lie[23] = 200; // LIFETIME says 200 bytes
  assert.equal(reason(lie), 'bad-attribute-length');
  // a trailing partial attribute header
  assert.equal(reason(append(request(), 0x00, 0x0d, 0x00, 0x08)), 'bad-attribute-length');
  // length not padded inside the message: 1-byte attribute with no padding room
  const unpadded = withLength(Uint8Array.from([...request(), 0x80, 0x22, 0x00, 0x05, 0x41, 0x41, 0x41, 0x41]));
  assert.equal(reason(unpadded), 'bad-attribute-length');
});

test('attributes after FINGERPRINT are dropped', () => {
  const m = request({}, { fingerprint: true });
  assert.equal(reason(append(m, 0x80, 0x22, 0, 0)), 'fingerprint-not-last');
});

test('unknown comprehension-required attributes in a request: 420 listing each once', () => {
  const m = append(request({ lifetime: 1 }), 0x00, 0x31, 0, 0, 0x7f, 0xff, 0, 4, 1, 2, 3, 4, 0x00, 0x31, 0, 0, 0xc0, 0x01, 0, 0);
  const r = decodeMessage(m);
  assert.equal(r.kind, 'reply-error');
  if (r.kind !== 'reply-error') return;
  assert.equal(r.code, 420);
  assert.equal(r.reason, 'Unknown Attribute');
  assert.equal(r.method, METHOD.ALLOCATE);
  assert.deepEqual(r.transactionId, txid);
  assert.deepEqual(r.unknownAttributes, [0x0031, 0x7fff]); // 0xc001 is comprehension-optional: ignored
});

test('unknown comprehension-optional attributes are ignored', () => {
  assert.equal(reason(append(request(), 0x80, 0x77, 0, 4, 1, 2, 3, 4)), 'message');
});

test('the same faults in an indication or response are dropped, not answered', () => {
  const ind = encodeMessage({ method: METHOD.SEND, cls: 'indication', transactionId: txid, attributes: {} });
  assert.equal(reason(append(ind, 0x00, 0x31, 0, 0)), 'unknown-attribute');
  assert.equal(reason(append(ind, 0x00, 0x12, 0, 4, 0, 9, 0, 0)), 'malformed-attribute');
  const resp = encodeMessage({ method: METHOD.ALLOCATE, cls: 'success', transactionId: txid, attributes: {} });
  assert.equal(reason(append(resp, 0x00, 0x31, 0, 0)), 'unknown-attribute');
});

test('malformed known attributes in a request: 400 naming the attribute', () => {
  const cases: Array<[number[], string]> = [
    [[0x00, 0x12, 0, 8, 0, 9, 0, 0, 1, 2, 3, 4], 'xor-peer-address'], // family 9
    [[0x00, 0x12, 0, 8, 0, 2, 0, 0, 1, 2, 3, 4], 'xor-peer-address'], // IPv6 with 4 bytes
    [[0x00, 0x0d, 0, 2, 0, 1, 0, 0], 'lifetime'],
    [[0x00, 0x0c, 0, 2, 0x40, 0, 0, 0], 'channel-number'],
    [[0x00, 0x19, 0, 1, 17, 0, 0, 0], 'requested-transport'],
    [[0x00, 0x09, 0, 4, 0, 0, 9, 1], 'error-code'], // class 9
    [[0x00, 0x1a, 0, 4, 0, 0, 0, 0], 'dont-fragment'],
    [[0x00, 0x22, 0, 4, 0, 0, 0, 0], 'reservation-token'],
    [[0x00, 0x06, 0, 2, 0xc3, 0x28, 0, 0], 'username'], // invalid UTF-8
    [[0x00, 0x08, 0, 4, 0, 0, 0, 0], 'message-integrity'],
    [[0x00, 0x1c, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0], 'message-integrity-sha256'],
  ];
  for (const [bytes, detail] of cases) {
    const r = decodeMessage(append(request(), ...bytes));
    assert.equal(r.kind, 'reply-error', detail);
    if (r.kind === 'reply-error') {
      assert.equal(r.code, 400, detail);
      assert.equal(r.detail, detail);
    }
  }
  const longName = new TextEncoder().encode('x'.repeat(514));
  const r = decodeMessage(append(request(), 0x00, 0x06, 0x02, 0x02, ...longName, 0, 0));
  assert.equal(r.kind === 'reply-error' && r.code, 400, 'USERNAME over 513 bytes');
});

test('REQUESTED-ADDRESS-FAMILY with an unknown family decodes as unsupported (server answers 440)', () => {
  const r = decodeMessage(append(request(), 0x00, 0x17, 0, 4, 7, 0, 0, 0));
  assert.equal(r.kind === 'message' && r.message.attributes.requestedAddressFamily, 'unsupported');
});

test('bad integrity is reported by verifyIntegrity, not decode', () => {
  const key = longTermKey('u', 'r', 'p');
  const m = request({ username: 'u', lifetime: 600 }, { key });
  const tampered = m.slice(); tampered[m.length - 1] = tampered[m.length - 1]! ^ 1; // last MAC byte
  const r = decodeMessage(tampered);
  assert.equal(r.kind, 'message');
  if (r.kind === 'message') assert.equal(verifyIntegrity(r.message, key).result, 'bad');
  const t2 = m.slice(); t2[27] = t2[27]! ^ 1; // inside LIFETIME... or USERNAME
  const r2 = decodeMessage(t2);
  if (r2.kind === 'message') assert.equal(verifyIntegrity(r2.message, key).result, 'bad');
});

test('oversize and junk', () => {
  const big = new Uint8Array(70_000);
  big.set(request());
  assert.notEqual(reason(big), 'message');
  assert.equal(reason(new Uint8Array(1500).fill(0xff)), 'not-stun');
  assert.equal(reason(new Uint8Array(1500)), 'bad-cookie');
  assert.equal(classify(new Uint8Array([0x00])), 'stun');
  assert.equal(classify(new Uint8Array([0x40])), 'channel-data');
  assert.equal(classify(new Uint8Array([0x80])), 'other');
  assert.equal(classify(new Uint8Array([0x16, 0xfe])), 'stun', 'first two bits only (DTLS 0x16 shares them)');
  assert.equal(classify(new Uint8Array(0)), 'other');
  assert.equal(isStun(request()), true);
  assert.equal(isStun(new Uint8Array(20)), false);
});

test('decoding a Node Buffer leaves its bytes unchanged (Buffer.slice is a view)', () => {
  const key = longTermKey('u', 'r', 'p');
  const bytes = encodeMessage(
    { method: METHOD.CREATE_PERMISSION, cls: 'request', transactionId: txid,
      attributes: { xorPeerAddress: [{ family: 4, address: '192.0.2.1', port: 9 }, { family: 6, address: '2001:db8::1', port: 9 }], username: 'u' } },
    { key, integrity: 'sha1', fingerprint: true },
  );
  const buf = Buffer.from(bytes);
  const before = Buffer.from(buf);
  const first = decodeMessage(buf);
  assert.equal(first.kind, 'message');
  if (first.kind === 'message') assert.equal(verifyIntegrity(first.message, key).result, 'ok');
  assert.deepEqual(buf, before);
  assert.equal(decodeMessage(buf).kind, 'message');
});
