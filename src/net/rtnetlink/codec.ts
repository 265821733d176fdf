// rtnetlink messages <-> plain objects, pure functions over bytes: splitting
// a receive buffer into messages, reading attributes, and decoding the few
// message kinds the next-hop mirror follows (routes, neighbours, links,
// addresses, rules), plus the requests it sends (dumps, "resolve this
// neighbour"). Layouts come from layout.ts; host byte order is the
// platform's (little-endian), addresses are network order.
import { formatAddress, formatV4 } from '../../shared/ip.ts';
import type { Family } from '../../shared/endpoint.ts';
import {
  AF_INET,
  AF_INET6,
  FRA,
  IFA,
  IFLA,
  L,
  NDA,
  NLM_F,
  RTA,
  RTAX_MTU,
  RTM,
  align4,
} from './layout.ts';

export interface NlMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  /** What follows the nlmsghdr, up to nlmsg_len. */
  readonly body: Uint8Array;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** The messages in one datagram read from a netlink socket; a truncated tail is left out. */
export function splitMessages(buf: Uint8Array): NlMessage[] {
  const out: NlMessage[] = [];
  const v = view(buf);
  let at = 0;
  while (at + L.nlmsghdr.size <= buf.length) {
    const len = v.getUint32(at + L.nlmsghdr.len, true);
    if (len < L.nlmsghdr.size || at + len > buf.length) break;
    out.push({
      type: v.getUint16(at + L.nlmsghdr.type, true),
      flags: v.getUint16(at + L.nlmsghdr.flags, true),
      seq: v.getUint32(at + L.nlmsghdr.seq, true),
      pid: v.getUint32(at + L.nlmsghdr.pid, true),
      body: buf.subarray(at + L.nlmsghdr.size, at + len),
    });
    at += align4(len);
  }
  return out;
}

/** Attributes from `from` to the end of b, by type (the first of each; the nested flag bit cleared). */
export function attributes(b: Uint8Array, from: number): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  const v = view(b);
  let at = from;
  while (at + L.rtattr.size <= b.length) {
    const len = v.getUint16(at + L.rtattr.len, true);
    if (len < L.rtattr.size || at + len > b.length) break;
    const type = v.getUint16(at + L.rtattr.type, true) & 0x3fff;
    if (!out.has(type)) out.set(type, b.subarray(at + L.rtattr.size, at + len));
    at += align4(len);
  }
  return out;
}

/** The error of an NLMSG_ERROR message: 0 for an ACK, else a negative errno. */
export function errorOf(m: NlMessage): number {
  return m.body.length >= 4 ? view(m.body).getInt32(L.nlmsgerr.error, true) : 0;
}

/** Whether a dump's reply was interrupted by a change (NLM_F_DUMP_INTR): it must be redone. */
export const dumpInterrupted = (m: NlMessage) => (m.flags & NLM_F.DUMP_INTR) !== 0;

// ---- requests -------------------------------------------------------------

/** One message: nlmsghdr, a fixed header (already laid out) and attributes. */
export function encodeMessage(type: number, flags: number, seq: number, header: Uint8Array, attrs: readonly (readonly [number, Uint8Array])[] = []): Uint8Array {
  const attrBytes = attrs.reduce((n, [, v]) => n + align4(L.rtattr.size + v.length), 0);
  const len = L.nlmsghdr.size + align4(header.length) + attrBytes;
  const out = new Uint8Array(len);
  const v = view(out);
  v.setUint32(L.nlmsghdr.len, len, true);
  v.setUint16(L.nlmsghdr.type, type, true);
  v.setUint16(L.nlmsghdr.flags, flags, true);
  v.setUint32(L.nlmsghdr.seq, seq, true);
  out.set(header, L.nlmsghdr.size);
  let at = L.nlmsghdr.size + align4(header.length);
  for (const [t, value] of attrs) {
    v.setUint16(at + L.rtattr.len, L.rtattr.size + value.length, true);
    v.setUint16(at + L.rtattr.type, t, true);
    out.set(value, at + L.rtattr.size);
    at += align4(L.rtattr.size + value.length);
  }
  return out;
}

/** The fixed header each kind of message starts with, and where its family byte sits. */
const HEADERS: Record<number, { size: number; family: number }> = {
  [RTM.GETROUTE]: L.rtmsg,
  [RTM.GETRULE]: L.fibRuleHdr,
  [RTM.GETNEIGH]: L.ndmsg,
  [RTM.GETLINK]: L.ifinfomsg,
  [RTM.GETADDR]: L.ifaddrmsg,
};

/** A dump of every object of a kind (RTM.GET*), for one family or all (AF_UNSPEC). */
export function dumpRequest(type: number, family: number, seq: number): Uint8Array {
  const h = HEADERS[type];
  if (!h) throw new RangeError(`no dump request for message type ${type}`);
  const header = new Uint8Array(h.size);
  header[h.family] = family;
  return encodeMessage(type, NLM_F.REQUEST | NLM_F.DUMP, seq, header);
}

