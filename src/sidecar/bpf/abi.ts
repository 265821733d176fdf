// TypeScript mirror of bpf/turn_router_shared.h: struct layouts, enums and
// encoders/decoders for every map key and value. test/bpf/abi.test.ts
// compares STRUCTS and ENUMS with the BTF of the compiled object, so a change
// to the header that is not made here fails the suite.
//
// Byte order follows the header: addresses and ports in network order
// (big-endian), counts and flags in host order (little-endian here; BPF
// targets share the host's order).
//
// Every address goes with its family (the header's enum tp_family), taken
// from its text: dotted quad = IPv4, anything with a colon = IPv6, so
// ::ffff:a.b.c.d written here is an IPv6 address and reads back as one,
// never as the IPv4 a.b.c.d it looks like in the 16-byte form.
import { isIP } from 'node:net';
import { addressBytes } from '../../shared/cidr.ts';
import type { Family } from '../../shared/endpoint.ts';
import { formatAddress, formatV4, isV4Mapped } from '../../shared/ip.ts';

export interface FieldLayout {
  readonly offset: number;
  readonly size: number;
}
export interface StructLayout {
  readonly size: number;
  readonly fields: Readonly<Record<string, FieldLayout>>;
}

export const STRUCTS = {
  tp_config: {
    size: 36,
    fields: {
      flags: { offset: 0, size: 4 },
      mtu: { offset: 4, size: 2 },
      listen_port: { offset: 6, size: 2 },
      port_min: { offset: 8, size: 2 },
      port_max: { offset: 10, size: 2 },
      diag_per_sec: { offset: 12, size: 4 },
      relay_v4: { offset: 16, size: 4 },
      relay_v6: { offset: 20, size: 16 },
    },
  },
  // The four binding structs: 16-byte address, port, port, family, 3 bytes of zero padding.
  tp_chan_key: {
    size: 24,
    fields: {
      client_addr: { offset: 0, size: 16 }, client_port: { offset: 16, size: 2 }, channel: { offset: 18, size: 2 },
      client_family: { offset: 20, size: 1 }, pad: { offset: 21, size: 3 },
    },
  },
  // ...and the partner's client (channel -> channel) after it, in the same shape.
  tp_chan_value: {
    size: 48,
    fields: {
      peer_addr: { offset: 0, size: 16 }, peer_port: { offset: 16, size: 2 }, alloc_port: { offset: 18, size: 2 },
      peer_family: { offset: 20, size: 1 }, pad: { offset: 21, size: 3 },
      partner_addr: { offset: 24, size: 16 }, partner_port: { offset: 40, size: 2 }, partner_channel: { offset: 42, size: 2 },
      partner_family: { offset: 44, size: 1 }, pad2: { offset: 45, size: 3 },
    },
  },
  tp_peer_key: {
    size: 24,
    fields: {
      peer_addr: { offset: 0, size: 16 }, peer_port: { offset: 16, size: 2 }, alloc_port: { offset: 18, size: 2 },
      peer_family: { offset: 20, size: 1 }, pad: { offset: 21, size: 3 },
    },
  },
  tp_peer_value: {
    size: 24,
    fields: {
      client_addr: { offset: 0, size: 16 }, client_port: { offset: 16, size: 2 }, channel: { offset: 18, size: 2 },
      client_family: { offset: 20, size: 1 }, pad: { offset: 21, size: 3 },
    },
  },
  // One binding, both directions: the channel key, then the channel value (whose first 24 bytes are the peer key).
  tp_binding: {
    size: 72,
    fields: { chan: { offset: 0, size: 24 }, peer: { offset: 24, size: 48 } },
  },
  // A directory bucket: TP_BUCKET_SLOTS slots of (tag << 24) | (index + 1), 0 when empty.
  tp_bucket: {
    size: 32,
    fields: { slot: { offset: 0, size: 32 } },
  },
  tp_bind_meta: {
    size: 24,
    fields: { seed: { offset: 0, size: 16 }, bucket_mask: { offset: 16, size: 4 }, version: { offset: 20, size: 4 } },
  },
  tp_route_key: {
    size: 24,
    fields: { prefixlen: { offset: 0, size: 4 }, family: { offset: 4, size: 1 }, pad: { offset: 5, size: 3 }, addr: { offset: 8, size: 16 } },
  },
  tp_route_value: {
    size: 24,
    fields: {
      gateway: { offset: 0, size: 16 }, ifindex: { offset: 16, size: 4 }, gateway_family: { offset: 20, size: 1 },
      kind: { offset: 21, size: 1 }, mtu: { offset: 22, size: 2 },
    },
  },
  tp_neigh_key: {
    size: 24,
    fields: { addr: { offset: 0, size: 16 }, ifindex: { offset: 16, size: 4 }, family: { offset: 20, size: 1 }, pad: { offset: 21, size: 3 } },
  },
  tp_neigh_value: {
    size: 16,
    fields: { mac: { offset: 0, size: 6 }, pad: { offset: 6, size: 2 }, own_mac: { offset: 8, size: 6 }, pad2: { offset: 14, size: 2 } },
  },
  tp_path_stats: {
    size: 16,
    fields: { packets: { offset: 0, size: 8 }, bytes: { offset: 8, size: 8 } },
  },
  tp_path_row: {
    size: 256,
    fields: { path: { offset: 0, size: 192 }, pad: { offset: 192, size: 64 } },
  },
  // count[TP_REASON_MAX] (24 reasons x 8 bytes), zero padding to 256 bytes.
  tp_reason_row: {
    size: 256,
    fields: { count: { offset: 0, size: 192 }, pad: { offset: 192, size: 64 } },
  },
  tp_diag_event: {
    size: 24,
    fields: {
      kind: { offset: 0, size: 4 },
      reason: { offset: 4, size: 4 },
      ret: { offset: 8, size: 4 },
      path: { offset: 12, size: 4 },
      timestamp_ns: { offset: 16, size: 8 },
    },
  },
  tp_diag_budget: {
    size: 16,
    fields: { window_start_ns: { offset: 0, size: 8 }, sent: { offset: 8, size: 4 }, suppressed: { offset: 12, size: 4 } },
  },
} as const satisfies Record<string, StructLayout>;

