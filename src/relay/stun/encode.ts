// STUN message encoder. Attributes are written in one fixed order (chosen so
// the RFC 5769 vectors come out byte for byte), then MESSAGE-INTEGRITY,
// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, each computed over what precedes
// it with the length field covering it.
import { randomBytes } from 'node:crypto';
import { ATTR, HEADER_LENGTH, MAGIC_COOKIE, TRANSACTION_ID_LENGTH, errorReason } from './constants.ts';
import { encodeAddressValue } from './address.ts';
import { fingerprintOf, hmacWithLength } from './integrity.ts';
import type { EncodeOptions, ErrorCodeValue, RequestedFamily, StunAttributes, StunMessageInit } from './types.ts';

const CLASS_BITS = { request: 0x0000, indication: 0x0010, success: 0x0100, error: 0x0110 } as const;
const utf8 = new TextEncoder();

function u32(v: number): Uint8Array {
  return new Uint8Array([(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
}

function u64(v: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, v));
  return out;
}

function familyCode(f: RequestedFamily): number {
  return f === 4 ? 0x01 : f === 6 ? 0x02 : 0x03; // 'unsupported' encodes as an unassigned code, for tests
}

function errorValue(e: ErrorCodeValue, prefix = 0): Uint8Array {
  if (!Number.isInteger(e.code) || e.code < 300 || e.code > 699) throw new RangeError(`error code out of range: ${e.code}`);
  const reason = utf8.encode(e.reason);
  const out = new Uint8Array(4 + reason.length);
  out[0] = prefix;
  out[2] = Math.floor(e.code / 100);
  out[3] = e.code % 100;
  out.set(reason, 4);
  return out;
}

function checkedU16(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`${name} out of range: ${v}`);
  return v;
}

/** The attributes of `a` as [type, value] in wire order (integrity/fingerprint excluded). */
function attributeList(a: StunAttributes, txid: Uint8Array): Array<[number, Uint8Array]> {
  const out: Array<[number, Uint8Array]> = [];
  const push = (t: number, v: Uint8Array) => out.push([t, v]);
  if (a.software !== undefined) push(ATTR.SOFTWARE, utf8.encode(a.software));
  if (a.priority !== undefined) push(ATTR.PRIORITY, u32(a.priority));
  if (a.iceControlled !== undefined) push(ATTR.ICE_CONTROLLED, u64(a.iceControlled));
  if (a.iceControlling !== undefined) push(ATTR.ICE_CONTROLLING, u64(a.iceControlling));
  if (a.useCandidate) push(ATTR.USE_CANDIDATE, new Uint8Array(0));
  if (a.errorCode) push(ATTR.ERROR_CODE, errorValue(a.errorCode));
  if (a.unknownAttributes) {
    const v = new Uint8Array(a.unknownAttributes.length * 2);
    a.unknownAttributes.forEach((t, i) => { checkedU16('attribute type', t); v[i * 2] = t >> 8; v[i * 2 + 1] = t & 0xff; });
    push(ATTR.UNKNOWN_ATTRIBUTES, v);
  }
  for (const r of a.xorRelayedAddress ?? []) push(ATTR.XOR_RELAYED_ADDRESS, encodeAddressValue(r, txid));
  if (a.xorMappedAddress) push(ATTR.XOR_MAPPED_ADDRESS, encodeAddressValue(a.xorMappedAddress, txid));
  if (a.mappedAddress) push(ATTR.MAPPED_ADDRESS, encodeAddressValue(a.mappedAddress, undefined));
  if (a.alternateServer) push(ATTR.ALTERNATE_SERVER, encodeAddressValue(a.alternateServer, undefined));
  if (a.lifetime !== undefined) push(ATTR.LIFETIME, u32(a.lifetime));
  if (a.requestedTransport !== undefined) push(ATTR.REQUESTED_TRANSPORT, new Uint8Array([a.requestedTransport & 0xff, 0, 0, 0]));
  if (a.requestedAddressFamily !== undefined) push(ATTR.REQUESTED_ADDRESS_FAMILY, new Uint8Array([familyCode(a.requestedAddressFamily), 0, 0, 0]));
  if (a.additionalAddressFamily !== undefined) push(ATTR.ADDITIONAL_ADDRESS_FAMILY, new Uint8Array([familyCode(a.additionalAddressFamily), 0, 0, 0]));
  if (a.addressErrorCode) push(ATTR.ADDRESS_ERROR_CODE, errorValue(a.addressErrorCode, familyCode(a.addressErrorCode.family)));
  if (a.evenPort) push(ATTR.EVEN_PORT, new Uint8Array([a.evenPort.reserve ? 0x80 : 0]));
  if (a.dontFragment) push(ATTR.DONT_FRAGMENT, new Uint8Array(0));
  if (a.reservationToken) {
    if (a.reservationToken.length !== 8) throw new RangeError('RESERVATION-TOKEN must be 8 bytes');
    push(ATTR.RESERVATION_TOKEN, a.reservationToken);
  }
  if (a.channelNumber !== undefined) {
    const c = checkedU16('channel number', a.channelNumber);
    push(ATTR.CHANNEL_NUMBER, new Uint8Array([c >> 8, c & 0xff, 0, 0]));
  }
  for (const p of a.xorPeerAddress ?? []) push(ATTR.XOR_PEER_ADDRESS, encodeAddressValue(p, txid));
  if (a.data) push(ATTR.DATA, a.data);
  if (a.username !== undefined) push(ATTR.USERNAME, utf8.encode(a.username));
  if (a.nonce !== undefined) push(ATTR.NONCE, utf8.encode(a.nonce));
  if (a.realm !== undefined) push(ATTR.REALM, utf8.encode(a.realm));
  if (a.passwordAlgorithms) push(ATTR.PASSWORD_ALGORITHMS, a.passwordAlgorithms);
  if (a.passwordAlgorithm) push(ATTR.PASSWORD_ALGORITHM, a.passwordAlgorithm);
  if (a.userhash) push(ATTR.USERHASH, a.userhash);
  return out;
}

