// RFC 5769 test vectors: decode each sample, check its integrity and
// fingerprint, and rebuild it from the decoded fields byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage, longTermKey, verifyIntegrity, METHOD, type StunMessage } from '../../../src/relay/stun/index.ts';

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const utf8 = (s: string) => new TextEncoder().encode(s);

const SHORT_TERM_KEY = utf8('VOkJxbRl1RmTxUk/WvJxBt');

// §2.1 Sample Request (USERNAME and SOFTWARE padded with 0x20)
const REQUEST = hex(`
  00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
  00 24 00 04 6e 00 01 ff
  80 29 00 08 93 2f f9 b1 51 26 3b 36
  00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
  00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
  80 28 00 04 e5 7a 3b cf`);

// §2.2 Sample IPv4 Response
const IPV4_RESPONSE = hex(`
  01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 08 00 01 a1 47 e1 12 a6 43
  00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
  80 28 00 04 c0 7d 4c 96`);

// §2.3 Sample IPv6 Response
const IPV6_RESPONSE = hex(`
  01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
  00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
  80 28 00 04 c8 fb 0b 4c`);

// §2.4 Sample Request with Long-Term Authentication (zero padding)
const LONG_TERM_REQUEST = hex(`
  00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
  00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
  00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
  00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
  00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66`);

function decoded(buf: Uint8Array): StunMessage {
  const r = decodeMessage(buf);
  if (r.kind !== 'message') assert.fail(`expected a message, got ${r.kind}: ${'reason' in r ? r.reason : ''}`);
  return (r as { message: StunMessage }).message;
}

test('§2.1 sample request: attributes, integrity, fingerprint, re-encoded byte for byte', () => {
  const m = decoded(REQUEST);
  assert.equal(m.method, METHOD.BINDING);
  assert.equal(m.cls, 'request');
  assert.equal(m.attributes.software, 'STUN test client');
  assert.equal(m.attributes.username, 'evtj:h6vY');
  assert.equal(m.attributes.priority, 0x6e0001ff);
  assert.equal(m.attributes.iceControlled, 0x932ff9b151263b36n);
  assert.equal(m.hasFingerprint, true);
  assert.deepEqual(verifyIntegrity(m, SHORT_TERM_KEY), { result: 'ok', algorithm: 'sha1' });
  assert.equal(verifyIntegrity(m, utf8('wrong')).result, 'bad');
  const again = encodeMessage(m, { key: SHORT_TERM_KEY, integrity: 'sha1', fingerprint: true, padding: 0x20 });
  assert.deepEqual(Buffer.from(again).toString('hex'), Buffer.from(REQUEST).toString('hex'));
});

test('§2.2 IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853, re-encoded byte for byte', () => {
  const m = decoded(IPV4_RESPONSE);
  assert.equal(m.cls, 'success');
  assert.equal(m.attributes.software, 'test vector');
  assert.deepEqual(m.attributes.xorMappedAddress, { family: 4, address: '192.0.2.1', port: 32853 });
  assert.equal(verifyIntegrity(m, SHORT_TERM_KEY).result, 'ok');
  const again = encodeMessage(m, { key: SHORT_TERM_KEY, fingerprint: true, padding: 0x20 });
  assert.equal(Buffer.from(again).toString('hex'), Buffer.from(IPV4_RESPONSE).toString('hex'));
});

test('§2.3 IPv6 response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853, re-encoded byte for byte', () => {
  const m = decoded(IPV6_RESPONSE);
  assert.deepEqual(m.attributes.xorMappedAddress, { family: 6, address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 });
  assert.equal(verifyIntegrity(m, SHORT_TERM_KEY).result, 'ok');
  const again = encodeMessage(m, { key: SHORT_TERM_KEY, fingerprint: true, padding: 0x20 });
  assert.equal(Buffer.from(again).toString('hex'), Buffer.from(IPV6_RESPONSE).toString('hex'));
});

test('§2.4 long-term request: MD5(user:realm:pass) key verifies, re-encoded byte for byte', () => {
  const m = decoded(LONG_TERM_REQUEST);
  assert.equal(m.attributes.username, '\u30de\u30c8\u30ea\u30c3\u30af\u30b9');
  assert.equal(m.attributes.nonce, 'f//499k954d6OL34oL9FSTvy64sA');
  assert.equal(m.attributes.realm, 'example.org');
  assert.equal(m.hasFingerprint, false);
  // The password "The<U+00AD>M<U+00AA>tr<U+2168>" after SASLprep is "TheMatrIX"; we take it already prepared.
  const key = longTermKey(m.attributes.username!, 'example.org', 'TheMatrIX');
  assert.equal(verifyIntegrity(m, key).result, 'ok');
  assert.equal(verifyIntegrity(m, longTermKey('x', 'example.org', 'TheMatrIX')).result, 'bad');
  const again = encodeMessage(m, { key });
  assert.equal(Buffer.from(again).toString('hex'), Buffer.from(LONG_TERM_REQUEST).toString('hex'));
});

test('a flipped bit anywhere before the fingerprint is refused (fingerprint or integrity)', () => {
  // (Flipping the FINGERPRINT type itself turns it into an unknown optional
  // attribute after MESSAGE-INTEGRITY, which RFC 8489 says to ignore.)
  for (let i = 0; i < REQUEST.length; i++) {
    if (i === 100 || i === 101) continue;
    const bad = REQUEST.slice();
    bad[i]! ^= 0x01;
    const r = decodeMessage(bad);
    if (r.kind === 'message') assert.equal(verifyIntegrity(r.message, SHORT_TERM_KEY).result, 'bad', `byte ${i}`);
  }
});

export { REQUEST, IPV4_RESPONSE, IPV6_RESPONSE, LONG_TERM_REQUEST };