export const TP_CFG_HAVE_V4 = 1 << 0;
export const TP_CFG_HAVE_V6 = 1 << 1;

/** Binding tables (the header's "bindings" section). */
export const TP_BUCKET_SLOTS = 8;
export const TP_SLOT_TAG_SHIFT = 24;
export const TP_SLOT_INDEX_MASK = (1 << TP_SLOT_TAG_SHIFT) - 1;
export const TP_BIND_VERSION = 1;
/** Where tp_binding holds the peer direction's key (and the channel direction's value). */
export const PEER_KEY_AT = STRUCTS.tp_binding.fields.peer.offset;

/** enum tp_family: the IP version number. */
export const TP_FAMILY_V4 = 4;
export const TP_FAMILY_V6 = 6;

/** enum tp_route_kind. */
export const TP_ROUTE_UNICAST = 1;
export const TP_ROUTE_STACK = 2;

import { DIAG_KIND_NAMES, KERNEL_REASONS, PATH_NAMES, REASON_NAMES, TP_DIAG_DROP, TP_DIAG_MISCONFIG } from '../../shared/reasons.ts';
export { PATH_NAMES, REASON_NAMES, DIAG_KIND_NAMES, TP_DIAG_DROP, TP_DIAG_MISCONFIG, type PathName, type ReasonName } from '../../shared/reasons.ts';
export const TP_PATH_MAX = PATH_NAMES.length;
export const TP_REASON_MAX = REASON_NAMES.length;
/** Bit (1 << reason) set for every reason whose verdict is drop (the header's enum tp_reason_verdict). */
export const TP_DROP_REASONS_MASK = KERNEL_REASONS.reduce((mask, r, i) => (r.verdict === 'drop' ? mask | (1 << i) : mask), 0);

