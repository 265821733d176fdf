// Which peers a client may reach through the relay. Internal networks are
// denied by default (the CVE-2020-26262 class: a relay open to loopback,
// private or metadata addresses lets outsiders into the operator's network),
// including IPv6 forms that carry such an IPv4 address inside them.
// Addresses are compared as 16 bytes (IPv4 as IPv4-mapped), see config/cidr.ts;
// the family is the form's the caller gave (text, or 4 / 16 bytes), so an
// IPv6 peer written ::ffff:a.b.c.d is an IPv6 peer, not a.b.c.d.
//
// Two refusals are structural, before any list (an allow-list entry cannot
// re-open them):
// - an IPv6 peer the relay cannot serve as IPv6 because it is an IPv4
//   address in IPv6 form (::ffff:0:0/96 mapped, ::/96 compatible): a
//   dual-stack socket would send IPv4, and the kernel maps would meet the
//   IPv4 address's state. NAT64, 6to4 and Teredo are real IPv6 destinations;
//   the IPv4 address they embed is checked like any other below.
// - the relay itself: its listen port and allocation ports on its own
//   addresses (listen and relayed), directly or embedded, so no client relays
//   into the relay or chains allocations through it.
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { familyOf, isWildcard } from './endpoint.ts';
import { cidrContains, parseCidr, type Cidr } from './cidr.ts';
import { addressToBytes16, toBytes16 } from './ip.ts';

export type DenyReason =
  | 'denied-list'
  | 'loopback'
  | 'private'
  | 'unique-local'
  | 'link-local'
  | 'site-local'
  | 'cgnat'
  | 'multicast'
  | 'unspecified'
  | 'broadcast'
  | 'reserved'
  | 'metadata'
  | 'nat64-local'
  | 'invalid-address'
  | 'ipv4-in-ipv6'
  | 'relay-itself';

/** How an IPv4 address was embedded in the IPv6 one that was checked (ipv4-translated: SIIT ::ffff:0:a.b.c.d). */
export type EmbeddingKind = 'ipv4-mapped' | 'ipv4-compatible' | 'ipv4-translated' | 'nat64' | '6to4' | 'teredo';

export type PolicyDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: DenyReason; readonly embedded?: EmbeddingKind };

/** The relay's own transport addresses: every port of `ports` on every address of `addresses`. */
export interface RelaySelf {
  /** Listen addresses and the relayed addresses chosen at start, either family. */
  readonly addresses: readonly string[];
  /** The listen port and the allocation port range, inclusive. */
  readonly ports: readonly { readonly min: number; readonly max: number }[];
}

export interface PeerPolicyOptions {
  /** CIDRs (or single addresses) always allowed unless also in `denied`. */
  readonly allowed?: readonly string[];
  /** CIDRs always denied. */
  readonly denied?: readonly string[];
  /** Apply the built-in default deny list (default true). */
  readonly defaults?: boolean;
  /** The relay's own transport addresses, refused whatever the lists say. */
  readonly relay?: RelaySelf;
}

export interface PeerPolicy {
  /**
   * Text address, or 4 (IPv4) / 16 (IPv6) bytes in network order, and the
   * peer's port (none: any port, as for a permission). Never throws.
   */
  check(address: string | Uint8Array, port?: number): PolicyDecision;
  /**
   * True when address:port is one of the relay's own transport addresses: a
   * datagram sent there would come back into the relay. Cheap unless the port
   * is one of the relay's, so it can run per relayed datagram.
   */
  isRelayItself(address: string, port: number): boolean;
}

/**
 * The built-in default deny list with each entry's reason; the first match
 * wins, so specific entries (metadata, broadcast) precede their supernets.
 * Documentation and benchmarking ranges are not on it (tests use them).
 */
