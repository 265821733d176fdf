// Frame builders and an independent decoder/checksum verifier for the XDP
// router's tests. Nothing here shares code with the program: checksums are
// computed from scratch as big-endian 16-bit word sums (RFC 1071), while the
// program works incrementally on little-endian loads.
import { isIP } from 'node:net';
import { addressBytes } from '../../src/shared/cidr.ts';

export interface Endpoint {
  address: string;
  port: number;
}

export interface FrameSpec {
  src: Endpoint;
  dst: Endpoint;
  payload: Uint8Array;
  srcMac?: Uint8Array;
  dstMac?: Uint8Array;
  /** 802.1Q VLAN id: inserts a tag (the router passes these). */
  vlan?: number;
  /** IPv4 options (a multiple of 4 bytes) after the 20-byte header. */
  ipOptions?: Uint8Array;
  /** IPv4 fragment fields; IPv6 gets a fragment extension header. */
  fragment?: { more: boolean; offset: number };
  /** IPv6 extension header (next-header value, e.g. 0 hop-by-hop) before UDP. */
  ipv6Ext?: number;
  /** L4 protocol other than UDP (the payload is then opaque). */
  protocol?: number;
  /** 'valid' (default), 'zero' (IPv4 only: no checksum) or a raw value. */
  udpChecksum?: 'valid' | 'zero' | number;
  ttl?: number;
  tos?: number;
  id?: number;
  df?: boolean;
  /** Ethernet padding after the IP datagram. */
  trailer?: number;
  /** Overrides the IP total length / payload length field. */
  ipLength?: number;
  /** Overrides the IPv4 header checksum. */
  ipChecksum?: number;
}

export const MAC_A = Uint8Array.from([0x02, 0, 0, 0, 0, 0xa1]);
export const MAC_B = Uint8Array.from([0x02, 0, 0, 0, 0, 0xb2]);

export const familyOf = (address: string): 4 | 6 => (isIP(address) === 4 ? 4 : 6);

/** Raw address bytes: 4 for IPv4, 16 for IPv6. */
export function rawAddress(address: string): Uint8Array {
  const b = addressBytes(address);
  return familyOf(address) === 4 ? b.subarray(12) : b;
}

/** RFC 1071 sum of big-endian 16-bit words (odd tail padded with zero), unfolded. */
function wordSum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (b.length & 1) s += b[b.length - 1]! << 8;
  return s;
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

export function internetChecksum(...parts: Uint8Array[]): number {
  let s = 0;
  for (const p of parts) s += wordSum(p);
  return ~fold(s) & 0xffff;
}

function pseudoHeader(src: Uint8Array, dst: Uint8Array, udpLen: number): Uint8Array {
  if (src.length === 4) {
    const p = new Uint8Array(12);
    p.set(src, 0);
    p.set(dst, 4);
    p[9] = 17;
    new DataView(p.buffer).setUint16(10, udpLen);
    return p;
  }
  const p = new Uint8Array(40);
  p.set(src, 0);
  p.set(dst, 16);
  new DataView(p.buffer).setUint32(32, udpLen);
  p[39] = 17;
  return p;
}

/** UDP checksum field value for a datagram (header with any checksum, payload). */
export function udpChecksum(src: Uint8Array, dst: Uint8Array, udp: Uint8Array): number {
  const copy = udp.slice();
  copy[6] = 0;
  copy[7] = 0;
  const c = internetChecksum(pseudoHeader(src, dst, udp.length), copy);
  return c === 0 ? 0xffff : c;
}

/** A ChannelData message: channel, length, data, then pad bytes of padByte. */
export function channelData(channel: number, data: Uint8Array, pad = 0, padByte = 0): Uint8Array {
  const out = new Uint8Array(4 + data.length + pad).fill(padByte);
  const v = new DataView(out.buffer);
  v.setUint16(0, channel);
  v.setUint16(2, data.length);
  out.set(data, 4);
  return out;
}

