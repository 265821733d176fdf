// Stateless nonces (RFC 8489 §9.2): the nonce carries its own expiry and an
// HMAC over that expiry and the client's address, so the server keeps no
// nonce table and a nonce handed to one address is useless from another.
// Format (printable, 44 chars): <expiry ms, base36>.<first 16 bytes of HMAC-SHA256, base64url>
import { createHmac, timingSafeEqual } from 'node:crypto';

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

const MAC_BYTES = 16;

function mac(secret: Uint8Array | string, expiryText: string, clientAddress: string): Buffer {
  return createHmac('sha256', secret).update(`${expiryText}|${clientAddress}`, 'utf8').digest().subarray(0, MAC_BYTES);
}

/**
 * A stateless nonce bound to `clientAddress` (pass the client's transport
 * address text, e.g. "203.0.113.5:40000") expiring `ttlSeconds` after `now` (ms).
 */
export function issueNonce(secret: Uint8Array | string, clientAddress: string, now: number, ttlSeconds = 3600): string {
  const expiryText = Math.floor(now + ttlSeconds * 1000).toString(36);
  return `${expiryText}.${mac(secret, expiryText, clientAddress).toString('base64url')}`;
}

/** Checks signature and binding first (-> 'invalid'), then expiry (-> 'stale'). Never throws. */
export function verifyNonce(secret: Uint8Array | string, nonce: string, clientAddress: string, now: number): NonceVerdict {
  if (nonce.length > 64) return 'invalid';
  const dot = nonce.indexOf('.');
  if (dot <= 0) return 'invalid';
  const expiryText = nonce.slice(0, dot);
  const macText = nonce.slice(dot + 1);
  if (!/^[0-9a-z]{1,12}$/.test(expiryText) || !/^[A-Za-z0-9_-]{22}$/.test(macText)) return 'invalid';
  // Compare the text, not decoded bytes: base64 decoders ignore the spare low
  // bits of the last character, which would let a tampered nonce through.
  const expected = Buffer.from(mac(secret, expiryText, clientAddress).toString('base64url'));
  if (!timingSafeEqual(Buffer.from(macText), expected)) return 'invalid';
  return parseInt(expiryText, 36) >= now ? 'ok' : 'stale';
}

export function createNonceManager(opts: NonceOptions): NonceManager {
  const ttl = opts.ttlSeconds ?? 3600;
  if (!(ttl > 0)) throw new Error('nonce ttlSeconds must be positive');
  if (opts.secret.length === 0) throw new Error('nonce secret must not be empty');
  return {
    issue: (clientAddress, now) => issueNonce(opts.secret, clientAddress, now, ttl),
    verify: (nonce, clientAddress, now) => verifyNonce(opts.secret, nonce, clientAddress, now),
  };
}
