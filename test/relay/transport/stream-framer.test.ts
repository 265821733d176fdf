// The stream framer (RFC 8489 §6.2.2, RFC 8656 §12.5): STUN messages and
// padded ChannelData cut out of a byte stream however it is chunked; garbage
// and oversize lengths end the stream; nothing beyond one message is held.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD, encodeChannelData, encodeMessage, newTransactionId } from '../../../src/relay/stun/index.ts';
import { StreamFramer, padForStream } from '../../../src/relay/transport/stream-framer.ts';

const stun = () => encodeMessage({ method: METHOD.BINDING, cls: 'request', transactionId: newTransactionId(), attributes: { software: 'x' } }, { fingerprint: true });
const channel = (n: number) => encodeChannelData(0x4001, new Uint8Array(n).fill(7));
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('merged messages in one chunk come out one by one; ChannelData loses its stream padding', () => {
  const a = stun();
  const b = channel(5); // 9 bytes, padded to 12 on the stream
  const c = channel(8);
  const f = new StreamFramer(65_556);
  const { frames, error } = f.push(concat(a, padForStream(b), padForStream(c)));
  assert.equal(error, undefined);
  assert.deepEqual(frames.map(hex), [a, b, c].map(hex));
  assert.equal(f.buffered, 0);
});

test('every split of a stream yields the same messages', () => {
  const msgs = [stun(), channel(1), channel(3), stun(), channel(0)];
  const wire = concat(...msgs.map(padForStream));
  for (let size = 1; size <= wire.length; size++) {
    const f = new StreamFramer(65_556);
    const out: Uint8Array[] = [];
    for (let at = 0; at < wire.length; at += size) {
      const r = f.push(wire.subarray(at, at + size));
      assert.equal(r.error, undefined, `chunk size ${size}`);
      out.push(...r.frames);
    }
    assert.deepEqual(out.map(hex), msgs.map(hex), `chunk size ${size}`);
    assert.equal(f.buffered, 0);
  }
});

test('garbage ends the stream: top bits 10/11, a bad magic cookie (caught from its first byte), a STUN length not a multiple of 4, TLS on the TCP port', () => {
  for (const bad of [[0x80, 0, 0, 0], [0xff], [0x00, 0x01, 0x00, 0x00, 0x21, 0x13], [0x00, 0x01, 0x00, 0x03, 0x21, 0x12, 0xa4, 0x42], /* a TLS ClientHello on the TCP port */ [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]]) {
    const f = new StreamFramer(65_556);
    assert.equal(f.push(Uint8Array.from(bad)).error, 'garbage', JSON.stringify(bad));
    assert.equal(f.push(stun()).error, 'garbage', 'the stream stays dead');
  }
  // Valid messages before the garbage are still handed out.
  const f = new StreamFramer(65_556);
  const r = f.push(concat(stun(), Uint8Array.from([0xc0, 0, 0, 0])));
  assert.equal(r.frames.length, 1);
  assert.equal(r.error, 'garbage');
});

test('a declared length beyond the read buffer ends the stream at once, without waiting for the bytes', () => {
  const f = new StreamFramer(1024);
  assert.equal(f.push(Uint8Array.from([0x40, 0x01, 0x04, 0x00])).error, 'oversize'); // 4 + 1024
  const g = new StreamFramer(1024);
  assert.equal(g.push(Uint8Array.from([0x00, 0x01, 0x03, 0xf0, 0x21, 0x12, 0xa4, 0x42])).error, 'oversize'); // 20 + 1008
  const ok = new StreamFramer(1024);
  assert.equal(ok.push(Uint8Array.from([0x40, 0x01, 0x03, 0xfc])).error, undefined); // exactly 1024
  assert.equal(ok.buffered, 4);
});

test('frames handed out are never overwritten by later input', () => {
  const f = new StreamFramer(65_556);
  const a = stun();
  const wire = concat(a, stun());
  const first = f.push(wire.subarray(0, a.length + 10)).frames[0]!;
  const snapshot = hex(first);
  f.push(wire.subarray(a.length + 10));
  f.push(stun());
  assert.equal(hex(first), snapshot);
});
