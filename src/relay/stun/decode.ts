// STUN message decoder. One call per datagram, no state survives the call:
// a malformed datagram can never poison the next one (a lesson from prior
// art). Framing faults drop the datagram; attribute faults in a parseable
// request become a 400/420 reply; nothing throws.
import { isUtf8 } from 'node:buffer';
import { ATTR, HEADER_LENGTH, MAGIC_COOKIE, MAX_TEXT_BYTES, MAX_UNKNOWN_ATTRIBUTES, MAX_USERNAME_BYTES, errorReason, type StunClass } from './constants.ts';
import { decodeAddressValue } from './address.ts';
import { fingerprintOf } from './integrity.ts';
import type { DatagramKind, DecodeResult, RequestedFamily, StunAttributes, StunDropReason, StunMessage } from './types.ts';
import { copyBytes } from './bytes.ts';

const CLASSES: readonly StunClass[] = ['request', 'indication', 'success', 'error'];

// Stateless per call: without { stream: true } a TextDecoder keeps nothing between calls.
// Not fatal: text() validates with isUtf8 first, because a fatal decoder
// throws on bad bytes and an exception (stack capture) costs more than
// decoding a whole request.
const utf8 = new TextDecoder('utf-8');

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
  const v = buf.subarray(at, at + len);
  return isUtf8(v) ? utf8.decode(v) : undefined;
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

/** Decodes one attribute value into `a`; false when the value is malformed. */
type Decode = (a: StunAttributes, b: Uint8Array, at: number, len: number, txid: Uint8Array) => boolean;

/** Stores `v` under `k`; false (malformed) when `v` is undefined. */
function put<K extends keyof StunAttributes>(a: StunAttributes, k: K, v: StunAttributes[K] | undefined): boolean {
  if (v === undefined) return false;
  a[k] = v;
  return true;
}

const address = (k: 'mappedAddress' | 'alternateServer'): Decode => (a, b, at, len) => put(a, k, decodeAddressValue(b, at, len, undefined));
const word = (k: 'lifetime' | 'priority'): Decode => (a, b, at, len) => len === 4 && put(a, k, u32(b, at));
const familyOf = (k: 'requestedAddressFamily' | 'additionalAddressFamily'): Decode => (a, b, at, len) => len === 4 && put(a, k, family(b[at]!));
const bytes = (k: 'data' | 'passwordAlgorithm' | 'passwordAlgorithms'): Decode => (a, b, at, len) => put(a, k, b.subarray(at, at + len));
const flag = (k: 'dontFragment' | 'useCandidate'): Decode => (a, _b, _at, len) => len === 0 && put(a, k, true);
const tieBreaker = (k: 'iceControlled' | 'iceControlling'): Decode => (a, b, at, len) => len === 8 && put(a, k, (BigInt(u32(b, at)) << 32n) | BigInt(u32(b, at + 4)));
const string = (k: 'username' | 'realm' | 'nonce' | 'software', max: number): Decode => (a, b, at, len) => put(a, k, text(b, at, len, max));
/** CreatePermission carries one XOR-PEER-ADDRESS per peer, a dual-stack Allocate response two XOR-RELAYED-ADDRESS. */
const addressList = (k: 'xorPeerAddress' | 'xorRelayedAddress'): Decode => (a, b, at, len, txid) => {
  const v = decodeAddressValue(b, at, len, txid);
  if (!v) return false;
  (a[k] ??= []).push(v);
  return true;
};

/** Attributes every occurrence of which counts. */
const REPEATED: ReadonlyArray<readonly [number, Decode]> = [
  [ATTR.XOR_PEER_ADDRESS, addressList('xorPeerAddress')],
  [ATTR.XOR_RELAYED_ADDRESS, addressList('xorRelayedAddress')],
];

/**
 * Attributes of which only the first occurrence is decoded: later ones are
 * skipped unread (RFC 8489 §14 lets a receiver ignore duplicates), so a
 * datagram of 16k copies costs a header read each, not a value decode each.
 */