/**
 * Asks the kernel to resolve (or re-confirm) a neighbour, as its own
 * traffic would: RTM_NEWNEIGH with NTF_USE creates the entry if needed and
 * runs neigh_event_send, which sends an ARP request / Neighbor Solicitation
 * for an unresolved entry and moves a stale one to DELAY, then PROBE
 * (unicast probes) unless it is confirmed meanwhile. The entry's state and
 * address are left to the kernel; ACKed so a refusal is seen.
 */
export function neighbourUseRequest(family: Family, address: Uint8Array, ifindex: number, seq: number): Uint8Array {
  const header = new Uint8Array(L.ndmsg.size);
  const v = view(header);
  header[L.ndmsg.family] = family === 4 ? AF_INET : AF_INET6;
  v.setInt32(L.ndmsg.ifindex, ifindex, true);
  header[L.ndmsg.flags] = 0x1; // NTF_USE
  return encodeMessage(RTM.NEWNEIGH, NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE, seq, header, [[NDA.DST, address]]);
}

// ---- decoded objects ----------------------------------------------------------

const familyOfAf = (af: number): Family | undefined => (af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined);

/** Text of an address attribute of a family (4 or 16 bytes); undefined for another length. */
function addressOf(b: Uint8Array | undefined, family: Family): string | undefined {
  if (!b) return undefined;
  if (family === 4 && b.length === 4) return formatV4(b, 0);
  if (family === 6 && b.length === 16) return formatAddress(b);
  return undefined;
}

const u32 = (b: Uint8Array | undefined) => (b && b.length >= 4 ? view(b).getUint32(0, true) : undefined);

export interface NextHopOf {
  readonly ifindex: number;
  readonly gateway?: { readonly family: Family; readonly address: string } | undefined;
  /** RTNH_F_* of one path of a multipath route (0 for a plain route). */
  readonly flags: number;
}

export interface KernelRoute {
  readonly family: Family;
  readonly dst: string;
  readonly dstLen: number;
  readonly table: number;
  /** RTN_* */
  readonly type: number;
  readonly tos: number;
  /** rtm_flags (RTM_F_CLONED, ...). */
  readonly flags: number;
  /** The metric (RTA_PRIORITY); 0 when absent. */
  readonly priority: number;
  /** The route's MTU metric, 0 when it has none. */
  readonly mtu: number;
  /** Its paths: one for a plain route, several for multipath, none for blackhole and the like. */
  readonly nextHops: readonly NextHopOf[];
  /** Set when the route names a nexthop object instead of its paths (RTA_NH_ID). */
  readonly nhid?: number | undefined;
}

/** A gateway from RTA_GATEWAY (the route's family) or RTA_VIA (struct rtvia: family, then address). */
function gatewayOf(attrs: Map<number, Uint8Array>, family: Family): NextHopOf['gateway'] {
  const gw = addressOf(attrs.get(RTA.GATEWAY), family);
  if (gw) return { family, address: gw };
  const via = attrs.get(RTA.VIA);
  if (via && via.length >= 2) {
    const f = familyOfAf(view(via).getUint16(0, true));
    const address = f && addressOf(via.subarray(2), f);
    if (f && address) return { family: f, address };
  }
  return undefined;
}

function mtuOf(metrics: Uint8Array | undefined): number {
  return (metrics && u32(attributes(metrics, 0).get(RTAX_MTU))) ?? 0;
}

/** A route message (RTM_NEWROUTE / RTM_DELROUTE); undefined for a family other than IPv4/IPv6. */
export function decodeRoute(m: NlMessage): KernelRoute | undefined {
  const b = m.body;
  if (b.length < L.rtmsg.size) return undefined;
  const family = familyOfAf(b[L.rtmsg.family]!);
  if (!family) return undefined;
  const attrs = attributes(b, align4(L.rtmsg.size));
  const dstLen = b[L.rtmsg.dstLen]!;
  const dst = addressOf(attrs.get(RTA.DST), family) ?? (family === 4 ? '0.0.0.0' : '::');
  const nextHops: NextHopOf[] = [];
  const multipath = attrs.get(RTA.MULTIPATH);
  if (multipath) {
    const v = view(multipath);
    for (let at = 0; at + L.rtnexthop.size <= multipath.length; ) {
      const len = v.getUint16(at + L.rtnexthop.len, true);
      if (len < L.rtnexthop.size || at + len > multipath.length) break;
      const sub = attributes(multipath.subarray(at, at + len), L.rtnexthop.size);
      nextHops.push({ ifindex: v.getInt32(at + L.rtnexthop.ifindex, true), gateway: gatewayOf(sub, family), flags: multipath[at + L.rtnexthop.flags]! });
      at += align4(len);
    }
  } else {
    const oif = u32(attrs.get(RTA.OIF));
    if (oif !== undefined) nextHops.push({ ifindex: oif, gateway: gatewayOf(attrs, family), flags: 0 });
  }
  const v = view(b);
  return {
    family,
    dst,
    dstLen,
    // RTA_TABLE carries table ids above 255; rtm_table is the low byte.
    table: u32(attrs.get(RTA.TABLE)) ?? b[L.rtmsg.table]!,
    type: b[L.rtmsg.type]!,
    tos: b[L.rtmsg.tos]!,
    flags: v.getUint32(L.rtmsg.flags, true),
    priority: u32(attrs.get(RTA.PRIORITY)) ?? 0,
    mtu: mtuOf(attrs.get(RTA.METRICS)),
    nextHops,
    nhid: u32(attrs.get(RTA.NH_ID)),
  };
}

