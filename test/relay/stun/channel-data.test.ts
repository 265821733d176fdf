// ChannelData over UDP: channel range, length vs datagram, up to 3 padding bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeChannelData, encodeChannelData } from '../../../src/relay/stun/index.ts';

const payload = new Uint8Array([1, 2, 3, 4, 5]);

test('round trip, padded and unpadded, at both ends of the channel range', () => {
  for (const channel of [0x4000, 0x4abc, 0x4fff]) {
    for (const pad of [false, true]) {
      const buf = encodeChannelData(channel, payload, { pad });
      assert.equal(buf.length, pad ? 12 : 9);
      const r = decodeChannelData(buf);
      assert.equal(r.kind, 'channel-data');
      if (r.kind === 'channel-data') {
        assert.equal(r.channel, channel);
        assert.deepEqual(Array.from(r.data), Array.from(payload));
      }
    }
  }
  const empty = decodeChannelData(encodeChannelData(0x4000, new Uint8Array(0)));
  assert.equal(empty.kind === 'channel-data' && empty.data.length, 0);
});

test('drops: short, not channel data, reserved channel, length past the datagram, more than 3 extra bytes', () => {
  const ok = encodeChannelData(0x4001, payload);
  const reason = (b: Uint8Array) => { const r = decodeChannelData(b); return r.kind === 'drop' ? r.reason : 'ok'; };
  assert.equal(reason(ok.subarray(0, 3)), 'too-short');
  assert.equal(reason(new Uint8Array([0x00, 0x01, 0, 0])), 'not-channel-data');
  assert.equal(reason(new Uint8Array([0x80, 0x00, 0, 0])), 'not-channel-data');
  assert.equal(reason(new Uint8Array([0x50, 0x00, 0, 0])), 'bad-channel');
  assert.equal(reason(new Uint8Array([0x7f, 0xff, 0, 0])), 'bad-channel');
  assert.equal(reason(ok.subarray(0, ok.length - 1)), 'truncated');
  for (const extra of [1, 2, 3]) assert.equal(reason(Uint8Array.from([...ok, ...new Array(extra).fill(0)])), 'ok', `${extra} pad bytes`);
  assert.equal(reason(Uint8Array.from([...ok, 0, 0, 0, 0])), 'trailing-bytes');
});

test('encoder refuses channels outside 0x4000-0x4FFF and oversize payloads', () => {
  assert.throws(() => encodeChannelData(0x3fff, payload));
  assert.throws(() => encodeChannelData(0x5000, payload));
  assert.throws(() => encodeChannelData(0x4000, new Uint8Array(65536)));
});