const SINGLE: ReadonlyArray<readonly [number, Decode]> = [
  [ATTR.MAPPED_ADDRESS, address('mappedAddress')],
  [ATTR.ALTERNATE_SERVER, address('alternateServer')],
  [ATTR.XOR_MAPPED_ADDRESS, (a, b, at, len, txid) => put(a, 'xorMappedAddress', decodeAddressValue(b, at, len, txid))],
  [ATTR.USERNAME, string('username', MAX_USERNAME_BYTES)],
  [ATTR.REALM, string('realm', MAX_TEXT_BYTES)],
  [ATTR.NONCE, string('nonce', MAX_TEXT_BYTES)],
  [ATTR.SOFTWARE, string('software', MAX_TEXT_BYTES)],
  [ATTR.ERROR_CODE, (a, b, at, len) => put(a, 'errorCode', errorValue(b, at, len))],
  [ATTR.ADDRESS_ERROR_CODE, (a, b, at, len) => {
    const v = errorValue(b, at, len);
    if (v === undefined) return false;
    const fam = family(b[at]!);
    return fam !== 'unsupported' && put(a, 'addressErrorCode', { family: fam, ...v });
  }],
  [ATTR.UNKNOWN_ATTRIBUTES, (a, b, at, len) => {
    if (len % 2 !== 0) return false;
    const list: number[] = [];
    for (let i = 0; i < len; i += 2) list.push(u16(b, at + i));
    return put(a, 'unknownAttributes', list);
  }],
  [ATTR.LIFETIME, word('lifetime')],
  [ATTR.REQUESTED_TRANSPORT, (a, b, at, len) => len === 4 && put(a, 'requestedTransport', b[at]!)],
  [ATTR.REQUESTED_ADDRESS_FAMILY, familyOf('requestedAddressFamily')],
  [ATTR.ADDITIONAL_ADDRESS_FAMILY, familyOf('additionalAddressFamily')],
  [ATTR.CHANNEL_NUMBER, (a, b, at, len) => len === 4 && put(a, 'channelNumber', u16(b, at))],
  [ATTR.DATA, bytes('data')],
  [ATTR.DONT_FRAGMENT, flag('dontFragment')],
  [ATTR.EVEN_PORT, (a, b, at, len) => len === 1 && put(a, 'evenPort', { reserve: (b[at]! & 0x80) !== 0 })],
  [ATTR.RESERVATION_TOKEN, (a, b, at, len) => len === 8 && put(a, 'reservationToken', b.subarray(at, at + 8))],
  [ATTR.PRIORITY, word('priority')],
  [ATTR.USE_CANDIDATE, flag('useCandidate')],
  [ATTR.ICE_CONTROLLED, tieBreaker('iceControlled')],
  [ATTR.ICE_CONTROLLING, tieBreaker('iceControlling')],
  [ATTR.PASSWORD_ALGORITHM, bytes('passwordAlgorithm')],
  [ATTR.PASSWORD_ALGORITHMS, bytes('passwordAlgorithms')],
  [ATTR.USERHASH, (a, b, at, len) => len === 32 && put(a, 'userhash', b.subarray(at, at + 32))],
];

/** How to decode a known attribute; `once` is its bit in a message's seen-mask (0: every occurrence counts). */
interface Known {
  readonly once: number;
  readonly decode: Decode;
}

// Known attributes by type. Two dense tables, not a Map: every known type is
// below 0x40 or 0x8000 + 0x40, and a Map miss costs ~50 ns, ten times an
// array read, while a flood of distinct unknown types is nothing but misses.
const TABLE = 0x40;
const LOW = new Array<Known | undefined>(TABLE).fill(undefined);
const HIGH = new Array<Known | undefined>(TABLE).fill(undefined);
if (SINGLE.length > 32) throw new Error('decode.ts: more single-valued attributes than bits in the seen-mask');
for (const [t, once, decode] of [...REPEATED.map(([t, d]) => [t, 0, d] as const), ...SINGLE.map(([t, d], i) => [t, 1 << i, d] as const)]) {
  if ((t & 0x7fff) >= TABLE) throw new Error(`decode.ts: attribute type 0x${t.toString(16)} outside the known-type tables`);
  (t < 0x8000 ? LOW : HIGH)[t & 0x7fff] = { once, decode };
}

function knownAttribute(t: number): Known | undefined {
  const i = t & 0x7fff;
  return i >= TABLE ? undefined : t < 0x8000 ? LOW[i] : HIGH[i];
}

/**
 * Work done by decodeMessage, summed over all calls: attributes walked,
 * values decoded, and comparisons made to keep the unknown-attribute list
 * distinct. Instrumentation, so a test can assert the work grows linearly
 * with the datagram (no timing); it never changes a result.
 */
export const decodeWork = { attributes: 0, values: 0, comparisons: 0 };

/** Adds comprehension-required type `t` to `list` unless already there or the list is full. */
function noteUnknown(list: number[], t: number): void {
  if (list.length >= MAX_UNKNOWN_ATTRIBUTES) return;
  for (let i = 0; i < list.length; i++) {
    decodeWork.comparisons++;
    if (list[i] === t) return;
  }
  list.push(t);
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
  // The first MAX_UNKNOWN_ATTRIBUTES distinct unknown comprehension-required types, in order.
  const unknown: number[] = [];
  let malformed: string | undefined;
  let seen = 0;
  let sha1: number | undefined;
  let sha256: number | undefined;
  let sha256Length: number | undefined;
  let hasFingerprint = false;

  for (let off = HEADER_LENGTH; off < end; ) {
    if (off + 4 > end) return drop('bad-attribute-length');
    decodeWork.attributes++;
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
      const known = knownAttribute(t);
      if (known === undefined) {
        if (t < 0x8000) noteUnknown(unknown, t);
      } else if (unknown.length > 0 || malformed !== undefined || (seen & known.once) !== 0) {
        // Either the answer is already a 420/400 (or a drop), which no value can
        // change, or this is a repeat of a single-valued attribute: skip it unread.
      } else {
        seen |= known.once;
        decodeWork.values++;
        if (!known.decode(attributes, buf, at, len, transactionId)) malformed = ATTR_LABEL[t] ?? 'attribute';
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
