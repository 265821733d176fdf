// Address bytes <-> text, and the XOR transform of RFC 8489 §14.2. Text is
// canonical (RFC 5952) so addresses from the codec compare equal to the ones
// node:dgram reports and can be used as Map keys.
import { isIP } from 'node:net';
import { FAMILY_CODE, MAGIC_COOKIE } from './constants.ts';
import type { Family, StunAddress } from './types.ts';
import { copyBytes } from './bytes.ts';

function formatV4(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** Canonical text of a 4- or 16-byte address (RFC 5952 for IPv6; ::ffff:a.b.c.d for IPv4-mapped). */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return formatV4(bytes, 0);
  if (bytes.length !== 16) return '';
  let mapped = bytes[10] === 0xff && bytes[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (bytes[i] !== 0) mapped = false;
  if (mapped) return `::ffff:${formatV4(bytes, 12)}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // Longest run of zero groups (length >= 2, first one on a tie) becomes "::".
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

// Hand-rolled dotted-quad parser: this runs for every Data indication and
// XOR-PEER-ADDRESS we encode, so it avoids split/regex allocations.
function parseV4(text: string): Uint8Array | undefined {
  const out = new Uint8Array(4);
  let part = 0, value = 0, digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (digits === 0 || part > 3) return undefined;
      out[part++] = value;
      value = 0; digits = 0;
    } else if (c >= 0x30 && c <= 0x39 && digits < 3) {
      value = value * 10 + (c - 0x30);
      if (value > 255) return undefined;
      digits++;
    } else {
      return undefined;
    }
  }
  return part === 4 ? out : undefined;
}

/** 4 bytes for an IPv4 text, 16 for IPv6 (zone dropped); undefined when not an address. Never throws. */
export function addressToBytes(text: string): Uint8Array | undefined {
  if (text.indexOf(':') < 0) return parseV4(text);
  if (isIP(text) !== 6) return undefined;
  let a = text.split('%')[0]!;
  const out = new Uint8Array(16);
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  let groupsWanted = 8;
  if (tail) {
    const v4 = parseV4(tail[1]!);
    if (!v4) return undefined;
    out.set(v4, 12);
    a = a.slice(0, -tail[1]!.length);
    if (a.endsWith(':') && !a.endsWith('::')) a = a.slice(0, -1);
    groupsWanted = 6;
  }
  const dbl = a.indexOf('::');
  const head = (dbl < 0 ? a : a.slice(0, dbl)).split(':').filter((g) => g !== '');
  const rest = dbl < 0 ? [] : a.slice(dbl + 2).split(':').filter((g) => g !== '');
  const fill = groupsWanted - head.length - rest.length;
  if (fill < 0 || (dbl < 0 && fill !== 0)) return undefined;
  const groups = [...head, ...new Array<string>(fill).fill('0'), ...rest];
  for (let i = 0; i < groups.length; i++) {
    const v = parseInt(groups[i]!, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  return out;
}

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
    for (let i = 0; i < 10; i++) if (b[i] !== 0) throw new Error('IPv6 address given with family 4');
    if (b[10] !== 0xff || b[11] !== 0xff) throw new Error('IPv6 address given with family 4');
    return b.subarray(12);
  }
  if (b.length === 16) return b;
  const m = new Uint8Array(16);
  m[10] = 0xff; m[11] = 0xff; m.set(b, 12);
  return m;
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