/** Deterministic payload bytes. */
export function payloadOf(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Builds Ethernet + IPv4/IPv6 + UDP (or `protocol`) around spec.payload. */
export function buildFrame(spec: FrameSpec): Uint8Array {
  const fam = familyOf(spec.dst.address);
  if (familyOf(spec.src.address) !== fam) throw new Error('src and dst families differ');
  const src = rawAddress(spec.src.address);
  const dst = rawAddress(spec.dst.address);
  const proto = spec.protocol ?? 17;

  let l4: Uint8Array;
  if (proto === 17) {
    l4 = new Uint8Array(8 + spec.payload.length);
    const v = new DataView(l4.buffer);
    v.setUint16(0, spec.src.port);
    v.setUint16(2, spec.dst.port);
    v.setUint16(4, l4.length);
    l4.set(spec.payload, 8);
    const c = spec.udpChecksum ?? 'valid';
    v.setUint16(6, c === 'valid' ? udpChecksum(src, dst, l4) : c === 'zero' ? 0 : c);
  } else {
    l4 = spec.payload.slice();
  }

  const eth = new Uint8Array(spec.vlan !== undefined ? 18 : 14);
  eth.set(spec.dstMac ?? MAC_B, 0);
  eth.set(spec.srcMac ?? MAC_A, 6);
  const ev = new DataView(eth.buffer);
  if (spec.vlan !== undefined) {
    ev.setUint16(12, 0x8100);
    ev.setUint16(14, spec.vlan);
  }
  ev.setUint16(eth.length - 2, fam === 4 ? 0x0800 : 0x86dd);

  let ip: Uint8Array;
  if (fam === 4) {
    const opts = spec.ipOptions ?? new Uint8Array(0);
    ip = new Uint8Array(20 + opts.length);
    const v = new DataView(ip.buffer);
    ip[0] = 0x40 | ((20 + opts.length) / 4);
    ip[1] = spec.tos ?? 0;
    v.setUint16(2, spec.ipLength ?? ip.length + l4.length);
    v.setUint16(4, spec.id ?? 0);
    let frag = spec.df === false ? 0 : 0x4000;
    if (spec.fragment) frag = (spec.fragment.more ? 0x2000 : 0) | (spec.fragment.offset & 0x1fff);
    v.setUint16(6, frag);
    ip[8] = spec.ttl ?? 64;
    ip[9] = proto;
    ip.set(src, 12);
    ip.set(dst, 16);
    ip.set(opts, 20);
    v.setUint16(10, spec.ipChecksum ?? internetChecksum(ip));
  } else {
    let ext = new Uint8Array(0);
    let first = proto;
    if (spec.fragment) {
      ext = new Uint8Array(8);
      ext[0] = proto;
      new DataView(ext.buffer).setUint16(2, ((spec.fragment.offset & 0x1fff) << 3) | (spec.fragment.more ? 1 : 0));
      new DataView(ext.buffer).setUint32(4, 0x1234);
      first = 44;
    } else if (spec.ipv6Ext !== undefined) {
      ext = new Uint8Array(8); // hdr ext len 0: 8 bytes, PadN options
      ext[0] = proto;
      ext[2] = 1;
      ext[3] = 4;
      first = spec.ipv6Ext;
    }
    ip = new Uint8Array(40 + ext.length);
    const v = new DataView(ip.buffer);
    v.setUint32(0, (6 << 28) | ((spec.tos ?? 0) << 20));
    v.setUint16(4, spec.ipLength ?? ext.length + l4.length);
    ip[6] = first;
    ip[7] = spec.ttl ?? 64;
    ip.set(src, 8);
    ip.set(dst, 24);
    ip.set(ext, 40);
  }
  return concat(eth, ip, l4, new Uint8Array(spec.trailer ?? 0));
}

export interface DecodedFrame {
  dstMac: Uint8Array;
  srcMac: Uint8Array;
  family: 4 | 6;
  src: Endpoint;
  dst: Endpoint;
  ttl: number;
  /** UDP payload (exactly the UDP length, Ethernet padding excluded). */
  payload: Uint8Array;
  udpChecksumField: number;
  /** IPv4 header checksum verifies (always true for IPv6). */
  ipHeaderOk: boolean;
  /** UDP checksum verifies; IPv4 checksum 0 counts as "none" (udpChecksumField 0). */
  udpOk: boolean;
  /** IP total length and UDP length agree with each other and with the frame. */
  lengthsOk: boolean;
}

function textAddress(b: Uint8Array): string {
  if (b.length === 4) return b.join('.');
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  // RFC 5952: the longest run (>= 2) of zero groups becomes "::"
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
  }
  const h = g.map((x) => x.toString(16));
  if (best < 0) return h.join(':');
  return `${h.slice(0, best).join(':')}::${h.slice(best + bestLen).join(':')}`;
}

