// What a request handler decided, and the one encoding of it: the integrity
// the request earned (none before authentication; SHA-1, or both when the
// client used SHA-256, RFC 8489 §9.2.4), SOFTWARE, FINGERPRINT.
import {
  encodeMessage,
  errorResponse,
  successResponse,
  type IntegrityAlgorithm,
  type StunAttributes,
  type StunMessage,
  type StunMessageInit,
} from '../stun/index.ts';
import type { AuthContext } from './auth.ts';
import type { RelayRefusal } from '../../shared/reasons.ts';

export type Reply =
  | { readonly kind: 'success'; readonly attributes: StunAttributes }
  /** `refused`: the configured limit that made this an error, counted in ServerStats.refused. */
  | { readonly kind: 'error'; readonly code: number; readonly attributes?: StunAttributes; readonly refused?: RelayRefusal }
  | { readonly kind: 'deferred' }; // answered later (Allocate waiting for its ports) or already

export function encodeReply(req: StunMessage, reply: Reply, auth: AuthContext | undefined, software: string | undefined): Uint8Array {
  let init: StunMessageInit;
  if (reply.kind === 'error') {
    const extra: StunAttributes = { ...(reply.attributes ?? {}) };
    if (software !== undefined) extra.software = software;
    init = errorResponse(req, reply.code, extra);
  } else {
    const attrs: StunAttributes = reply.kind === 'success' ? { ...reply.attributes } : {};
    if (software !== undefined) attrs.software = software;
    init = successResponse(req, attrs);
  }
  const integrity: IntegrityAlgorithm | 'both' | undefined = auth === undefined ? undefined : auth.algorithm === 'sha256' ? 'both' : 'sha1';
  return encodeMessage(init, auth === undefined ? { fingerprint: true } : { key: auth.key, integrity: integrity!, fingerprint: true });
}