/** C enums as the header spells them, for the BTF comparison. */
export const ENUMS: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  tp_path: {
    ...Object.fromEntries(PATH_NAMES.map((n, i) => [`TP_PATH_${n.toUpperCase()}`, i])),
    TP_PATH_MAX,
  },
  tp_reason: {
    ...Object.fromEntries(REASON_NAMES.map((n, i) => [`TP_${n.toUpperCase()}`, i])),
    TP_REASON_MAX,
  },
  tp_reason_verdict: { TP_DROP_REASONS_MASK },
  tp_diag_kind: { TP_DIAG_DROP, TP_DIAG_MISCONFIG },
  tp_family: { TP_FAMILY_V4, TP_FAMILY_V6 },
  tp_route_kind: { TP_ROUTE_UNICAST, TP_ROUTE_STACK },
};

export const XDP_ACTION_NAMES = ['XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT'] as const;
export const XDP_ABORTED = 0;
export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const XDP_TX = 3;
export const XDP_REDIRECT = 4;

// ---- transport addresses --------------------------------------------------

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

function checkPort(port: number, what: string): number {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`${what} must be 0-65535, got ${port}`);
  return port;
}

/** The 16-byte form and the family of an address text (the family is the text's, see the file comment). */
function checkAddress(address: string, what: string): { bytes: Uint8Array; family: Family } {
  const v = isIP(address);
  if (v === 0) throw new RangeError(`${what} is not an IP address: ${address}`);
  return { bytes: addressBytes(address), family: v === 4 ? 4 : 6 };
}

/** Text of a 16-byte address field read with its family field: IPv4 as a dotted quad, IPv6 always as IPv6 (RFC 5952). */
export function addressText(b: Uint8Array, family: number): string {
  return family === TP_FAMILY_V4 ? formatV4(b, 12) : formatAddress(b);
}

/** Writes address (16 bytes at 0) and its family (the byte at familyAt). */
function putAddress(out: Uint8Array, address: string, familyAt: number, what: string): void {
  const a = checkAddress(address, what);
  out.set(a.bytes, 0);
  out[familyAt] = a.family;
}

// ---- encoders / decoders (one per struct) ---------------------------------

export interface TpConfig {
  readonly flags: number;
  readonly mtu: number;
  readonly listenPort: number;
  readonly portMin: number;
  readonly portMax: number;
  readonly diagPerSec: number;
  readonly relayV4?: string | undefined;
  readonly relayV6?: string | undefined;
}

export function encodeConfig(c: Omit<TpConfig, 'flags'> & { flags?: number }): Uint8Array {
  const out = new Uint8Array(STRUCTS.tp_config.size);
  const v = new DataView(out.buffer);
  let flags = c.flags ?? 0;
  if (c.relayV4 !== undefined) {
    if (isIP(c.relayV4) !== 4) throw new RangeError(`relayV4 is not an IPv4 address: ${c.relayV4}`);
    out.set(addressBytes(c.relayV4).subarray(12), 16);
    flags |= TP_CFG_HAVE_V4;
  }
  if (c.relayV6 !== undefined) {
    if (isIP(c.relayV6) !== 6) throw new RangeError(`relayV6 is not an IPv6 address: ${c.relayV6}`);
    const v6 = addressBytes(c.relayV6);
    // The program drops IPv6 frames from ::ffff:0:0/96 and cannot send from there either.
    if (isV4Mapped(v6)) throw new RangeError(`relayV6 is an IPv4-mapped address: ${c.relayV6}`);
    out.set(v6, 20);
    flags |= TP_CFG_HAVE_V6;
  }
  if (!Number.isInteger(c.mtu) || c.mtu < 68 || c.mtu > 0xffff) throw new RangeError(`mtu must be 68-65535, got ${c.mtu}`);
  v.setUint32(0, flags, true);
  v.setUint16(4, c.mtu, true);
  v.setUint16(6, checkPort(c.listenPort, 'listenPort'), false);
  v.setUint16(8, checkPort(c.portMin, 'portMin'), false);
  v.setUint16(10, checkPort(c.portMax, 'portMax'), false);
  v.setUint32(12, c.diagPerSec >>> 0, true);
  return out;
}

