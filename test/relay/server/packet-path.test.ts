// The per-packet shortcuts (channelDataHeader, slab-allocated outputs,
// allocation lookup by client address, the link's packet-frame decoder and
// its address cache) must give exactly the answers of the general code they
// stand in for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CHANNEL_DATA_DROP, LEGACY_CHANNEL_MAX, channelDataHeader, decodeChannelDataUpTo } from '../../../src/relay/server/channel-data.ts';
import { CHANNEL_MAX, allocTransient, encodeChannelData } from '../../../src/relay/stun/index.ts';
import { decodeFrame, encodeFrame, type Frame } from '../../../src/link/protocol.ts';
import { Harness, LISTEN4, addr, datagram, expectOutputs } from './harness.ts';

test('channelDataHeader agrees with decodeChannelDataUpTo on any bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), fc.constantFrom(CHANNEL_MAX, LEGACY_CHANNEL_MAX), (bytes, max) => {
      const slow = decodeChannelDataUpTo(bytes, max);
      const fast = channelDataHeader(bytes, max);
      if (slow.kind === 'drop') {
        assert.ok(fast < 0);
        assert.equal(CHANNEL_DATA_DROP[-fast], `channel-data-${slow.reason}`);
      } else {
        assert.equal(fast, slow.channel);
        assert.equal((bytes[2]! << 8) | bytes[3]!, slow.data.length);
      }
    }),
    { numRuns: 5000 },
  );
});

test('transient buffers are zeroed and never overlap', () => {
  const taken: Uint8Array[] = [];
  for (let i = 0; i < 3000; i++) {
    const b = allocTransient((i * 37) % 200);
    assert.ok(b.every((x) => x === 0));
    b.fill(i & 0xff);
    taken.push(b);
  }
  taken.forEach((b, i) => assert.ok(b.every((x) => x === (i & 0xff)), `buffer ${i} was overwritten`));
  assert.equal(allocTransient(10_000).buffer.byteLength, 10_000, 'large sizes get their own buffer');
  const padded = encodeChannelData(0x4001, new Uint8Array([1, 2, 3]), { pad: true });
  assert.deepEqual([...padded], [0x40, 0x01, 0, 3, 1, 2, 3, 0]);
});

test('relayed outputs do not alias the input or each other', () => {
  const h = new Harness();
  const client = addr('198.51.100.1', 40001);
  const peer = addr('203.0.113.5', 6000);
  const c = h.client(client);
  const { ports } = c.allocate();
  c.channelBind(0x4001, peer);
  const input = encodeChannelData(0x4001, new Uint8Array([9, 8, 7]));
  const [sent] = expectOutputs(h.input(input, LISTEN4, client), [datagram({ family: 4, port: ports.v4! }, peer, new Uint8Array([9, 8, 7]))]) as [Uint8Array];
  input.fill(0);
  assert.deepEqual([...sent], [9, 8, 7]);
  // The same client address as a fresh string (as a socket reports it) finds the allocation.
  const again = { family: 4 as const, address: ['198', '51', '100', '1'].join('.'), port: 40001 };
  expectOutputs(h.input(encodeChannelData(0x4001, new Uint8Array([1])), LISTEN4, again), [datagram({ family: 4, port: ports.v4! }, peer, new Uint8Array([1]))]);
  // Another port of the same client IP has no allocation.
  expectOutputs(h.input(encodeChannelData(0x4001, new Uint8Array([1])), LISTEN4, addr('198.51.100.1', 40002)), []);
  assert.equal(h.server.stats().dropped['no-allocation'], 1);
});

test('packet frames decode the same through the fast path, cache hits included', () => {
  const frames: Frame[] = [
    { kind: 'packet-in', local: { family: 4, port: 3478 }, remote: { family: 4, address: '198.51.100.7', port: 1 }, data: new Uint8Array([1, 2]) },
    { kind: 'packet-in', local: { family: 4, port: 3478 }, remote: { family: 4, address: '198.51.100.8', port: 65535 }, data: new Uint8Array(0) },
    { kind: 'packet-out', from: { family: 6, port: 50000 }, to: { family: 6, address: '2001:db8::1', port: 9 }, data: new Uint8Array([7]) },
  ];
  for (let round = 0; round < 3; round++) {
    for (const f of frames) {
      const buf = encodeFrame(f);
      const r = decodeFrame(buf, 4, buf.length);
      assert.ok(r.ok);
      assert.deepEqual({ ...r.frame, data: [...(r.frame as { data: Uint8Array }).data] }, { ...f, data: [...(f as { data: Uint8Array }).data] });
    }
  }
  // Malformed packet frames still get the generic decoder's reasons.
  const bad = encodeFrame(frames[0]!);
  bad[5] = 5; // local family
  const r = decodeFrame(bad, 4, bad.length);
  assert.equal(r.ok, false);
  assert.match((r as { reason: string }).reason, /malformed packet-in frame: bad address family 5/);
  const short = encodeFrame(frames[0]!).subarray(0, 12);
  assert.equal(decodeFrame(short, 4, short.length).ok, false);
});
