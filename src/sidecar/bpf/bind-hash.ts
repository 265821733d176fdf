// Where a binding's key sits in a directory (bpf/bindings.h computes the
// same): a keyed 64-bit hash of the 24-byte key, two candidate buckets and
// an 8-bit tag, from the seed in tp_bind_meta. Pure; BigInt because the
// program's arithmetic is 64-bit.
const M64 = (1n << 64n) - 1n;

/** Direction numbers, as bindings.h's TP_DIR_CHAN and TP_DIR_PEER. */
export const DIR_CHAN = 0;
export const DIR_PEER = 1;
export type Direction = typeof DIR_CHAN | typeof DIR_PEER;

function mix(h: bigint): bigint {
  h ^= h >> 31n;
  h = (h * 0x7fb5d329728ea185n) & M64;
  h ^= h >> 27n;
  h = (h * 0x81dadef4bc2dd44dn) & M64;
  h ^= h >> 33n;
  return h;
}

/** The hash of a 24-byte key: its three words in host (little-endian) order, as the program loads them. */
export function keyHash(key: Uint8Array, seed: readonly [bigint, bigint], dir: Direction): bigint {
  const v = new DataView(key.buffer, key.byteOffset, 24);
  const w = (i: number) => v.getBigUint64(i * 8, true);
  let h = mix(w(0) ^ seed[dir & 1]!);
  h = mix(h ^ w(1) ^ seed[(dir + 1) & 1]!);
  return mix(h ^ w(2) ^ BigInt(dir));
}

/** The key's two buckets (they may be the same one) and its tag, for a directory of mask + 1 buckets. */
export function placeOf(h: bigint, mask: number): { buckets: [number, number]; tag: number } {
  const low = Number(h & 0xffffffffn);
  const mid = Number((h >> 24n) & 0xffffffffn);
  return { buckets: [(low & mask) >>> 0, (mid & mask) >>> 0], tag: Number(h >> 56n) };
}
