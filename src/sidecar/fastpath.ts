// The sidecar's userspace fast path: bound channels relayed by the sidecar
// itself when the kernel did not (eBPF off or unavailable, a full binding
// map, a frame the XDP program passed for want of a neighbour), from the same
// binding state the relay bridge writes into the kernel maps, with exactly
// the XDP program's rules (bpf/turn_router.c from_client/from_peer):
//   - ChannelData to the listen port from (client, channel) with a binding
//     -> its payload, without header or padding, as UDP to the peer from the
//     allocation port in the peer's family; to a peer that is this relay's
//     own allocation, ChannelData to that allocation's client instead;
//   - UDP from a peer to an allocation port with a binding -> ChannelData
//     (4-byte header, no padding) to the client from the listen port.
// Like the kernel program it reads a 4-byte header and does a lookup; every
// other datagram gets the kernel's pass reason and goes to the relay, and
// the kernel's drop reasons drop. Only IP-level reasons (options, fragments,
// checksums, next hops) have no meaning here: the socket layer settled them.
import type { Family, LocalEndpoint, TransportAddress } from '../shared/endpoint.ts';
import type { ChannelBinding } from '../shared/binding.ts';
import { PATH_NAMES, REASON_NAMES, type PathName, type ReasonName } from '../shared/reasons.ts';
import { addressToBytes, formatV4 } from '../shared/ip.ts';
import { dgramIPv6Text } from '../net/mmsg.ts';
import type { ChannelMap } from './sockets/relay-bridge.ts';
import type { RouterConfig } from './bpf/config-map.ts';

/** What the kernel's tp_config says, as the fast path needs it: the same settings, one per field. */
export type FastPathConfig = Omit<RouterConfig, 'diagPerSec'>;

/** TP_MAX_IP_LEN (bpf/consts.h). */
const MAX_IP_LEN = 9216;
const UDP_HLEN = 8;
const CHAN_HLEN = 4;
const ipHlen = (f: Family) => (f === 4 ? 20 : 40);

const reason = (name: ReasonName) => REASON_NAMES.indexOf(name);
export const R = {
  stun: reason('pass_stun'),
  badChannelData: reason('pass_bad_channel_data'),
  noBinding: reason('pass_no_binding'),
  familyUnavailable: reason('pass_family_unavailable'),
  tooBig: reason('pass_too_big'),
  notRelayPort: reason('pass_not_relay_port'),
  v4Mapped: reason('drop_v4_mapped'),
} as const;
/** decide() result: relayed (the output is in `out`); any other value is an index of REASON_NAMES. */
export const RELAYED = -1;

const path = (name: PathName) => PATH_NAMES.indexOf(name);
/** Path index: base + input family (IPv6: +2) + output family (IPv6: +1), as path_of() in the program. */
const pathOf = (base: PathName, inFamily: Family, outFamily: Family) => path(base) + (inFamily === 6 ? 2 : 0) + (outFamily === 6 ? 1 : 0);

/** The text form node:dgram reports for an address, so table keys meet rinfo.address. */
export function dgramText(address: string): string {
  const b = addressToBytes(address);
  if (!b) return address;
  return b.length === 4 ? formatV4(b, 0) : dgramIPv6Text(b);
}

/** One direction's target: where the output goes and from which of our ports. */
export interface Target {
  readonly to: TransportAddress;
  readonly from: LocalEndpoint;
  readonly fromKind: 'listen' | 'allocation';
  /** ChannelData output: the channel number; -1: plain UDP. */
  readonly channel: number;
}

/** tp_chan_to_peer value. */
interface ChanEntry {
  readonly binding: ChannelBinding;
  readonly peer: TransportAddress;
  readonly clientFamily: Family;
  readonly allocationPort: number;
  /** The UDP output to the peer. */
  readonly target: Target;
}

/** tp_peer_to_chan value. */
interface PeerEntry {
  readonly binding: ChannelBinding;
  readonly peerFamily: Family;
  /** The ChannelData output to the client. */
  readonly target: Target;
}

/**
 * Both binding maps of the kernel program, in userspace: keyed by the
 * address text (as node:dgram reports it) and one int32 of two 16-bit
 * numbers, so a lookup builds no string. Install and remove follow the
 * kernel writer (bpf/bindings.ts): a key held by another binding refuses the
 * install, and a remove deletes only what this binding holds.
 */
export class ChannelTable implements ChannelMap {
  /** client address -> (client port << 16 | channel) -> entry */
  private readonly chans = new Map<string, Map<number, ChanEntry>>();
  /** peer address -> (peer port << 16 | allocation port) -> entry */
  private readonly peers = new Map<string, Map<number, PeerEntry>>();
  private count = 0;

