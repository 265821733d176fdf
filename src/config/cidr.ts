// CIDR parsing and matching for both families, on 16-byte addresses
// (IPv4 as IPv4-mapped IPv6), so one code path serves both.
import { isIP } from 'node:net';

export interface Cidr {
  readonly text: string;
  readonly bytes: Uint8Array; // 16 bytes, network order
  readonly bits: number; // prefix length in the 128-bit space
}

/** 16-byte network-order form of an address; IPv4 becomes ::ffff:a.b.c.d. */
export function addressBytes(address: string): Uint8Array {
  const out = new Uint8Array(16);
  const family = isIP(address);
  if (family === 4) {
    out[10] = 0xff;
    out[11] = 0xff;
    address.split('.').forEach((o, i) => (out[12 + i] = Number(o)));
    return out;
  }
  if (family !== 6) throw new Error(`not an IP address: ${address}`);
  let a = address.split('%')[0]!;
  // embedded IPv4 tail (::ffff:1.2.3.4)
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const b = addressBytes(v4[1]!);
    a = a.slice(0, -v4[1]!.length) + `${((b[12]! << 8) | b[13]!).toString(16)}:${((b[14]! << 8) | b[15]!).toString(16)}`;
  }
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
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
