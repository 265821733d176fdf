// MESSAGE-INTEGRITY (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
// (RFC 8489 §14.5-14.7). The HMACs cover the message up to the attribute with
// the header's length field rewritten to end just after that attribute, so
// the header is copied and patched rather than the datagram mutated.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { FINGERPRINT_XOR, HEADER_LENGTH } from './constants.ts';
import type { IntegrityAlgorithm, StunMessage } from './types.ts';
import { copyBytes } from './bytes.ts';

/** CRC-32 (IEEE 802.3) of bytes. */
export function crc32(buf: Uint8Array): number {
  return zlibCrc32(buf) >>> 0;
}

/** FINGERPRINT value for the given bytes: CRC-32 XOR 0x5354554e. */
export function fingerprintOf(buf: Uint8Array): number {
  return (crc32(buf) ^ FINGERPRINT_XOR) >>> 0;
}

/**
 * Long-term credential key MD5(username ":" realm ":" password) (RFC 8489 §9.2.2).
 * No SASLprep/OpaqueString: credentials here are ASCII (REST/Firezone) or
 * configured by the operator, so the strings are hashed as given (UTF-8).
 */
export function longTermKey(username: string, realm: string, password: string): Uint8Array {
  return new Uint8Array(createHash('md5').update(`${username}:${realm}:${password}`, 'utf8').digest());
}

/**
 * HMAC over raw[0..end) with the header length field set so the message
 * appears to end at `lengthEnd` (RFC 8489 §14.5).
 */
export function hmacWithLength(alg: 'sha1' | 'sha256', key: Uint8Array, raw: Uint8Array, end: number, lengthEnd: number): Uint8Array {
  const header = copyBytes(raw, 0, HEADER_LENGTH);
  const len = lengthEnd - HEADER_LENGTH;
  header[2] = (len >> 8) & 0xff;
  header[3] = len & 0xff;
  return new Uint8Array(createHmac(alg, key).update(header).update(raw.subarray(HEADER_LENGTH, end)).digest());
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Check the message's integrity with `key`. MESSAGE-INTEGRITY-SHA256 is
 * checked when present, else MESSAGE-INTEGRITY (RFC 8489 §9.2.4).
 * 'missing' = neither attribute is present. Never throws.
 */
export function verifyIntegrity(msg: StunMessage, key: Uint8Array): { result: 'ok' | 'bad' | 'missing'; algorithm?: IntegrityAlgorithm } {
  const loc = msg.integrity;
  if (!loc) return { result: 'missing' };
  const { raw } = loc;
  if (loc.sha256 !== undefined) {
    const vlen = loc.sha256Length ?? 32;
    const valueAt = loc.sha256 + 4;
    const mac = hmacWithLength('sha256', key, raw, loc.sha256, valueAt + vlen).subarray(0, vlen);
    return { result: equalBytes(mac, raw.subarray(valueAt, valueAt + vlen)) ? 'ok' : 'bad', algorithm: 'sha256' };
  }
  if (loc.sha1 !== undefined) {
    const valueAt = loc.sha1 + 4;
    const mac = hmacWithLength('sha1', key, raw, loc.sha1, valueAt + 20);
    return { result: equalBytes(mac, raw.subarray(valueAt, valueAt + 20)) ? 'ok' : 'bad', algorithm: 'sha1' };
  }
  return { result: 'missing' };
}
