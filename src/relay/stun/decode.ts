// STUN message decoder. One call per datagram, no state survives the call:
// a malformed datagram can never poison the next one (a lesson from prior
// art). Framing faults drop the datagram; attribute faults in a parseable
// request become a 400/420 reply; nothing throws.
import { ATTR, HEADER_LENGTH, MAGIC_COOKIE, MAX_TEXT_BYTES, MAX_USERNAME_BYTES, errorReason, type StunClass } from './constants.ts';
import { decodeAddressValue } from './address.ts';
import { fingerprintOf } from './integrity.ts';
import type { DatagramKind, DecodeResult, RequestedFamily, StunAttributes, StunDropReason, StunMessage } from './types.ts';
import { copyBytes } from './bytes.ts';

const CLASSES: readonly StunClass[] = ['request', 'indication', 'success', 'error'];

// Stateless per call: without { stream: true } a TextDecoder keeps nothing between calls.
const utf8 = new TextDecoder('utf-8', { fatal: true });

const ATTR_LABEL: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(ATTR).map(([k, v]) => [v, k.toLowerCase().replace(/_/g, '-')]),
);

/** 'stun' (first two bits 00), 'channel-data' (01) or 'other', from the first byte only. */
export function classify(buf: Uint8Array): DatagramKind {
  if (buf.length === 0) return 'other';
  const top = buf[0]! >> 6;
  return top === 0 ? 'stun' : top === 1 ? 'channel-data' : 'other';
}

/** Cheap check: long enough for a header, top bits 00 and the magic cookie in place. */
export function isStun(buf: Uint8Array): boolean {
  return buf.length >= HEADER_LENGTH && buf[0]! >> 6 === 0 && buf[4] === 0x21 && buf[5] === 0x12 && buf[6] === 0xa4 && buf[7] === 0x42;
}

const drop = (reason: StunDropReason): DecodeResult => ({ kind: 'drop', reason });

function text(buf: Uint8Array, at: number, len: number, max: number): string | undefined {
  if (len > max) return undefined;
  try {
    return utf8.decode(buf.subarray(at, at + len));
  } catch {
    return undefined;
  }
}

function family(code: number): RequestedFamily {
  return code === 1 ? 4 : code === 2 ? 6 : 'unsupported';
}

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function errorValue(b: Uint8Array, at: number, len: number): { code: number; reason: string } | undefined {
  if (len < 4) return undefined;
  const cls = b[at + 2]! & 0x07;
  const num = b[at + 3]!;
  if (cls < 3 || cls > 6 || num > 99) return undefined;
  const reason = text(b, at + 4, len - 4, MAX_TEXT_BYTES);
  return reason === undefined ? undefined : { code: cls * 100 + num, reason };
}

/**
 * Decodes one known attribute into `a`. Returns false when it is malformed,
 * true when decoded or ignored; undefined when the type is unknown.
 */
function decodeAttribute(a: StunAttributes, t: number, b: Uint8Array, at: number, len: number, txid: Uint8Array): boolean | undefined {
  switch (t) {
    case ATTR.XOR_PEER_ADDRESS:
    case ATTR.XOR_RELAYED_ADDRESS: {
      const v = decodeAddressValue(b, at, len, txid);
      if (!v) return false;
      const key = t === ATTR.XOR_PEER_ADDRESS ? 'xorPeerAddress' : 'xorRelayedAddress';
      (a[key] ??= []).push(v);
      return true;
    }
    case ATTR.XOR_MAPPED_ADDRESS: {
      const v = decodeAddressValue(b, at, len, txid);
      if (!v) return false;
      a.xorMappedAddress ??= v;
      return true;
    }
    case ATTR.MAPPED_ADDRESS:
    case ATTR.ALTERNATE_SERVER: {
      const v = decodeAddressValue(b, at, len, undefined);
      if (!v) return false;
      if (t === ATTR.MAPPED_ADDRESS) a.mappedAddress ??= v;
      else a.alternateServer ??= v;
      return true;
    }
    case ATTR.USERNAME: {
      const v = text(b, at, len, MAX_USERNAME_BYTES);
      if (v === undefined) return false;
      a.username ??= v;
      return true;
    }
    case ATTR.REALM:
    case ATTR.NONCE:
    case ATTR.SOFTWARE: {
      const v = text(b, at, len, MAX_TEXT_BYTES);
      if (v === undefined) return false;
      const key = t === ATTR.REALM ? 'realm' : t === ATTR.NONCE ? 'nonce' : 'software';
      a[key] ??= v;
      return true;
    }
    case ATTR.ERROR_CODE: {
      const v = errorValue(b, at, len);
      if (!v) return false;
      a.errorCode ??= v;
      return true;
    }
    case ATTR.ADDRESS_ERROR_CODE: {
      const v = errorValue(b, at, len);
      const fam = len >= 1 ? family(b[at]!) : 'unsupported';
      if (!v || fam === 'unsupported') return false;
      a.addressErrorCode ??= { family: fam, ...v };
      return true;
    }
    case ATTR.UNKNOWN_ATTRIBUTES: {
      if (len % 2 !== 0) return false;
      if (!a.unknownAttributes) {
        const list: number[] = [];
        for (let i = 0; i < len; i += 2) list.push(u16(b, at + i));
        a.unknownAttributes = list;
      }
      return true;
    }
    case ATTR.LIFETIME:
      if (len !== 4) return false;
      a.lifetime ??= u32(b, at);
      return true;
    case ATTR.REQUESTED_TRANSPORT:
      if (len !== 4) return false;
      a.requestedTransport ??= b[at]!;
      return true;
    case ATTR.REQUESTED_ADDRESS_FAMILY:
      if (len !== 4) return false;
      a.requestedAddressFamily ??= family(b[at]!);
      return true;
    case ATTR.ADDITIONAL_ADDRESS_FAMILY:
      if (len !== 4) return false;
      a.additionalAddressFamily ??= family(b[at]!);
      return true;
    case ATTR.CHANNEL_NUMBER:
      if (len !== 4) return false;
      a.channelNumber ??= u16(b, at);
      return true;
    case ATTR.DATA:
      a.data ??= b.subarray(at, at + len);
      return true;
    case ATTR.DONT_FRAGMENT:
      if (len !== 0) return false;
      a.dontFragment = true;
      return true;
    case ATTR.EVEN_PORT:
      if (len !== 1) return false;
      a.evenPort ??= { reserve: (b[at]! & 0x80) !== 0 };
      return true;
    case ATTR.RESERVATION_TOKEN:
      if (len !== 8) return false;
      a.reservationToken ??= b.subarray(at, at + 8);
      return true;
    case ATTR.PRIORITY:
      if (len !== 4) return false;
      a.priority ??= u32(b, at);
      return true;
    case ATTR.USE_CANDIDATE:
      if (len !== 0) return false;
      a.useCandidate = true;
      return true;
    case ATTR.ICE_CONTROLLED:
    case ATTR.ICE_CONTROLLING: {
      if (len !== 8) return false;
      const v = (BigInt(u32(b, at)) << 32n) | BigInt(u32(b, at + 4));
      if (t === ATTR.ICE_CONTROLLED) a.iceControlled ??= v;
      else a.iceControlling ??= v;
      return true;
    }
    case ATTR.PASSWORD_ALGORITHM:
      a.passwordAlgorithm ??= b.subarray(at, at + len);
      return true;
    case ATTR.PASSWORD_ALGORITHMS:
      a.passwordAlgorithms ??= b.subarray(at, at + len);
      return true;
    case ATTR.USERHASH:
      if (len !== 32) return false;
      a.userhash ??= b.subarray(at, at + len);
      return true;
    default:
      return undefined;
  }
}