  constructor(private listenPort: number) {}

  /** The listen port outputs to clients leave from (known once the listen sockets are bound). */
  setListenPort(port: number): void {
    if (port === this.listenPort) return;
    this.listenPort = port;
    const all = this.bindings();
    this.clear();
    for (const b of all) this.install(b);
  }

  get size(): number {
    return this.count;
  }

  install(b: ChannelBinding): void {
    const client = dgramText(b.client.address);
    const peer = dgramText(b.peer.address);
    const ck = chanKey(b.client.port, b.channel);
    const pk = peerKey(b.peer.port, b.allocationPort);
    const haveChan = this.chans.get(client)?.get(ck);
    const havePeer = this.peers.get(peer)?.get(pk);
    if ((haveChan && !sameBinding(haveChan.binding, b)) || (havePeer && !sameBinding(havePeer.binding, b))) {
      throw new Error(`EEXIST: a key of channel 0x${b.channel.toString(16)} of ${b.client.address}:${b.client.port} belongs to another binding`);
    }
    const peerAddr: TransportAddress = { family: b.peer.family, address: peer, port: b.peer.port };
    const clientAddr: TransportAddress = { family: b.client.family, address: client, port: b.client.port };
    const chan: ChanEntry = {
      binding: b,
      peer: peerAddr,
      clientFamily: b.client.family,
      allocationPort: b.allocationPort,
      target: { to: peerAddr, from: { family: b.peer.family, port: b.allocationPort }, fromKind: 'allocation', channel: -1 },
    };
    const back: PeerEntry = {
      binding: b,
      peerFamily: b.peer.family,
      target: { to: clientAddr, from: { family: b.client.family, port: this.listenPort }, fromKind: 'listen', channel: b.channel },
    };
    if (!haveChan) this.count++;
    inner(this.chans, client).set(ck, chan);
    inner(this.peers, peer).set(pk, back);
  }

  remove(b: ChannelBinding): void {
    const client = dgramText(b.client.address);
    const peer = dgramText(b.peer.address);
    const pm = this.peers.get(peer);
    const pk = peerKey(b.peer.port, b.allocationPort);
    if (pm && pm.get(pk) && sameBinding(pm.get(pk)!.binding, b)) {
      pm.delete(pk);
      if (pm.size === 0) this.peers.delete(peer);
    }
    const cm = this.chans.get(client);
    const ck = chanKey(b.client.port, b.channel);
    if (cm && cm.get(ck) && sameBinding(cm.get(ck)!.binding, b)) {
      cm.delete(ck);
      this.count--;
      if (cm.size === 0) this.chans.delete(client);
    }
  }

  replaceAll(bs: readonly ChannelBinding[]): void {
    this.clear();
    for (const b of bs) {
      try {
        this.install(b);
      } catch {
        // As the kernel writer: a conflicting binding is not written; the relay serves it.
      }
    }
  }

  clear(): void {
    this.chans.clear();
    this.peers.clear();
    this.count = 0;
  }

  bindings(): ChannelBinding[] {
    return [...this.chans.values()].flatMap((m) => [...m.values()].map((e) => e.binding));
  }

  /** tp_chan_to_peer lookup. */
  chan(family: Family, address: string, port: number, channel: number): ChanEntry | undefined {
    const e = this.chans.get(address)?.get(chanKey(port, channel));
    return e !== undefined && e.clientFamily === family ? e : undefined;
  }

  /** tp_peer_to_chan lookup. */
  peer(family: Family, address: string, port: number, allocationPort: number): PeerEntry | undefined {
    const e = this.peers.get(address)?.get(peerKey(port, allocationPort));
    return e !== undefined && e.peerFamily === family ? e : undefined;
  }
}

const chanKey = (port: number, channel: number) => (port << 16) | channel;
const peerKey = (port: number, allocationPort: number) => (port << 16) | allocationPort;

function inner<V>(m: Map<string, Map<number, V>>, k: string): Map<number, V> {
  let i = m.get(k);
  if (!i) m.set(k, (i = new Map()));
  return i;
}

function sameBinding(a: ChannelBinding, b: ChannelBinding): boolean {
  return (
    a.client.address === b.client.address && a.client.port === b.client.port && a.channel === b.channel &&
    a.peer.address === b.peer.address && a.peer.port === b.peer.port && a.allocationPort === b.allocationPort
  );
}

