// Which peers a client may reach through the relay. Internal networks are
// denied by default (the CVE-2020-26262 class: a relay open to loopback,
// private or metadata addresses lets outsiders into the operator's network),
// including IPv6 forms that carry such an IPv4 address inside them.
// Addresses are compared as 16 bytes (IPv4 as IPv4-mapped), see config/cidr.ts.
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
  | 'invalid-address';

/** How a denied IPv4 address was embedded in the IPv6 one that was checked. */
export type EmbeddingKind = 'ipv4-mapped' | 'ipv4-compatible' | 'nat64' | '6to4' | 'teredo';

export type PolicyDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: DenyReason; readonly embedded?: EmbeddingKind };

export interface PeerPolicyOptions {
  /** CIDRs (or single addresses) always allowed unless also in `denied`. */
  readonly allowed?: readonly string[];
  /** CIDRs always denied. */
  readonly denied?: readonly string[];
  /** Apply the built-in default deny list (default true). */
  readonly defaults?: boolean;
}

export interface PeerPolicy {
  /** Text address, or 4/16 bytes in network order (IPv4 may be IPv4-mapped). Never throws. */
  check(address: string | Uint8Array): PolicyDecision;
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

/** IPv4 addresses carried inside an IPv6 address, by the well-known embeddings. */
function embeddedV4(b: Uint8Array): Embedded[] {
  // IPv4-mapped ::ffff:a.b.c.d is already the form IPv4 rules are stored in.
  // ::a.b.c.d (deprecated IPv4-compatible); :: and ::1 are themselves, not 0.0.0.0/0.0.0.1.
  if (zeros(b, 0, 12) && !(zeros(b, 12, 15) && b[15]! <= 1)) return [{ v4: mapped(b, 12), kind: 'ipv4-compatible' }];
  if (zeros(b, 0, 8) && b[8] === 0xff && b[9] === 0xff && b[10] === 0 && b[11] === 0) return [{ v4: mapped(b, 12), kind: 'ipv4-mapped' }]; // ::ffff:0:a.b.c.d (SIIT)
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(b, 4, 12)) return [{ v4: mapped(b, 12), kind: 'nat64' }]; // 64:ff9b::/96
  if (b[0] === 0x20 && b[1] === 0x02) return [{ v4: mapped(b, 2), kind: '6to4' }]; // 2002::/16
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0 && b[3] === 0) {
    // Teredo 2001::/32: server IPv4 in bytes 4-7, client's public IPv4 obfuscated (XOR 0xff) in 12-15.
    return [{ v4: mapped(b, 12, 0xff), kind: 'teredo' }, { v4: mapped(b, 4), kind: 'teredo' }];
  }
  return [];
}

const ALLOW: PolicyDecision = Object.freeze({ allowed: true });

/**
 * Precedence: explicit denied > explicit allowed > default deny list > allow.
 * Explicit lists match the address itself or any IPv4 address embedded in it.
 * Throws on a malformed CIDR in the options (configuration error, at start).
 */
export function createPeerPolicy(opts: PeerPolicyOptions = {}): PeerPolicy {
  const denied = (opts.denied ?? []).map((c) => parseCidr(c.trim()));
  const allowed = (opts.allowed ?? []).map((c) => parseCidr(c.trim()));
  const defaults: Array<[Cidr, DenyReason]> = opts.defaults === false ? [] : DEFAULT_DENIED.map(([c, r]) => [parseCidr(c), r]);

  const inList = (list: readonly Cidr[], b: Uint8Array, emb: readonly Embedded[]) =>
    list.some((c) => cidrContains(c, b) || emb.some((e) => cidrContains(c, e.v4)));
  const defaultReason = (b: Uint8Array) => defaults.find(([c]) => cidrContains(c, b))?.[1];

  return {
    check(address) {
      const b = typeof address === 'string' ? addressToBytes16(address) : toBytes16(address);
      if (!b) return { allowed: false, reason: 'invalid-address' };
      const emb = embeddedV4(b);
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