export const DEFAULT_DENIED: ReadonlyArray<readonly [cidr: string, reason: DenyReason]> = [
  ['169.254.169.254/32', 'metadata'], // AWS, GCP, Azure, OpenStack instance metadata
  ['fd00:ec2::254/128', 'metadata'], // AWS IMDS over IPv6
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'], // IETF protocol assignments (DS-Lite, NAT64 discovery)
  ['192.168.0.0/16', 'private'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['100::/64', 'reserved'], // discard-only
  ['64:ff9b:1::/48', 'nat64-local'], // local-use NAT64 (RFC 8215): embedding depends on the operator's prefix
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local'],
  ['ff00::/8', 'multicast'],
];

interface Embedded {
  readonly v4: Uint8Array; // 16-byte IPv4-mapped form
  readonly kind: EmbeddingKind;
}

function mapped(b: Uint8Array, at: number, xor = 0): Uint8Array {
  const m = new Uint8Array(16);
  m[10] = 0xff; m[11] = 0xff;
  for (let i = 0; i < 4; i++) m[12 + i] = b[at + i]! ^ xor;
  return m;
}

function zeros(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * The IPv4-in-IPv6 forms no IPv6 packet can be sent to: ::ffff:a.b.c.d
 * (IPv4-mapped, RFC 4291 2.5.5.2: IPv4 nodes seen through an IPv6 API) and
 * ::a.b.c.d (IPv4-compatible, deprecated by RFC 4291 2.5.5.1). :: and ::1
 * are themselves, not 0.0.0.0/0.0.0.1.
 */
function ipv4Form(b: Uint8Array): 'ipv4-mapped' | 'ipv4-compatible' | undefined {
  if (!zeros(b, 0, 10)) return undefined;
  if (b[10] === 0xff && b[11] === 0xff) return 'ipv4-mapped';
  if (b[10] === 0 && b[11] === 0 && !(zeros(b, 12, 15) && b[15]! <= 1)) return 'ipv4-compatible';
  return undefined;
}

/** IPv4 addresses carried inside an IPv6 address that is a real IPv6 destination, by the well-known embeddings. */
function embeddedV4(b: Uint8Array): Embedded[] {
  if (zeros(b, 0, 8) && b[8] === 0xff && b[9] === 0xff && b[10] === 0 && b[11] === 0) return [{ v4: mapped(b, 12), kind: 'ipv4-translated' }]; // ::ffff:0:a.b.c.d (SIIT)
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(b, 4, 12)) return [{ v4: mapped(b, 12), kind: 'nat64' }]; // 64:ff9b::/96
  if (b[0] === 0x20 && b[1] === 0x02) return [{ v4: mapped(b, 2), kind: '6to4' }]; // 2002::/16
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0 && b[3] === 0) {
    // Teredo 2001::/32: server IPv4 in bytes 4-7, client's public IPv4 obfuscated (XOR 0xff) in 12-15.
    return [{ v4: mapped(b, 12, 0xff), kind: 'teredo' }, { v4: mapped(b, 4), kind: 'teredo' }];
  }
  return [];
}

const ALLOW: PolicyDecision = Object.freeze({ allowed: true });

/** 16-byte form and family of a peer address as given; undefined when it is not one. */
function peerBytes(address: string | Uint8Array): { b: Uint8Array; v6: boolean } | undefined {
  const b = typeof address === 'string' ? addressToBytes16(address) : toBytes16(address);
  if (!b) return undefined;
  return { b, v6: typeof address === 'string' ? isIP(address) === 6 : address.length === 16 };
}

const sameAddress = (a: Uint8Array, b: Uint8Array) => a.every((x, i) => x === b[i]);

/**
 * Precedence: refusals of what cannot be served (IPv4 in IPv6 form) and of the
 * relay itself > explicit denied > explicit allowed > default deny list > allow.
 * Lists and the relay's addresses match the address itself or any IPv4 address
 * embedded in it. Throws on a malformed CIDR or relay address in the options
 * (configuration error, at start).
 */