/** Where decide() puts a relayed output: the target, the payload's span in the input, the path. */
export interface Output {
  target: Target | undefined;
  /**
   * Set with a pass reason when the kernel passes a datagram that the relay
   * would then send exactly as filled in here (the peer is a port of this
   * host that is neither the listen port nor an allocation port).
   */
  assisted: boolean;
  start: number;
  end: number;
  path: number;
}

export const newOutput = (): Output => ({ target: undefined, assisted: false, start: 0, end: 0, path: 0 });

/** IPv4 in IPv6 form as node:dgram writes it (::ffff:a.b.c.d). */
const isMappedText = (address: string) => address.startsWith('::ffff:') && address.includes('.');

/** emit()'s checks before the first write: no IPv4 in IPv6 form on the wire, and the MTU. */
function emitCheck(cfg: FastPathConfig, to: TransportAddress, udpPayload: number): number {
  if (to.family === 6 && isMappedText(to.address)) return R.v4Mapped;
  const ipLen = ipHlen(to.family) + UDP_HLEN + udpPayload;
  return ipLen > cfg.mtu || ipLen > MAX_IP_LEN ? R.tooBig : RELAYED;
}

/**
 * The XDP program's decision for one datagram as the socket layer sees it
 * (`kind`: which of our sockets it reached; `localPort`: that socket's port;
 * the datagram is data[off, off + ulen)).
 * RELAYED with `out` filled, or the kernel's reason (REASON_NAMES index).
 * Pure: reads the table and the first bytes of `data`, writes only `out`.
 */
export function decide(
  table: ChannelTable,
  cfg: FastPathConfig,
  kind: 'listen' | 'allocation',
  localPort: number,
  family: Family,
  address: string,
  port: number,
  data: Uint8Array,
  off: number,
  ulen: number,
  out: Output,
): number {
  out.assisted = false;
  // parse_frame: an IPv6 source in ::ffff:0:0/96 is dropped before anything.
  if (family === 6 && isMappedText(address)) return R.v4Mapped;
  if (kind === 'listen') {
    // from_client
    if (ulen < CHAN_HLEN) return R.stun;
    const channel = (data[off]! << 8) | data[off + 1]!;
    if ((channel & 0xc000) === 0) return R.stun;
    if ((channel & 0xc000) !== 0x4000) return R.badChannelData;
    const len = (data[off + 2]! << 8) | data[off + 3]!;
    if (len > ulen - CHAN_HLEN) return R.badChannelData;
    if (ulen - CHAN_HLEN - len > 3) return R.badChannelData;
    if (len > MAX_IP_LEN) return R.tooBig;
    const v = table.chan(family, address, port, channel);
    if (v === undefined) return R.noBinding;
    const outFamily = v.peer.family;
    const relayAddr = outFamily === 4 ? cfg.relayV4 : cfg.relayV6;
    if (relayAddr === undefined) return R.familyUnavailable;
    let target = v.target;
    let p = pathOf('chan_to_udp_44', family, outFamily);
    let hdr = 0;
    if (v.peer.address === relayAddr) {
      // The peer is this relay: only another allocation here is a target.
      if (v.peer.port < cfg.portMin || v.peer.port > cfg.portMax) {
        // The kernel cannot send to its own host and passes; the relay then
        // sends the payload as UDP (its per-datagram rule refuses only the
        // listen port and allocation ports). So can we: `assisted`.
        if (v.peer.port !== cfg.listenPort && emitCheck(cfg, v.peer, len) === RELAYED) {
          out.target = v.target;
          out.start = off + CHAN_HLEN;
          out.end = off + CHAN_HLEN + len;
          out.path = p;
          out.assisted = true;
        }
        return R.noBinding;
      }
      const v2 = table.peer(outFamily, relayAddr, v.allocationPort, v.peer.port);
      if (v2 === undefined) return R.noBinding;
      const clientFamily = v2.target.to.family;
      if ((clientFamily === 4 ? cfg.relayV4 : cfg.relayV6) === undefined) return R.familyUnavailable;
      target = v2.target;
      p = pathOf('chan_to_chan_44', family, clientFamily);
      hdr = CHAN_HLEN;
    }
    const r = emitCheck(cfg, target.to, hdr + len);
    if (r !== RELAYED) return r;
    out.target = target;
    out.start = off + CHAN_HLEN;
    out.end = off + CHAN_HLEN + len;
    out.path = p;
    return RELAYED;
  }
  // from_peer (route(): the allocation range decides, the listen port first)
  if (localPort === cfg.listenPort || localPort < cfg.portMin || localPort > cfg.portMax) return R.notRelayPort;
  const v = table.peer(family, address, port, localPort);
  if (v === undefined) return R.noBinding;
  const clientFamily = v.target.to.family;
  if ((clientFamily === 4 ? cfg.relayV4 : cfg.relayV6) === undefined) return R.familyUnavailable;
  const r = emitCheck(cfg, v.target.to, CHAN_HLEN + ulen);
  if (r !== RELAYED) return r;
  out.target = v.target;
  out.start = off;
  out.end = off + ulen;
  out.path = pathOf('udp_to_chan_44', family, clientFamily);
  return RELAYED;
}