export interface KernelNeighbour {
  readonly family: Family;
  readonly address: string;
  readonly ifindex: number;
  /** NUD_* */
  readonly state: number;
  /** NTF_* */
  readonly flags: number;
  /** The link-layer address, when the entry has one. */
  readonly lladdr?: Uint8Array | undefined;
}

export function decodeNeighbour(m: NlMessage): KernelNeighbour | undefined {
  const b = m.body;
  if (b.length < L.ndmsg.size) return undefined;
  const family = familyOfAf(b[L.ndmsg.family]!);
  if (!family) return undefined;
  const attrs = attributes(b, align4(L.ndmsg.size));
  const address = addressOf(attrs.get(NDA.DST), family);
  if (!address) return undefined;
  const v = view(b);
  const lladdr = attrs.get(NDA.LLADDR);
  return {
    family,
    address,
    ifindex: v.getInt32(L.ndmsg.ifindex, true),
    state: v.getUint16(L.ndmsg.state, true),
    flags: b[L.ndmsg.flags]!,
    lladdr: lladdr ? Uint8Array.from(lladdr) : undefined,
  };
}

export interface KernelLink {
  readonly index: number;
  readonly name: string;
  /** ARPHRD_* */
  readonly type: number;
  /** IFF_* */
  readonly flags: number;
  readonly address?: Uint8Array | undefined;
  readonly mtu: number;
}

export function decodeLink(m: NlMessage): KernelLink | undefined {
  const b = m.body;
  if (b.length < L.ifinfomsg.size) return undefined;
  const attrs = attributes(b, align4(L.ifinfomsg.size));
  const v = view(b);
  const name = attrs.get(IFLA.IFNAME);
  const address = attrs.get(IFLA.ADDRESS);
  return {
    index: v.getInt32(L.ifinfomsg.index, true),
    name: name ? Buffer.from(name).toString('latin1').replace(/\0.*$/s, '') : '',
    type: v.getUint16(L.ifinfomsg.type, true),
    flags: v.getUint32(L.ifinfomsg.flags, true),
    address: address ? Uint8Array.from(address) : undefined,
    mtu: u32(attrs.get(IFLA.MTU)) ?? 0,
  };
}

export interface KernelAddress {
  readonly family: Family;
  readonly index: number;
  readonly address: string;
  readonly prefixLength: number;
}

export function decodeAddress(m: NlMessage): KernelAddress | undefined {
  const b = m.body;
  if (b.length < L.ifaddrmsg.size) return undefined;
  const family = familyOfAf(b[L.ifaddrmsg.family]!);
  if (!family) return undefined;
  const attrs = attributes(b, align4(L.ifaddrmsg.size));
  // IFA_LOCAL is the address itself on point-to-point links, where IFA_ADDRESS is the peer's.
  const address = addressOf(attrs.get(IFA.LOCAL) ?? attrs.get(IFA.ADDRESS), family);
  if (!address) return undefined;
  return { family, index: view(b).getUint32(L.ifaddrmsg.index, true), address, prefixLength: b[L.ifaddrmsg.prefixlen]! };
}

export interface KernelRule {
  readonly family: Family;
  readonly priority: number;
  readonly table: number;
  /** FR_ACT_* */
  readonly action: number;
}

export function decodeRule(m: NlMessage): KernelRule | undefined {
  const b = m.body;
  if (b.length < L.fibRuleHdr.size) return undefined;
  const family = familyOfAf(b[L.fibRuleHdr.family]!);
  if (!family) return undefined;
  const attrs = attributes(b, align4(L.fibRuleHdr.size));
  return {
    family,
    priority: u32(attrs.get(FRA.PRIORITY)) ?? 0,
    table: u32(attrs.get(FRA.TABLE)) ?? b[L.fibRuleHdr.table]!,
    action: b[L.fibRuleHdr.action]!,
  };
}
