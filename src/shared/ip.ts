// IP address text <-> network-order bytes, written once for every part that
// needs it: the STUN codec (XOR-PEER-ADDRESS), the peer policy, configured
// CIDRs and the kernel map ABI (16-byte address fields, IPv4 as IPv4-mapped
// IPv6). Text out is canonical (RFC 5952), so an address compares equal
// whichever side it came from. Nothing here throws: bad text is undefined.
import { isIP } from 'node:net';

export function formatV4(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** True for the 16-byte IPv4-mapped form ::ffff:a.b.c.d. */
export function isV4Mapped(b: Uint8Array): boolean {
  if (b.length !== 16 || b[10] !== 0xff || b[11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return true;
}

/** Canonical text of a 4- or 16-byte address (RFC 5952 for IPv6; ::ffff:a.b.c.d for IPv4-mapped); '' for other lengths. */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return formatV4(bytes, 0);
  if (bytes.length !== 16) return '';
  if (isV4Mapped(bytes)) return `::ffff:${formatV4(bytes, 12)}`;
  // Hand-rolled (no arrays, map or join): the codec formats every
  // XOR-PEER-ADDRESS it decodes, up to 2,730 in one datagram, before the
  // request is authenticated.
  // Longest run of zero groups (length >= 2, first one on a tie) becomes "::".
  let bestAt = -1, bestLen = 1;
  for (let i = 0, runAt = -1; i <= 8; i++) {
    if (i < 8 && bytes[2 * i] === 0 && bytes[2 * i + 1] === 0) {
      if (runAt < 0) runAt = i;
      continue;
    }
    if (runAt >= 0 && i - runAt > bestLen) { bestAt = runAt; bestLen = i - runAt; }
    runAt = -1;
  }
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestAt) { s += '::'; i += bestLen - 1; continue; }
    if (s !== '' && i !== bestAt + bestLen) s += ':';
    s += ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16);
  }
  return s;
}

// Hand-rolled dotted-quad parser: the codec runs it for every Data indication
// and XOR-PEER-ADDRESS it encodes, so it avoids split/regex allocations.
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

/** 4 bytes for an IPv4 text, 16 for IPv6 (zone dropped); undefined when not an address. */
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

/** The 16-byte form of 4 or 16 address bytes (IPv4 becomes ::ffff:a.b.c.d); undefined for other lengths. */
export function toBytes16(b: Uint8Array): Uint8Array | undefined {
  if (b.length === 16) return b;
  if (b.length !== 4) return undefined;
  const m = new Uint8Array(16);
  m[10] = 0xff; m[11] = 0xff;
  m.set(b, 12);
  return m;
}

/** 16-byte network-order form of an address text (IPv4 as ::ffff:a.b.c.d); undefined when not an address. */
export function addressToBytes16(text: string): Uint8Array | undefined {
  const b = addressToBytes(text);
  return b && toBytes16(b);
}
