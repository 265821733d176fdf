/** 'stale' -> answer 438 Stale Nonce; 'invalid' -> 401 with a fresh nonce. */
export type NonceVerdict = 'ok' | 'stale' | 'invalid';

/** RFC 8489: NONCE is less than 128 characters and at most 763 bytes. */
export const MAX_NONCE_LENGTH = 763;

export interface NonceOptions {
  /** HMAC key (keep it secret; rotate by restarting with a new one). */
  readonly secret: Uint8Array | string;
  /** Lifetime of a nonce in seconds (default 3600). */
  readonly ttlSeconds?: number;
}

export interface NonceManager {
  issue(clientAddress: string, now: number): string;
  verify(nonce: string, clientAddress: string, now: number): NonceVerdict;
}

/**
 * A stateless nonce bound to `clientAddress` (pass the client's transport
 * address text, e.g. "203.0.113.5:40000") expiring `ttlSeconds` after `now` (ms).
 */
export function issueNonce(secret: Uint8Array | string, clientAddress: string, now: number, ttlSeconds = 3600): string {
  void secret; void clientAddress; void now; void ttlSeconds;
  throw new Error('TODO');
}

export function verifyNonce(secret: Uint8Array | string, nonce: string, clientAddress: string, now: number): NonceVerdict {
  void secret; void nonce; void clientAddress; void now;
  throw new Error('TODO');
}

export function createNonceManager(opts: NonceOptions): NonceManager {
  void opts;
  throw new Error('TODO');
}
