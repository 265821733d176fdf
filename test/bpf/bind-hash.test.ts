// Where a binding's key sits in a directory (src/sidecar/bpf/bind-hash.ts;
// bpf/bindings.h computes the same, which the golden tests prove by finding
// every binding the sidecar placed). Pure: no kernel needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeChanKey, encodePeerKey } from '../../src/sidecar/bpf/abi.ts';
import { DIR_CHAN, DIR_PEER, keyHash, placeOf } from '../../src/sidecar/bpf/bind-hash.ts';

const SEED: [bigint, bigint] = [0x0123456789abcdefn, 0xfedcba9876543210n];
const chanKey = (port: number, channel: number) => encodeChanKey({ client: { address: '192.0.2.7', port }, channel });

test('a key has two buckets within the directory and an 8-bit tag, the same every time', () => {
  for (let i = 0; i < 1000; i++) {
    const h = keyHash(chanKey(40000 + i, 0x4000 + (i % 0x4000)), SEED, DIR_CHAN);
    assert.ok(h >= 0n && h < 1n << 64n);
    const { buckets, tag } = placeOf(h, 511);
    for (const b of buckets) assert.ok(Number.isInteger(b) && b >= 0 && b <= 511);
    assert.ok(Number.isInteger(tag) && tag >= 0 && tag <= 255);
    assert.deepEqual(placeOf(keyHash(chanKey(40000 + i, 0x4000 + (i % 0x4000)), SEED, DIR_CHAN), 511), { buckets, tag });
  }
});

test('the seed decides where a key goes, and so does the direction', () => {
  const other: [bigint, bigint] = [SEED[0] ^ 1n, SEED[1]];
  let moved = 0;
  let dirDiffers = 0;
  for (let i = 0; i < 1000; i++) {
    const k = chanKey(50000, 0x4000 + i);
    if (placeOf(keyHash(k, SEED, DIR_CHAN), 4095).buckets[0] !== placeOf(keyHash(k, other, DIR_CHAN), 4095).buckets[0]) moved++;
    if (keyHash(k, SEED, DIR_CHAN) !== keyHash(k, SEED, DIR_PEER)) dirDiffers++;
  }
  assert.ok(moved > 990, `one seed bit moved ${moved} of 1000 keys`);
  assert.equal(dirDiffers, 1000);
});

test('keys one client chooses in sequence (ports, channels, peers) spread over the buckets', () => {
  // 8,192 keys (4,096 per direction) into 1,024 buckets: 8 per bucket on average. A hash that let
  // sequential keys pile up (an attacker's easiest aim) would show here.
  const count = new Map<number, number>();
  for (let i = 0; i < 4096; i++) {
    const keys = [chanKey(40000, 0x4000 + i), encodePeerKey({ peer: { address: '198.51.100.1', port: 1024 + i }, allocationPort: 49152 })];
    for (const [j, k] of keys.entries()) {
      const b = placeOf(keyHash(k, SEED, j === 0 ? DIR_CHAN : DIR_PEER), 1023).buckets[0];
      count.set(b, (count.get(b) ?? 0) + 1);
    }
  }
  const max = Math.max(...count.values());
  assert.ok(count.size > 1000, `${count.size} of 1,024 buckets used`);
  assert.ok(max <= 24, `the fullest bucket has ${max} keys (mean 8)`);
});
