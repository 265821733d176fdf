// Long-term credential check of a TURN request (RFC 8489 §9.2.4), in the
// RFC's order: integrity present -> USERNAME/REALM/NONCE present -> nonce
// valid and fresh -> user known -> MESSAGE-INTEGRITY(-SHA256) correct.
// Returns the key and algorithm the response must be protected with, or the
// error to answer (REALM and a fresh NONCE attached where the RFC asks).
// The credential is looked up on every request, not only at Allocate: an
// expired REST or Firezone username gets 401 on its Refresh too, so a
// short-lived credential cannot keep its allocation alive for ever.
// `now` is wall-clock ms: credential expiries and nonces are absolute times.
import { ERROR, verifyIntegrity, longTermKey, type IntegrityAlgorithm, type StunAttributes, type StunMessage } from '../stun/index.ts';
import type { CredentialSource, NonceManager } from '../auth/index.ts';
import type { TransportAddress } from './types.ts';

export interface AuthContext {
  readonly username: string;
  readonly key: Uint8Array;
  readonly algorithm: IntegrityAlgorithm;
}

export type AuthVerdict =
  | { readonly kind: 'ok'; readonly auth: AuthContext }
  | {
      readonly kind: 'reject';
      readonly code: 400 | 401 | 438;
      readonly attributes: StunAttributes;
      /**
       * The per-source budget the answer is charged to: 'unauthenticated'
       * unless the request carried a nonce we issued to this address (a 438),
       * which shows the source receives our answers (it is not spoofed).
       */
      readonly limit: RateLimitKind;
    };

export type RateLimitKind = 'unauthenticated' | 'authenticated';

export interface AuthEnv {
  readonly realm: string;
  readonly credentials: CredentialSource;
  readonly nonces: NonceManager;
  /** The allocation on this 5-tuple remembers its user's key (no MD5 per request). */
  readonly known?: { readonly username: string; readonly key: Uint8Array };
}

export function authenticate(msg: StunMessage, client: TransportAddress, now: number, env: AuthEnv): AuthVerdict {
  const challenge = (code: 401 | 438, limit: RateLimitKind): AuthVerdict => ({
    kind: 'reject',
    code,
    attributes: { realm: env.realm, nonce: env.nonces.issue(client.address, now) },
    limit,
  });
  if (msg.integrity === undefined) return challenge(ERROR.UNAUTHENTICATED, 'unauthenticated');
  const { username, realm, nonce } = msg.attributes;
  if (username === undefined || realm === undefined || nonce === undefined) {
    return { kind: 'reject', code: ERROR.BAD_REQUEST, attributes: {}, limit: 'unauthenticated' };
  }
  const verdict = env.nonces.verify(nonce, client.address, now);
  if (verdict === 'invalid') return challenge(ERROR.UNAUTHENTICATED, 'unauthenticated');
  if (verdict === 'stale') return challenge(ERROR.STALE_NONCE, 'authenticated');
  // Unknown, or expired since the allocation was made: 401 either way.
  const password = env.credentials.passwordFor(username, now);
  if (password === undefined) return challenge(ERROR.UNAUTHENTICATED, 'unauthenticated');
  const key = env.known?.username === username ? env.known.key : longTermKey(username, env.realm, password);
  const check = verifyIntegrity(msg, key);
  if (check.result !== 'ok') return challenge(ERROR.UNAUTHENTICATED, 'unauthenticated');
  return { kind: 'ok', auth: { username, key, algorithm: check.algorithm ?? 'sha1' } };
}