export function createPeerPolicy(opts: PeerPolicyOptions = {}): PeerPolicy {
  const denied = (opts.denied ?? []).map((c) => parseCidr(c.trim()));
  const allowed = (opts.allowed ?? []).map((c) => parseCidr(c.trim()));
  const defaults: Array<[Cidr, DenyReason]> = opts.defaults === false ? [] : DEFAULT_DENIED.map(([c, r]) => [parseCidr(c), r]);
  const relayAddresses = (opts.relay?.addresses ?? []).map((a) => parseCidr(a).bytes);
  const relayPorts = opts.relay?.ports ?? [];

  const inList = (list: readonly Cidr[], b: Uint8Array, emb: readonly Embedded[]) =>
    list.some((c) => cidrContains(c, b) || emb.some((e) => cidrContains(c, e.v4)));
  const defaultReason = (b: Uint8Array) => defaults.find(([c]) => cidrContains(c, b))?.[1];
  const isRelayPort = (port: number) => relayPorts.some((r) => port >= r.min && port <= r.max);
  const isRelayAddress = (b: Uint8Array) => relayAddresses.some((r) => sameAddress(r, b));
  /** The refusal when b, or an IPv4 address embedded in it, is one of the relay's addresses. */
  const relayRefusal = (b: Uint8Array, emb: readonly Embedded[]): PolicyDecision | undefined => {
    if (isRelayAddress(b)) return { allowed: false, reason: 'relay-itself' };
    const e = emb.find((x) => isRelayAddress(x.v4));
    return e && { allowed: false, reason: 'relay-itself', embedded: e.kind };
  };

  return {
    isRelayItself(address, port) {
      if (!isRelayPort(port)) return false;
      const p = peerBytes(address);
      return p !== undefined && relayRefusal(p.b, p.v6 ? embeddedV4(p.b) : []) !== undefined;
    },
    check(address, port) {
      const p = peerBytes(address);
      if (!p) return { allowed: false, reason: 'invalid-address' };
      const { b } = p;
      const form = p.v6 ? ipv4Form(b) : undefined;
      if (form) return { allowed: false, reason: 'ipv4-in-ipv6', embedded: form };
      const emb = p.v6 ? embeddedV4(b) : [];
      const itself = port === undefined || isRelayPort(port) ? relayRefusal(b, emb) : undefined;
      if (itself) return itself;
      if (inList(denied, b, emb)) return { allowed: false, reason: 'denied-list' };
      if (inList(allowed, b, emb)) return ALLOW;
      const own = defaultReason(b);
      if (own) return { allowed: false, reason: own };
      for (const e of emb) {
        const r = defaultReason(e.v4);
        if (r) return { allowed: false, reason: r, embedded: e.kind };
      }
      return ALLOW;
    },
  };
}

/** What relaySelfOf needs of the configuration. */
export interface RelaySelfSettings {
  readonly listenPort: number;
  readonly listenAddresses: readonly string[];
  readonly portRange: { readonly min: number; readonly max: number };
  readonly allowRelayedPeers?: boolean;
}

/**
 * The relay's own transport addresses, the same for the relay's policy and the
 * sidecar's second check: listen and relayed addresses (a wildcard listen
 * address standing for the host's addresses of its family) with the listen
 * port and, unless allocations may reach each other, the allocation range.
 */
export function relaySelfOf(
  config: RelaySelfSettings,
  relayed: { readonly v4?: string | undefined; readonly v6?: string | undefined },
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): RelaySelf {
  const addresses = new Set<string>();
  for (const a of config.listenAddresses) {
    addresses.add(a);
    if (!isWildcard(a)) continue;
    for (const i of Object.values(interfaces).flat()) if (i && familyOf(i.address) === familyOf(a)) addresses.add(i.address);
  }
  for (const a of [relayed.v4, relayed.v6]) if (a) addresses.add(a);
  // The listen port is never a peer (a TURN loop). Allocation ports are refused
  // too unless the operator lets allocations reach each other.
  const listen = { min: config.listenPort, max: config.listenPort };
  return { addresses: [...addresses], ports: config.allowRelayedPeers ? [listen] : [listen, config.portRange] };
}
