// Construction options of the sans-IO TURN server. Everything that varies
// between deployments or tests is injected: credentials, peer policy, rate
// limiters, nonce secret, randomness. Time is passed to each call (`now`, ms
// on a monotonic clock: lifetimes); the wall clock, for what is stamped with
// absolute times (credential expiry, nonces), is injected as `wallClock`.
import type { Logger } from 'pino';
import type { CredentialSource } from '../auth/index.ts';
import type { PeerPolicy, RateLimiter } from '../policy/index.ts';
import type { RandomSource } from './port-pool.ts';
import type { SessionLogOptions } from './session-log.ts';

export interface TurnServerOptions {
  /** Long-term credential realm (RFC 8489 §9.2). */
  readonly realm: string;
  /** SOFTWARE attribute put in every response (omitted when undefined). */
  readonly software?: string;
  /** The TURN/STUN listen port (the same number for both families). */
  readonly listenPort: number;
  /**
   * XOR-RELAYED-ADDRESS per family. A family without an address cannot be
   * allocated (440 Address Family not Supported).
   */
  readonly relayAddresses: { readonly v4?: string; readonly v6?: string };
  /** Relayed ports are drawn from [min, max] (the listen port is never used). */
  readonly portRange: { readonly min: number; readonly max: number };
  /** Seconds; default 600 (RFC 8656 §7.2). */
  readonly defaultLifetime?: number;
  /** Seconds; default 3600. */
  readonly maxLifetime?: number;
  // Limits (limits.ts); each defaults to unlimited here, the config sets them.
  // "User" is the quota key the credential source names (CredentialSource.userOf).
  /** All allocations (pending included); beyond: 508. */
  readonly maxAllocations?: number;
  /** Allocations of one user (pending included); beyond: 486. */
  readonly maxAllocationsPerUser?: number;
  /** Ports reserved by EVEN-PORT R in all; beyond: 508. */
  readonly maxReservations?: number;
  /** Ports reserved by EVEN-PORT R for one user; beyond: 486. */
  readonly maxReservationsPerUser?: number;
  /** XOR-PEER-ADDRESS attributes in one CreatePermission; beyond: 508. */
  readonly maxPeersPerRequest?: number;
  /** Permissions (peer IPs) one allocation holds; beyond: 508. */
  readonly maxPermissionsPerAllocation?: number;
  /** Channels (active or held) one allocation binds; beyond: 508. */
  readonly maxChannelsPerAllocation?: number;
  /** Channels (active or held) of one user's allocations, which bounds its kernel bindings; beyond: 508. */
  readonly maxChannelsPerUser?: number;
  readonly credentials: CredentialSource;
  readonly peerPolicy: PeerPolicy;
  /**
   * Per-source request budgets; over one, the request is dropped unanswered
   * and counted ("rate-limited", "rate-limited-authenticated",
   * "rate-limited-overflow"). `unauthenticated` pays for every answer sent
   * without checking credentials (Binding, 400/420, 401): answers a spoofed
   * source would reflect. `authenticated` pays for requests whose integrity
   * checked (and 438s, whose nonce shows the source receives our answers).
   * Undefined = no limit.
   */
  readonly rateLimits?: { readonly unauthenticated?: RateLimiter; readonly authenticated?: RateLimiter };
  /** Stateless nonce signing key and lifetime (default 3600 s). */
  readonly nonce: { readonly secret: Uint8Array | string; readonly ttlSeconds?: number };
  /**
   * Wall-clock ms since the epoch, read for credential expiry (REST, Firezone
   * usernames carry unix times) and nonce stamps; everything else runs on the
   * `now` passed in. Default: that `now` (one clock for both).
   */
  readonly wallClock?: () => number;
  /** n random bytes; used for relayed ports and reservation tokens. */
  readonly random: RandomSource;
  /** Times a failed port open is retried with another port before 508 (default 3 attempts in all). */
  readonly portAttempts?: number;
  /** ms to wait for portOpened() before the Allocate fails with 508 (default 10 s). */
  readonly portOpenTimeout?: number;
  /**
   * Highest channel number accepted: 0x4FFF (RFC 8656, default) or up to
   * 0x7FFF for RFC 5766 clients such as coturn's turnutils_uclient, which
   * pick channels at random in 0x4000-0x7FFF.
   */
  readonly maxChannel?: number;
  /** Rare events only (port failures, capacity, internal errors); never per packet. */
  readonly logger?: Logger;
  /** Each session's life at debug (session-log.ts); unset: no session lines. */
  readonly sessionLog?: SessionLogOptions;
}