/** Relay addresses in the text sockets report, so the "peer is this relay" test compares like with like. */
export function normalized(cfg: FastPathConfig): FastPathConfig {
  return { ...cfg, relayV4: cfg.relayV4 && dgramText(cfg.relayV4), relayV6: cfg.relayV6 && dgramText(cfg.relayV6) };
}

/** Sends one output: data[start, end) (behind a ChannelData header when target.channel >= 0) from target.from; false when it could not leave. */
export type Forward = (target: Target, data: Uint8Array, start: number, end: number) => boolean;

export interface FastPathStats {
  /** Relayed per path (PATH_NAMES), payload bytes as the kernel counts them (no ChannelData header or padding). */
  paths: Record<PathName, { packets: number; bytes: number }>;
  /** Datagrams handed on to the relay, by kernel reason. */
  passed: Partial<Record<ReasonName, number>>;
  /** Datagrams dropped by a kernel drop reason. */
  dropped: Partial<Record<ReasonName, number>>;
  /** Relayed outputs the socket layer could not send (no socket for the port: it was closed). */
  unsent: number;
  bindings: number;
}

/**
 * The fast path at the sockets: `handle` is given every datagram before it
 * would go to the relay and returns true when it took it (relayed or dropped).
 */
export class UserspaceRelayer {
  private readonly out = newOutput();
  private readonly pathPackets = new Float64Array(PATH_NAMES.length);
  private readonly pathBytes = new Float64Array(PATH_NAMES.length);
  private readonly reasons = new Float64Array(REASON_NAMES.length);
  private unsent = 0;
  private forward: Forward | undefined;

  constructor(
    readonly table: ChannelTable,
    cfg: FastPathConfig,
  ) {
    this.cfg = normalized(cfg);
  }
  private cfg: FastPathConfig;

  /** Where outputs leave (the sockets); without it nothing is relayed here. */
  attach(forward: Forward, cfg?: Partial<FastPathConfig>): void {
    this.forward = forward;
    if (cfg) this.cfg = normalized({ ...this.cfg, ...cfg });
    this.table.setListenPort(this.cfg.listenPort);
  }

  readonly handle = (local: LocalEndpoint, kind: 'listen' | 'allocation', data: Uint8Array, off: number, len: number, family: Family, address: string, port: number): boolean => {
    const forward = this.forward;
    if (forward === undefined || this.table.size === 0) return false;
    const out = this.out;
    const r = decide(this.table, this.cfg, kind, local.port, family, address, port, data, off, len, out);
    if (r !== RELAYED && !out.assisted) {
      this.reasons[r]!++;
      return r === R.v4Mapped;
    }
    if (!forward(out.target!, data, out.start, out.end)) {
      this.unsent++;
      return true;
    }
    this.pathPackets[out.path]!++;
    this.pathBytes[out.path]! += out.end - out.start;
    return true;
  };

  stats(): FastPathStats {
    const paths = {} as FastPathStats['paths'];
    PATH_NAMES.forEach((p, i) => (paths[p] = { packets: this.pathPackets[i]!, bytes: this.pathBytes[i]! }));
    const passed: FastPathStats['passed'] = {};
    const dropped: FastPathStats['dropped'] = {};
    REASON_NAMES.forEach((n, i) => {
      const c = this.reasons[i]!;
      if (c > 0) (n.startsWith('drop_') ? dropped : passed)[n] = c;
    });
    return { paths, passed, dropped, unsent: this.unsent, bindings: this.table.size };
  }
}

/** The bridge's map calls to both binding tables: userspace first (synchronous), then the kernel's. */
export function bothMaps(user: ChannelTable, kernel: ChannelMap | undefined): ChannelMap {
  if (!kernel) return user;
  return {
    install: (b) => {
      user.install(b);
      return kernel.install(b);
    },
    remove: (b) => {
      user.remove(b);
      return kernel.remove(b);
    },
    replaceAll: (bs) => {
      user.replaceAll(bs);
      return kernel.replaceAll(bs);
    },
    clear: () => {
      user.clear();
      return kernel.clear();
    },
  };
}
