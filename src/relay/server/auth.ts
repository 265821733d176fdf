// Long-term credential check of a TURN request (RFC 8489 §9.2.4), in the
// RFC's order: integrity present -> USERNAME/REALM/NONCE present -> nonce
// valid and fresh -> user known -> MESSAGE-INTEGRITY(-SHA256) correct.
// Returns the key and algorithm the response must be protected with, or the
// error to answer (REALM and a fresh NONCE attached where the RFC asks).
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
      /** Unauthenticated traffic: subject to the per-source rate limit. */
      readonly limited: boolean;
    };

export interface AuthEnv {
  readonly realm: string;
  readonly credentials: CredentialSource;
  readonly nonces: NonceManager;
  /** The allocation on this 5-tuple remembers its user's key (no password lookup). */
  readonly known?: { readonly username: string; readonly key: Uint8Array };
}

export function authenticate(msg: StunMessage, client: TransportAddress, now: number, env: AuthEnv): AuthVerdict {
  const challenge = (code: 401 | 438, limited: boolean): AuthVerdict => ({
    kind: 'reject',
    code,
    attributes: { realm: env.realm, nonce: env.nonces.issue(client.address, now) },
    limited,
  });
  if (msg.integrity === undefined) return challenge(ERROR.UNAUTHENTICATED, true);
  const { username, realm, nonce } = msg.attributes;
  if (username === undefined || realm === undefined || nonce === undefined) {
    return { kind: 'reject', code: ERROR.BAD_REQUEST, attributes: {}, limited: true };
  }
  const verdict = env.nonces.verify(nonce, client.address, now);
  if (verdict === 'invalid') return challenge(ERROR.UNAUTHENTICATED, true);
  if (verdict === 'stale') return challenge(ERROR.STALE_NONCE, false);
  let key: Uint8Array;
  if (env.known !== undefined && env.known.username === username) {
    key = env.known.key;
  } else {
    const password = env.credentials.passwordFor(username, now);
    if (password === undefined) return challenge(ERROR.UNAUTHENTICATED, true);
    key = longTermKey(username, env.realm, password);
  }
  const check = verifyIntegrity(msg, key);
  if (check.result !== 'ok') return challenge(ERROR.UNAUTHENTICATED, true);
  return { kind: 'ok', auth: { username, key, algorithm: check.algorithm ?? 'sha1' } };
}
