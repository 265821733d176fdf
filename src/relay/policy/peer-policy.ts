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

/** The built-in default deny list with each entry's reason. */
export const DEFAULT_DENIED: ReadonlyArray<readonly [cidr: string, reason: DenyReason]> = [];

/**
 * Precedence: explicit denied > explicit allowed > default deny list > allow.
 * Throws on a malformed CIDR in the options (configuration error, at start).
 */
export function createPeerPolicy(opts: PeerPolicyOptions = {}): PeerPolicy {
  void opts;
  throw new Error('TODO');
}
