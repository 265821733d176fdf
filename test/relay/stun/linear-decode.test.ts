// Decoding work grows linearly with the datagram, asserted by counting, not
// timing: the decoder's work counters (decodeWork) for the worst datagrams we
// can build (hostile.ts), and the 420's bounded UNKNOWN-ATTRIBUTES list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ATTR, MAX_UNKNOWN_ATTRIBUTES, METHOD, decodeMessage, encodeMessage, errorResponse, type DecodeResult } from '../../../src/relay/stun/index.ts';
import { decodeWork } from '../../../src/relay/stun/decode.ts';
import { HOSTILE, attr, empty, fill, hostile, message, unknownTypes } from './hostile.ts';

/** decodeMessage(buf) and the work it did. */
function decodeCounted(buf: Uint8Array): { result: DecodeResult; attributes: number; values: number; comparisons: number } {
  const before = { ...decodeWork };
  const result = decodeMessage(buf);
  return {
    result,
    attributes: decodeWork.attributes - before.attributes,
    values: decodeWork.values - before.values,
    comparisons: decodeWork.comparisons - before.comparisons,
  };
}

test('a 420 lists the first MAX_UNKNOWN_ATTRIBUTES distinct unknown types, however many the request carries', () => {
  const { bytes } = hostile('distinct unknown comp.-required, 0-length');
  const r = decodeMessage(bytes);
  assert.equal(r.kind === 'reply-error' && r.code, 420);
  if (r.kind !== 'reply-error') return;
  assert.deepEqual(r.unknownAttributes, unknownTypes.slice(0, MAX_UNKNOWN_ATTRIBUTES));
  // The answer the server builds from it: header, ERROR-CODE, 16 types, FINGERPRINT (not 32 KiB of types).
  const answer = encodeMessage(errorResponse(r, r.code, { unknownAttributes: r.unknownAttributes! }, r.reason), { fingerprint: true });
  assert.equal(answer.length, 20 + 28 + 4 + 2 * MAX_UNKNOWN_ATTRIBUTES + 8);
});

test('the UNKNOWN-ATTRIBUTES list is distinct and in order of first appearance', () => {
  const types = [0x0031, 0x0031, 0x7fff, 0x0031, ...unknownTypes.slice(100, 140)];
  const r = decodeMessage(message(empty('request', METHOD.ALLOCATE), types.map((t) => attr(t))));
  assert.equal(r.kind === 'reply-error' && r.code, 420);
  if (r.kind !== 'reply-error') return;
  const want = [...new Set(types)].slice(0, MAX_UNKNOWN_ATTRIBUTES);
  assert.deepEqual(r.unknownAttributes, want);
});

for (const h of HOSTILE) {
  test(`linear work: ${h.name} (${h.attributes} attributes in ${h.bytes.length} bytes)`, () => {
    const w = decodeCounted(h.bytes);
    assert.notEqual(w.result.kind === 'drop' && w.result.reason, 'bad-attribute-length', 'the datagram is well framed');
    assert.equal(w.attributes, h.attributes, 'each attribute is walked exactly once');
    assert.ok(w.comparisons <= MAX_UNKNOWN_ATTRIBUTES * h.attributes, `${w.comparisons} comparisons for ${h.attributes} attributes`);
    assert.ok(w.values <= h.values, `${w.values} values decoded, at most ${h.values} expected`);
  });
}

test('a repeat of a single-valued attribute is skipped unread, even a malformed one (RFC 8489 §14: duplicates may be ignored)', () => {
  const head = encodeMessage({ method: METHOD.ALLOCATE, cls: 'request', transactionId: new Uint8Array(12), attributes: { username: 'alice', lifetime: 600 } });
  const w = decodeCounted(message(head, [attr(ATTR.USERNAME, [0xff]), attr(ATTR.LIFETIME, [1]), attr(ATTR.USERNAME, [0x62])]));
  assert.equal(w.result.kind, 'message');
  if (w.result.kind !== 'message') return;
  assert.equal(w.result.message.attributes.username, 'alice');
  assert.equal(w.result.message.attributes.lifetime, 600);
  assert.equal(w.values, 2);
});

test('after the first fault no further value is decoded (the answer is already a 400, 420 or drop)', () => {
  const head = empty('request', METHOD.ALLOCATE);
  const parts = [attr(ATTR.LIFETIME, [1]), ...fill(head, (i) => attr(i % 2 === 0 ? ATTR.XOR_PEER_ADDRESS : ATTR.SOFTWARE, [0, 1, 0, 0, 1, 2, 3, 4]))];
  const w = decodeCounted(message(head, parts.slice(0, -1)));
  assert.equal(w.result.kind === 'reply-error' && w.result.detail, 'lifetime');
  assert.equal(w.values, 1);
  // An unknown type first: still a 420, and no value decoded at all.
  const u = decodeCounted(message(head, [attr(0x0031), ...parts.slice(1, -1)]));
  assert.equal(u.result.kind === 'reply-error' && u.result.code, 420);
  assert.equal(u.values, 0);
});

test('every XOR-PEER-ADDRESS is kept: the codec does not bound peers per request, the server must', () => {
  const h = hostile('XOR-PEER-ADDRESS v4, distinct');
  const r = decodeMessage(h.bytes);
  assert.equal(r.kind === 'message' && r.message.attributes.xorPeerAddress?.length, h.attributes);
});
