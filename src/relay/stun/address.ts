// Address attribute values (MAPPED-ADDRESS layout) and the XOR transform of
// RFC 8489 §14.2. Text is canonical (RFC 5952, from src/net/ip.ts) so
// addresses from the codec compare equal to the ones node:dgram reports and
// can be used as Map keys.
import { FAMILY_CODE, MAGIC_COOKIE } from './constants.ts';
import type { Family, StunAddress } from './types.ts';
import { copyBytes } from './bytes.ts';
import { addressToBytes, formatAddress, formatV4, isV4Mapped, toBytes16 } from '../../shared/ip.ts';

// Re-exported so the codec's index keeps offering the text <-> bytes pair.
export { addressToBytes, formatAddress };

/** Hex of a 12-byte transaction id, for use as a Map key. */
export function transactionIdKey(id: Uint8Array): string {
  let s = '';
  for (let i = 0; i < id.length; i++) s += (id[i]! < 16 ? '0' : '') + id[i]!.toString(16);
  return s;
}

/**
 * Decodes the value of an address attribute (MAPPED-ADDRESS layout; XORed
 * when `txid` is given). undefined = malformed.
 */
export function decodeAddressValue(buf: Uint8Array, at: number, len: number, txid: Uint8Array | undefined): StunAddress | undefined {
  if (len < 4) return undefined;
  const fam = buf[at + 1];
  let port = (buf[at + 2]! << 8) | buf[at + 3]!;
  if (txid) port ^= MAGIC_COOKIE >>> 16;
  if (fam === FAMILY_CODE.IPV4) {
    if (len !== 8) return undefined;
    const b = copyBytes(buf, at + 4, at + 8);
    if (txid) xorInPlace(b, txid);
    return { family: 4, address: formatV4(b, 0), port };
  }
  if (fam === FAMILY_CODE.IPV6) {
    if (len !== 20) return undefined;
    const b = copyBytes(buf, at + 4, at + 20);
    if (txid) xorInPlace(b, txid);
    return { family: 6, address: formatAddress(b), port };
  }
  return undefined;
}

function xorInPlace(b: Uint8Array, txid: Uint8Array): void {
  b[0]! ^= 0x21; b[1]! ^= 0x12; b[2]! ^= 0xa4; b[3]! ^= 0x42;
  for (let i = 4; i < b.length; i++) b[i]! ^= txid[i - 4]!;
}

/** The raw address bytes of `a` in its family's size: 4 bytes for family 4 (an IPv4-mapped text is unwrapped), 16 for 6. */
export function familyBytes(a: StunAddress): Uint8Array {
  const b = addressToBytes(a.address);
  if (!b) throw new Error(`not an IP address: ${a.address}`);
  return resize(b, a.family);
}

function resize(b: Uint8Array, family: Family): Uint8Array {
  if (family === 4) {
    if (b.length === 4) return b;
    if (!isV4Mapped(b)) throw new Error('IPv6 address given with family 4');
    return b.subarray(12);
  }
  return toBytes16(b)!;
}

/** Encodes an address attribute value (XORed when `txid` is given). Throws on a bad address (programmer error). */
export function encodeAddressValue(a: StunAddress, txid: Uint8Array | undefined): Uint8Array {
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 0xffff) throw new RangeError(`port out of range: ${a.port}`);
  const b = familyBytes(a);
  const out = new Uint8Array(4 + b.length);
  out[1] = a.family === 4 ? FAMILY_CODE.IPV4 : FAMILY_CODE.IPV6;
  const port = txid ? (a.port ^ (MAGIC_COOKIE >>> 16)) : a.port;
  out[2] = (port >> 8) & 0xff; out[3] = port & 0xff;
  out.set(b, 4);
  if (txid) xorInPlace(out.subarray(4), txid);
  return out;
}
