// CIDR parsing and matching for both families, on 16-byte addresses
// (IPv4 as IPv4-mapped IPv6), so one code path serves both.
import { isIP } from 'node:net';
import { addressToBytes16 } from './ip.ts';

export interface Cidr {
  readonly text: string;
  readonly bytes: Uint8Array; // 16 bytes, network order
  readonly bits: number; // prefix length in the 128-bit space
}

/** 16-byte network-order form of an address; IPv4 becomes ::ffff:a.b.c.d. Throws on anything but an IP address. */
export function addressBytes(address: string): Uint8Array {
  const b = isIP(address) === 0 ? undefined : addressToBytes16(address);
  if (!b) throw new Error(`not an IP address: ${address}`);
  return b;
}

export function parseCidr(text: string): Cidr {
  const [addr, len, extra] = text.split('/');
  if (extra !== undefined || !addr) throw new Error(`not a CIDR: ${text}`);
  const family = isIP(addr);
  if (family === 0) throw new Error(`not an IP address: ${addr}`);
  const max = family === 4 ? 32 : 128;
  const prefix = len === undefined ? max : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (len !== undefined && !/^\d+$/.test(len))) {
    throw new Error(`prefix length must be 0-${max}: ${text}`);
  }
  return { text, bytes: addressBytes(addr), bits: family === 4 ? prefix + 96 : prefix };
}

export function cidrContains(c: Cidr, address: Uint8Array): boolean {
  let bits = c.bits;
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((c.bytes[i]! & mask) !== (address[i]! & mask)) return false;
  }
  return true;
}
