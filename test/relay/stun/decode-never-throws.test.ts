// Property tests: decode never throws on random or mutated bytes, every
// outcome is one of the three kinds, and one bad datagram does not change
// how the next good one decodes (no state between calls).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { METHOD, addressToBytes, decodeMessage, decodeChannelData, encodeMessage, encodeChannelData, longTermKey, verifyIntegrity, classify } from '../../../src/relay/stun/index.ts';

// Committed seed: failures reproduce; change it only on purpose.
const SEED = 0x5eed5707;
const RUNS = 3000;

const key = longTermKey('alice', 'turnpike', 'pw');
const txid = new Uint8Array(12).fill(7);
const seeds = [
  encodeMessage({ method: METHOD.ALLOCATE, cls: 'request', transactionId: txid, attributes: { username: 'alice', realm: 'turnpike', nonce: 'n', requestedTransport: 17, lifetime: 600, evenPort: { reserve: true } } }, { key, integrity: 'both', fingerprint: true }),
  encodeMessage({ method: METHOD.SEND, cls: 'indication', transactionId: txid, attributes: { xorPeerAddress: [{ family: 6, address: '2001:db8::1', port: 9 }], data: new Uint8Array(40).fill(1), dontFragment: true } }),
  encodeMessage({ method: METHOD.CREATE_PERMISSION, cls: 'request', transactionId: txid, attributes: { xorPeerAddress: [{ family: 4, address: '8.8.8.8', port: 0 }, { family: 4, address: '1.1.1.1', port: 0 }] } }, { key }),
  encodeMessage({ method: METHOD.ALLOCATE, cls: 'error', transactionId: txid, attributes: { errorCode: { code: 401, reason: 'Unauthenticated' }, unknownAttributes: [1, 2], realm: 'r' } }, { fingerprint: true }),
];
const good = seeds[0]!;
const goodDecoded = JSON.stringify(decodeMessage(good), (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Array.from(v) : v));

function checkOne(buf: Uint8Array): void {
  const r = decodeMessage(buf);
  assert.ok(r.kind === 'message' || r.kind === 'reply-error' || r.kind === 'drop');
  if (r.kind === 'message') verifyIntegrity(r.message, key); // must not throw either
  if (r.kind === 'drop') assert.match(r.reason, /^[a-z-]+$/);
  decodeChannelData(buf);
  classify(buf);
}

test('decode never throws on random bytes', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => checkOne(b)), { seed: SEED, numRuns: RUNS });
});

test('decode never throws on random bytes behind a valid header', () => {
  const arb = fc.tuple(fc.integer({ min: 0, max: 0x3fff }), fc.uint8Array({ maxLength: 300 })).map(([type, body]) => {
    const b = new Uint8Array(20 + body.length);
    b[0] = type >> 8; b[1] = type & 0xff;
    const l = body.length; b[2] = l >> 8; b[3] = l & 0xff;
    b.set([0x21, 0x12, 0xa4, 0x42], 4);
    b.set(body, 20);
    return b;
  });
  fc.assert(fc.property(arb, (b) => checkOne(b)), { seed: SEED, numRuns: RUNS });
});

test('decode never throws on mutated valid messages, and a bad datagram does not affect the next', () => {
  const arb = fc.tuple(
    fc.constantFrom(...seeds),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
    fc.integer({ min: -8, max: 8 }),
  ).map(([base, edits, cut]) => {
    const b = base.slice(0, Math.max(0, base.length + Math.min(0, cut)));
    for (const [at, v] of edits) if (b.length > 0) b[at % b.length] = v;
    return cut > 0 ? Uint8Array.from([...b, ...new Array(cut).fill(0)]) : b;
  });
  fc.assert(
    fc.property(arb, (b) => {
      checkOne(b);
      const again = JSON.stringify(decodeMessage(good), (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Array.from(v) : v));
      assert.equal(again, goodDecoded);
    }),
    { seed: SEED, numRuns: RUNS },
  );
});

test('encode -> decode round-trips random Send indications and ChannelData', () => {
  const addr = fc.oneof(
    fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 65535 })).map(([b, port]) => ({ family: 4 as const, address: Array.from(b).join('.'), port })),
    fc.tuple(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 65535 })).map(([g, port]) => ({ family: 6 as const, address: g.map((x) => x.toString(16)).join(':'), port })),
  );
  fc.assert(
    fc.property(addr, fc.uint8Array({ maxLength: 1200 }), fc.uint8Array({ minLength: 12, maxLength: 12 }), (peer, data, id) => {
      const r = decodeMessage(encodeMessage({ method: METHOD.SEND, cls: 'indication', transactionId: id, attributes: { xorPeerAddress: [peer], data } }));
      assert.equal(r.kind, 'message');
      if (r.kind !== 'message') return;
      const got = r.message.attributes.xorPeerAddress![0]!;
      assert.equal(got.port, peer.port);
      assert.equal(got.family, peer.family);
      assert.deepEqual(addressToBytes(got.address), addressToBytes(peer.address));
      assert.deepEqual(Array.from(r.message.attributes.data!), Array.from(data));
      const cd = decodeChannelData(encodeChannelData(0x4000 + (peer.port & 0xfff), data));
      assert.equal(cd.kind === 'channel-data' && cd.data.length, data.length);
    }),
    { seed: SEED, numRuns: 500 },
  );
});
