import type { EncodeOptions, StunAttributes, StunMessageInit } from './types.ts';

/**
 * Encode a message. Attributes go out in a fixed order, then
 * MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT as `opts` asks.
 * Throws only on programmer error (bad transaction id, value out of range).
 */
export function encodeMessage(msg: StunMessageInit, opts: EncodeOptions = {}): Uint8Array {
  void msg; void opts;
  throw new Error('TODO');
}

/** An error response to `req` with ERROR-CODE (standard reason unless given) plus `extra` attributes. */
export function errorResponse(req: { method: number; transactionId: Uint8Array }, code: number, extra: StunAttributes = {}, reason?: string): StunMessageInit {
  void req; void code; void extra; void reason;
  throw new Error('TODO');
}

/** A success response to `req` carrying `attributes`. */
export function successResponse(req: { method: number; transactionId: Uint8Array }, attributes: StunAttributes = {}): StunMessageInit {
  return { method: req.method, cls: 'success', transactionId: req.transactionId, attributes };
}

/** 12 random bytes; pass `random` for deterministic tests. */
export function newTransactionId(random?: (n: number) => Uint8Array): Uint8Array {
  void random;
  throw new Error('TODO');
}