export function decodeConfig(b: Uint8Array): TpConfig {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const flags = v.getUint32(0, true);
  return {
    flags,
    mtu: v.getUint16(4, true),
    listenPort: v.getUint16(6, false),
    portMin: v.getUint16(8, false),
    portMax: v.getUint16(10, false),
    diagPerSec: v.getUint32(12, true),
    relayV4: flags & TP_CFG_HAVE_V4 ? formatV4(b, 16) : undefined,
    relayV6: flags & TP_CFG_HAVE_V6 ? addressText(b.subarray(20, 36), TP_FAMILY_V6) : undefined,
  };
}

/** The four binding structs share one shape: 16-byte address, port, port, family, zero padding. */
const BINDING_STRUCT_SIZE = STRUCTS.tp_chan_key.size;
const BINDING_FAMILY_AT = STRUCTS.tp_chan_key.fields.client_family.offset;

function encodeAddrPortPort(address: string, port: number, second: number, what: [string, string, string]): Uint8Array {
  const out = new Uint8Array(BINDING_STRUCT_SIZE);
  putAddress(out, address, BINDING_FAMILY_AT, what[0]);
  const v = new DataView(out.buffer);
  v.setUint16(16, checkPort(port, what[1]), false);
  v.setUint16(18, checkPort(second, what[2]), false);
  return out;
}

function decodeAddrPortPort(b: Uint8Array): [string, number, number] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return [addressText(b.subarray(0, 16), b[BINDING_FAMILY_AT]!), v.getUint16(16, false), v.getUint16(18, false)];
}

export interface ChanKey { readonly client: Endpoint; readonly channel: number }
export interface ChanValue { readonly peer: Endpoint; readonly allocationPort: number }
export interface PeerKey { readonly peer: Endpoint; readonly allocationPort: number }
export interface PeerValue { readonly client: Endpoint; readonly channel: number }

export function checkChannel(channel: number): number {
  // The kernel accepts 0x4000-0x7FFF (turn_router_shared.h): RFC 8656 binds up
  // to 0x4FFF, RFC 5766 clients (turnutils_uclient) up to 0x7FFF, and the relay
  // serves both, so the map must take both.
  if (!Number.isInteger(channel) || channel < 0x4000 || channel > 0x7fff) {
    throw new RangeError(`channel must be 0x4000-0x7FFF, got ${channel}`);
  }
  return channel;
}

export const encodeChanKey = (k: ChanKey) =>
  encodeAddrPortPort(k.client.address, k.client.port, checkChannel(k.channel), ['client address', 'client port', 'channel']);
/** The channel's value; with partner, the client of the other allocation's channel to this one (channel -> channel). */
export function encodeChanValue(v: ChanValue, partner?: PeerValue): Uint8Array {
  const out = new Uint8Array(STRUCTS.tp_chan_value.size);
  out.set(encodeAddrPortPort(v.peer.address, v.peer.port, v.allocationPort, ['peer address', 'peer port', 'allocationPort']));
  if (partner) out.set(encodePeerValue(partner), PARTNER_AT);
  return out;
}
export const encodePeerKey = (k: PeerKey) =>
  encodeAddrPortPort(k.peer.address, k.peer.port, k.allocationPort, ['peer address', 'peer port', 'allocationPort']);
export const encodePeerValue = (v: PeerValue) =>
  encodeAddrPortPort(v.client.address, v.client.port, checkChannel(v.channel), ['client address', 'client port', 'channel']);

export function decodeChanKey(b: Uint8Array): ChanKey {
  const [address, port, channel] = decodeAddrPortPort(b);
  return { client: { address, port }, channel };
}
export function decodeChanValue(b: Uint8Array): ChanValue {
  const [address, port, allocationPort] = decodeAddrPortPort(b);
  return { peer: { address, port }, allocationPort };
}

