import type { IntegrityAlgorithm, StunMessage } from './types.ts';

/**
 * Check the message's integrity with `key`. MESSAGE-INTEGRITY-SHA256 is
 * checked when present, else MESSAGE-INTEGRITY (RFC 8489 §9.2.4).
 * 'missing' = neither attribute is present.
 */
export function verifyIntegrity(msg: StunMessage, key: Uint8Array): { result: 'ok' | 'bad' | 'missing'; algorithm?: IntegrityAlgorithm } {
  void msg; void key;
  throw new Error('TODO');
}

/** Long-term credential key MD5(username ":" realm ":" password) (RFC 8489 §9.2.2), without SASLprep. */
export function longTermKey(username: string, realm: string, password: string): Uint8Array {
  void username; void realm; void password;
  throw new Error('TODO');
}

/** CRC-32 (IEEE) of bytes. */
export function crc32(buf: Uint8Array): number {
  void buf;
  throw new Error('TODO');
}

/** FINGERPRINT value for the given bytes: CRC-32 XOR 0x5354554e. */
export function fingerprintOf(buf: Uint8Array): number {
  return (crc32(buf) ^ 0x5354554e) >>> 0;
}