/** Decode one datagram. Never throws. See DecodeResult for the three outcomes. */
export function decodeMessage(buf: Uint8Array): DecodeResult {
  const size = buf.length;
  if (size < HEADER_LENGTH || buf[0]! >> 6 !== 0) return drop('not-stun');
  if (u32(buf, 4) !== MAGIC_COOKIE) return drop('bad-cookie');
  const msgLen = u16(buf, 2);
  if ((msgLen & 3) !== 0) return drop('bad-length');
  const end = HEADER_LENGTH + msgLen;
  if (end > size) return drop('truncated');
  if (end < size) return drop('trailing-bytes');

  const type = u16(buf, 0);
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
  const cls = CLASSES[((type >> 4) & 1) | ((type >> 7) & 2)]!;
  const transactionId = copyBytes(buf, 8, HEADER_LENGTH);

  const attributes: StunAttributes = {};
  const unknown: number[] = [];
  let malformed: string | undefined;
  let sha1: number | undefined;
  let sha256: number | undefined;
  let sha256Length: number | undefined;
  let hasFingerprint = false;

  for (let off = HEADER_LENGTH; off < end; ) {
    if (off + 4 > end) return drop('bad-attribute-length');
    const t = u16(buf, off);
    const len = u16(buf, off + 2);
    const at = off + 4;
    const next = at + ((len + 3) & ~3);
    if (next > end) return drop('bad-attribute-length');

    if (t === ATTR.FINGERPRINT) {
      if (len !== 4) return drop('bad-fingerprint');
      if (next !== end) return drop('fingerprint-not-last');
      if (fingerprintOf(buf.subarray(0, off)) !== u32(buf, at)) return drop('bad-fingerprint');
      hasFingerprint = true;
    } else if (sha256 !== undefined) {
      // RFC 8489 §14.6: after MESSAGE-INTEGRITY-SHA256 only FINGERPRINT counts.
    } else if (t === ATTR.MESSAGE_INTEGRITY_SHA256) {
      if (len < 16 || len > 32 || len % 4 !== 0) malformed ??= 'message-integrity-sha256';
      else { sha256 = off; sha256Length = len; }
    } else if (sha1 !== undefined) {
      // RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY are ignored (except the two above).
    } else if (t === ATTR.MESSAGE_INTEGRITY) {
      if (len !== 20) malformed ??= 'message-integrity';
      else sha1 = off;
    } else {
      const ok = decodeAttribute(attributes, t, buf, at, len, transactionId);
      if (ok === undefined) {
        if (t < 0x8000 && !unknown.includes(t)) unknown.push(t);
      } else if (!ok) {
        malformed ??= ATTR_LABEL[t] ?? 'attribute';
      }
    }
    off = next;
  }

  if (unknown.length > 0 || malformed !== undefined) {
    if (cls !== 'request') return drop(unknown.length > 0 ? 'unknown-attribute' : 'malformed-attribute');
    if (unknown.length > 0) {
      return { kind: 'reply-error', code: 420, reason: errorReason(420), method, transactionId, unknownAttributes: unknown };
    }
    return { kind: 'reply-error', code: 400, reason: errorReason(400), method, transactionId, detail: malformed! };
  }

  const integrity = sha1 === undefined && sha256 === undefined ? undefined : { raw: buf, sha1, sha256, sha256Length };
  const message: StunMessage = { method, cls, transactionId, attributes, integrity, hasFingerprint };
  return { kind: 'message', message };
}