/** Where a channel's value holds its partner, and the partner itself (undefined: none). */
export const PARTNER_AT = STRUCTS.tp_chan_value.fields.partner_addr.offset;
export function decodePartner(b: Uint8Array): PeerValue | undefined {
  const partner = b.subarray(PARTNER_AT, PARTNER_AT + BINDING_STRUCT_SIZE);
  return partner.length === BINDING_STRUCT_SIZE && (partner[18]! | partner[19]!) !== 0 ? decodePeerValue(partner) : undefined;
}
export function decodePeerKey(b: Uint8Array): PeerKey {
  const [address, port, allocationPort] = decodeAddrPortPort(b);
  return { peer: { address, port }, allocationPort };
}
export function decodePeerValue(b: Uint8Array): PeerValue {
  const [address, port, channel] = decodeAddrPortPort(b);
  return { client: { address, port }, channel };
}

// ---- next hops: the kernel's routes and neighbours, mirrored ---------------

/** A route of the kernel's main table as tp_routes holds it. */
export interface Route {
  /** The network address (text); its family is the route's. */
  readonly prefix: string;
  /** 0-32 for IPv4, 0-128 for IPv6. */
  readonly prefixLength: number;
  /** 'unicast': out of ifindex to gateway (on-link without one); 'stack': the stack decides (blackhole, multicast, ...). */
  readonly kind: 'unicast' | 'stack';
  readonly ifindex: number;
  /** The next hop's address (either family); undefined when the destination is on-link. */
  readonly gateway?: string | undefined;
  /** The route's MTU, 0 when it has none. */
  readonly mtu: number;
}

const ROUTE_KINDS = { unicast: TP_ROUTE_UNICAST, stack: TP_ROUTE_STACK } as const;
/** The family and pad bytes are matched in full before the address (tp_route_key). */
const ROUTE_KEY_HEAD_BITS = 32;

/** The key of a route: its prefix, zero beyond prefixLength, and the bits that must match. */
export function encodeRouteKey(r: Pick<Route, 'prefix' | 'prefixLength'>): Uint8Array {
  const out = new Uint8Array(STRUCTS.tp_route_key.size);
  const a = checkAddress(r.prefix, 'route prefix');
  const max = a.family === 4 ? 32 : 128;
  if (!Number.isInteger(r.prefixLength) || r.prefixLength < 0 || r.prefixLength > max) throw new RangeError(`prefix length must be 0-${max}, got ${r.prefixLength}`);
  const bits = (a.family === 4 ? 96 : 0) + r.prefixLength;
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, bits - 8 * i));
    out[8 + i] = a.bytes[i]! & ((0xff00 >> keep) & 0xff);
  }
  new DataView(out.buffer).setUint32(0, ROUTE_KEY_HEAD_BITS + bits, true);
  out[4] = a.family;
  return out;
}

export function encodeRouteValue(r: Omit<Route, 'prefix' | 'prefixLength'>): Uint8Array {
  const out = new Uint8Array(STRUCTS.tp_route_value.size);
  const v = new DataView(out.buffer);
  if (r.gateway !== undefined) putAddress(out, r.gateway, STRUCTS.tp_route_value.fields.gateway_family.offset, 'route gateway');
  v.setUint32(16, r.ifindex >>> 0, true);
  out[21] = ROUTE_KINDS[r.kind];
  if (!Number.isInteger(r.mtu) || r.mtu < 0 || r.mtu > 0xffff) throw new RangeError(`route mtu must be 0-65535, got ${r.mtu}`);
  v.setUint16(22, r.mtu, true);
  return out;
}

export function decodeRoute(key: Uint8Array, value: Uint8Array): Route {
  const k = new DataView(key.buffer, key.byteOffset, key.byteLength);
  const v = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const family = key[4]!;
  const bits = k.getUint32(0, true) - ROUTE_KEY_HEAD_BITS;
  const gatewayFamily = value[20]!;
  return {
    prefix: addressText(key.subarray(8, 24), family),
    prefixLength: family === TP_FAMILY_V4 ? bits - 96 : bits,
    kind: value[21] === TP_ROUTE_UNICAST ? 'unicast' : 'stack',
    ifindex: v.getUint32(16, true),
    gateway: gatewayFamily === 0 ? undefined : addressText(value.subarray(0, 16), gatewayFamily),
    mtu: v.getUint16(22, true),
  };
}

