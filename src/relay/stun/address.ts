// Address attribute values (MAPPED-ADDRESS layout) and the XOR transform of
// RFC 8489 §14.2. Text is canonical (RFC 5952, from src/shared/ip.ts) so
// addresses from the codec compare equal to the ones node:dgram reports and
// can be used as Map keys.
import { FAMILY_CODE, MAGIC_COOKIE } from './constants.ts';
import type { Family, StunAddress } from './types.ts';
import { addressToBytes, formatAddress, isV4Mapped, toBytes16 } from '../../shared/ip.ts';

// Re-exported so the codec's index keeps offering the text <-> bytes pair.
export { addressToBytes, formatAddress };

/** Hex of a 12-byte transaction id, for use as a Map key. */
export function transactionIdKey(id: Uint8Array): string {
  let s = '';
  for (let i = 0; i < id.length; i++) s += (id[i]! < 16 ? '0' : '') + id[i]!.toString(16);
  return s;
}

// Scratch for the address bytes between the datagram and their text: filled
// and read within one decodeAddressValue call, so nothing survives it. Saves
// a typed-array allocation per address (a datagram can carry 5,461).
const SCRATCH = { 4: new Uint8Array(4), 16: new Uint8Array(16) } as const;

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
    return { family: 4, address: formatAddress(readAddress(SCRATCH[4], buf, at + 4, txid)), port };
  }
  if (fam === FAMILY_CODE.IPV6) {
    if (len !== 20) return undefined;
    return { family: 6, address: formatAddress(readAddress(SCRATCH[16], buf, at + 4, txid)), port };
  }
  return undefined;
}

/** Copies dst.length address bytes from buf[from], XORed with cookie + transaction id when `txid` is given. */
function readAddress(dst: Uint8Array, buf: Uint8Array, from: number, txid: Uint8Array | undefined): Uint8Array {
  for (let i = 0; i < dst.length; i++) dst[i] = buf[from + i]!;
  if (txid) xorInPlace(dst, txid);
  return dst;
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