function writeAttrHeader(out: Uint8Array, at: number, type: number, len: number): void {
  out[at] = type >> 8; out[at + 1] = type & 0xff;
  out[at + 2] = len >> 8; out[at + 3] = len & 0xff;
}

/**
 * Encode a message. Attributes go out in a fixed order, then
 * MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT as `opts` asks.
 * Throws only on programmer error (bad transaction id, value out of range,
 * integrity asked without a key, message over 64 KiB).
 */
export function encodeMessage(msg: StunMessageInit, opts: EncodeOptions = {}): Uint8Array {
  const txid = msg.transactionId;
  if (txid.length !== TRANSACTION_ID_LENGTH) throw new RangeError('transaction id must be 12 bytes');
  if (!Number.isInteger(msg.method) || msg.method < 0 || msg.method > 0xfff) throw new RangeError(`method out of range: ${msg.method}`);
  const integrity = opts.integrity ?? (opts.key ? 'sha1' : undefined);
  if (integrity && !opts.key) throw new Error('integrity requested without a key');
  const withSha1 = integrity === 'sha1' || integrity === 'both';
  const withSha256 = integrity === 'sha256' || integrity === 'both';
  const pad = opts.padding ?? 0;

  const attrs = attributeList(msg.attributes, txid);
  let bodyLen = 0;
  for (const [, v] of attrs) {
    if (v.length > 0xffff) throw new RangeError('attribute too long');
    bodyLen += 4 + ((v.length + 3) & ~3);
  }
  const total = HEADER_LENGTH + bodyLen + (withSha1 ? 24 : 0) + (withSha256 ? 36 : 0) + (opts.fingerprint ? 8 : 0);
  if (total - HEADER_LENGTH > 0xffff) throw new RangeError('message too long');

  const out = new Uint8Array(total);
  const m = msg.method;
  const type = (m & 0x000f) | ((m & 0x0070) << 1) | ((m & 0x0f80) << 2) | CLASS_BITS[msg.cls];
  out[0] = type >> 8; out[1] = type & 0xff;
  out[4] = (MAGIC_COOKIE >>> 24) & 0xff; out[5] = (MAGIC_COOKIE >>> 16) & 0xff;
  out[6] = (MAGIC_COOKIE >>> 8) & 0xff; out[7] = MAGIC_COOKIE & 0xff;
  out.set(txid, 8);

  let off = HEADER_LENGTH;
  for (const [t, v] of attrs) {
    writeAttrHeader(out, off, t, v.length);
    out.set(v, off + 4);
    const padded = (v.length + 3) & ~3;
    if (pad !== 0) out.fill(pad, off + 4 + v.length, off + 4 + padded);
    off += 4 + padded;
  }
  const setLength = (end: number) => { const l = end - HEADER_LENGTH; out[2] = l >> 8; out[3] = l & 0xff; };
  if (withSha1) {
    const mac = hmacWithLength('sha1', opts.key!, out, off, off + 24);
    writeAttrHeader(out, off, ATTR.MESSAGE_INTEGRITY, 20);
    out.set(mac, off + 4);
    off += 24;
  }
  if (withSha256) {
    const mac = hmacWithLength('sha256', opts.key!, out, off, off + 36);
    writeAttrHeader(out, off, ATTR.MESSAGE_INTEGRITY_SHA256, 32);
    out.set(mac, off + 4);
    off += 36;
  }
  if (opts.fingerprint) {
    setLength(off + 8);
    const fp = fingerprintOf(out.subarray(0, off));
    writeAttrHeader(out, off, ATTR.FINGERPRINT, 4);
    out.set(u32(fp), off + 4);
    off += 8;
  }
  setLength(off);
  return out;
}

/** An error response to `req` with ERROR-CODE (standard reason unless given) plus `extra` attributes. */
export function errorResponse(req: { readonly method: number; readonly transactionId: Uint8Array }, code: number, extra: StunAttributes = {}, reason?: string): StunMessageInit {
  return { method: req.method, cls: 'error', transactionId: req.transactionId, attributes: { ...extra, errorCode: { code, reason: reason ?? errorReason(code) } } };
}

/** A success response to `req` carrying `attributes`. */
export function successResponse(req: { readonly method: number; readonly transactionId: Uint8Array }, attributes: StunAttributes = {}): StunMessageInit {
  return { method: req.method, cls: 'success', transactionId: req.transactionId, attributes };
}

/** 12 random bytes; pass `random` for deterministic tests. */
export function newTransactionId(random: (n: number) => Uint8Array = (n) => new Uint8Array(randomBytes(n))): Uint8Array {
  const id = random(TRANSACTION_ID_LENGTH);
  if (id.length !== TRANSACTION_ID_LENGTH) throw new RangeError('random source returned the wrong length');
  return id;
}
