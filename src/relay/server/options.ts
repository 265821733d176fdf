// Construction options of the sans-IO TURN server. Everything that varies
// between deployments or tests is injected: credentials, peer policy, rate
// limiter, nonce secret, randomness. No clock: time is passed to each call.
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
  /** All allocations (pending included); default unlimited. */
  readonly maxAllocations?: number;
  /** Per username; default unlimited. */
  readonly maxAllocationsPerUser?: number;
  readonly credentials: CredentialSource;
  readonly peerPolicy: PeerPolicy;
  /**
   * Limits answers to requests that fail authentication (401 challenges,
   * 400/420 codec errors), keyed by the source IP: over the limit the request
   * is dropped (counted as "rate-limited"). Undefined = no limit.
   */
  readonly rateLimiter?: RateLimiter;
  /** Stateless nonce signing key and lifetime (default 3600 s). */
  readonly nonce: { readonly secret: Uint8Array | string; readonly ttlSeconds?: number };
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