/** Canonical text of an address (for comparing with test literals). */
export const canonical = (address: string): string => textAddress(rawAddress(address));

/** Decodes Ethernet + IP + UDP without options/extensions; undefined otherwise. */
export function decodeFrame(f: Uint8Array): DecodedFrame | undefined {
  if (f.length < 14) return undefined;
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const type = v.getUint16(12);
  let family: 4 | 6, src: Uint8Array, dst: Uint8Array, l4: number, ipEnd: number, ttl: number;
  let ipHeaderOk = true;
  if (type === 0x0800) {
    if (f.length < 34 || f[14] !== 0x45 || f[23] !== 17) return undefined;
    family = 4;
    src = f.subarray(26, 30);
    dst = f.subarray(30, 34);
    l4 = 34;
    ipEnd = 14 + v.getUint16(16);
    ttl = f[22]!;
    ipHeaderOk = internetChecksum(f.subarray(14, 34)) === 0;
  } else if (type === 0x86dd) {
    if (f.length < 54 || f[14]! >> 4 !== 6 || f[20] !== 17) return undefined;
    family = 6;
    src = f.subarray(22, 38);
    dst = f.subarray(38, 54);
    l4 = 54;
    ipEnd = 54 + v.getUint16(18);
    ttl = f[21]!;
  } else {
    return undefined;
  }
  if (f.length < l4 + 8) return undefined;
  const udpLen = v.getUint16(l4 + 4);
  const lengthsOk = ipEnd <= f.length && udpLen === ipEnd - l4 && udpLen >= 8;
  const udp = f.subarray(l4, Math.min(l4 + udpLen, f.length));
  const field = v.getUint16(l4 + 6);
  const udpOk =
    lengthsOk && (family === 4 && field === 0 ? true : field !== 0 && internetChecksum(pseudoHeader(src, dst, udpLen), udp) === 0);
  return {
    dstMac: f.subarray(0, 6),
    srcMac: f.subarray(6, 12),
    family,
    src: { address: textAddress(src), port: v.getUint16(l4) },
    dst: { address: textAddress(dst), port: v.getUint16(l4 + 2) },
    ttl,
    payload: f.subarray(l4 + 8, Math.min(l4 + udpLen, f.length)),
    udpChecksumField: field,
    ipHeaderOk,
    udpOk,
    lengthsOk,
  };
}

/** Recomputes the IPv4 header and UDP checksums of a frame in place (fuzz mutations). */
export function fixChecksums(f: Uint8Array): void {
  if (f.length < 14) return;
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const type = v.getUint16(12);
  if (type === 0x0800 && f.length >= 34 && f[14]! >> 4 === 4) {
    const ihl = (f[14]! & 15) * 4;
    if (ihl < 20 || f.length < 14 + ihl) return;
    v.setUint16(24, 0);
    v.setUint16(24, internetChecksum(f.subarray(14, 14 + ihl)));
    if (f[23] !== 17 || f.length < 14 + ihl + 8 || v.getUint16(14 + ihl + 6) === 0) return;
    const udpLen = v.getUint16(14 + ihl + 4);
    if (udpLen < 8 || 14 + ihl + udpLen > f.length) return;
    const udp = f.subarray(14 + ihl, 14 + ihl + udpLen);
    v.setUint16(14 + ihl + 6, udpChecksum(f.subarray(26, 30), f.subarray(30, 34), udp));
  } else if (type === 0x86dd && f.length >= 62 && f[20] === 17) {
    const udpLen = v.getUint16(54 + 4);
    if (udpLen < 8 || 54 + udpLen > f.length) return;
    v.setUint16(54 + 6, udpChecksum(f.subarray(22, 38), f.subarray(38, 54), f.subarray(54, 54 + udpLen)));
  }
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