/** A next hop (tp_neigh): the kernel's neighbour entry of `address` on `ifindex`, with the interface's own MAC. */
export interface Neighbour {
  readonly address: string;
  readonly ifindex: number;
  /** aa:bb:cc:dd:ee:ff: the neighbour's (destination of outputs). */
  readonly mac: string;
  /** The interface's own (source of outputs). */
  readonly ownMac: string;
}

/** The 6 bytes of aa:bb:cc:dd:ee:ff. */
export function macBytes(mac: string): Uint8Array {
  const bytes = mac.split(':').map((x) => (/^[0-9a-f]{1,2}$/i.test(x) ? Number.parseInt(x, 16) : NaN));
  if (bytes.length !== 6 || bytes.some((x) => Number.isNaN(x))) throw new RangeError(`not a MAC address: ${mac}`);
  return Uint8Array.from(bytes);
}

export const macText = (b: Uint8Array): string => [...b.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

export function encodeNeighKey(k: Pick<Neighbour, 'address' | 'ifindex'>): Uint8Array {
  const out = new Uint8Array(STRUCTS.tp_neigh_key.size);
  putAddress(out, k.address, STRUCTS.tp_neigh_key.fields.family.offset, 'neighbour address');
  new DataView(out.buffer).setUint32(16, k.ifindex >>> 0, true);
  return out;
}

export function encodeNeighValue(v: Pick<Neighbour, 'mac' | 'ownMac'>): Uint8Array {
  const out = new Uint8Array(STRUCTS.tp_neigh_value.size);
  out.set(macBytes(v.mac), STRUCTS.tp_neigh_value.fields.mac.offset);
  out.set(macBytes(v.ownMac), STRUCTS.tp_neigh_value.fields.own_mac.offset);
  return out;
}

export function decodeNeighbour(key: Uint8Array, value: Uint8Array): Neighbour {
  const k = new DataView(key.buffer, key.byteOffset, key.byteLength);
  return {
    address: addressText(key.subarray(0, 16), key[STRUCTS.tp_neigh_key.fields.family.offset]!),
    ifindex: k.getUint32(16, true),
    mac: macText(value.subarray(0, 6)),
    ownMac: macText(value.subarray(8, 14)),
  };
}

export interface PathStats { readonly packets: bigint; readonly bytes: bigint }

export function decodePathStats(b: Uint8Array): PathStats {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { packets: v.getBigUint64(0, true), bytes: v.getBigUint64(8, true) };
}

export interface TpDiagEvent {
  readonly kind: number;
  readonly kindName: string;
  readonly reason: number;
  readonly reasonName: string;
  readonly ret: number;
  readonly path: number;
  readonly pathName: string | undefined;
  readonly timestampNs: bigint;
}

/** Decodes a perf sample; undefined when it is shorter than the struct. */
export function decodeDiagEvent(b: Uint8Array): TpDiagEvent | undefined {
  if (b.byteLength < STRUCTS.tp_diag_event.size) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const kind = v.getUint32(0, true);
  const reason = v.getUint32(4, true);
  const path = v.getUint32(12, true);
  return {
    kind,
    kindName: DIAG_KIND_NAMES[kind] ?? `kind_${kind}`,
    reason,
    reasonName: REASON_NAMES[reason] ?? `reason_${reason}`,
    ret: v.getInt32(8, true),
    path,
    pathName: PATH_NAMES[path],
    timestampNs: v.getBigUint64(16, true),
  };
}

export interface DiagBudget { readonly windowStartNs: bigint; readonly sent: number; readonly suppressed: number }

export function decodeDiagBudget(b: Uint8Array): DiagBudget {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { windowStartNs: v.getBigUint64(0, true), sent: v.getUint32(8, true), suppressed: v.getUint32(12, true) };
}

/** Per-CPU map values are laid out with each CPU's value rounded up to 8 bytes. */
export function perCpuStride(valueSize: number): number {
  return (valueSize + 7) & ~7;
}
