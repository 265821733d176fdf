// STUN at the byte level, for mutations that keep a message parseable enough
// to reach the deep paths: split into header and attributes, mutate the
// list, join with the lengths made right again, and sign: MESSAGE-INTEGRITY
// (-SHA256) and FINGERPRINT computed over whatever the mutation left, so a
// mutated request still passes authentication and reaches the handlers.
import { ATTR, HEADER_LENGTH, fingerprintOf } from '../../../src/relay/stun/index.ts';
import { hmacWithLength } from '../../../src/relay/stun/integrity.ts';
import { mutateBytes } from './mutate.ts';
import type { Rng } from './rng.ts';

export interface Tlv {
  type: number;
  value: Uint8Array;
}

const u16 = (b: Uint8Array, at: number) => ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);

/** The header and the attributes as far as they can be walked (a cut last one is kept cut). */
export function splitMessage(buf: Uint8Array): { header: Uint8Array; attrs: Tlv[] } {
  const header = buf.slice(0, HEADER_LENGTH);
  const attrs: Tlv[] = [];
  for (let off = HEADER_LENGTH; off + 4 <= buf.length; ) {
    const len = u16(buf, off + 2);
    attrs.push({ type: u16(buf, off), value: buf.slice(off + 4, off + 4 + len) });
    off += 4 + ((len + 3) & ~3);
  }
  return { header, attrs };
}

/** Header + attributes, each padded to 4 bytes, with every length field right. */
export function joinMessage(header: Uint8Array, attrs: readonly Tlv[]): Uint8Array {
  let size = HEADER_LENGTH;
  for (const a of attrs) size += 4 + ((a.value.length + 3) & ~3);
  const out = new Uint8Array(size);
  out.set(header.subarray(0, HEADER_LENGTH));
  let off = HEADER_LENGTH;
  for (const a of attrs) {
    out[off] = a.type >> 8;
    out[off + 1] = a.type & 0xff;
    out[off + 2] = a.value.length >> 8;
    out[off + 3] = a.value.length & 0xff;
    out.set(a.value, off + 4);
    off += 4 + ((a.value.length + 3) & ~3);
  }
  setBodyLength(out, size);
  return out;
}

function setBodyLength(buf: Uint8Array, end: number): void {
  const len = end - HEADER_LENGTH;
  buf[2] = (len >> 8) & 0xff;
  buf[3] = len & 0xff;
}

function appendAttr(buf: Uint8Array, type: number, len: number): { out: Uint8Array; at: number } {
  const out = new Uint8Array(buf.length + 4 + len);
  out.set(buf);
  out[buf.length] = type >> 8;
  out[buf.length + 1] = type & 0xff;
  out[buf.length + 3] = len;
  return { out, at: buf.length };
}

/**
 * Appends MESSAGE-INTEGRITY and/or -SHA256 with `key` and a FINGERPRINT, each
 * computed as RFC 8489 §14.5-14.7 say, over `body` as it is (which need not
 * be a well-formed message: its length field is set, nothing else checked).
 */
export function sign(body: Uint8Array, opts: { key?: Uint8Array; integrity?: 'sha1' | 'sha256' | 'both'; fingerprint?: boolean }): Uint8Array {
  let buf = body;
  if (buf.length < HEADER_LENGTH || buf.length % 4 !== 0) return buf;
  const { key, integrity } = opts;
  if (key && (integrity === 'sha1' || integrity === 'both')) {
    const { out, at } = appendAttr(buf, ATTR.MESSAGE_INTEGRITY, 20);
    out.set(hmacWithLength('sha1', key, out, at, at + 24), at + 4);
    buf = out;
  }
  if (key && (integrity === 'sha256' || integrity === 'both')) {
    const { out, at } = appendAttr(buf, ATTR.MESSAGE_INTEGRITY_SHA256, 32);
    out.set(hmacWithLength('sha256', key, out, at, at + 36), at + 4);
    buf = out;
  }
  if (opts.fingerprint) {
    const { out, at } = appendAttr(buf, ATTR.FINGERPRINT, 4);
    setBodyLength(out, out.length);
    new DataView(out.buffer).setUint32(at + 4, fingerprintOf(out.subarray(0, at)));
    buf = out;
  }
  setBodyLength(buf, buf.length);
  return buf;
}

/** The known attribute types (mutations plant them, and their near misses). */
export const ATTR_TYPES: readonly number[] = Object.values(ATTR);

/** Attribute-list mutations: drop, duplicate, reorder, retype, resize or havoc a value, add an unknown one. */
export function mutateAttributes(rng: Rng, attrs: Tlv[]): Tlv[] {
  const out = attrs.map((a) => ({ ...a }));
  for (let n = rng.few(4); n > 0; n--) {
    const i = rng.int(out.length);
    const a = out[i];
    switch (rng.int(8)) {
      case 0:
        if (a) out.splice(i, 1);
        break;
      case 1:
        if (a) out.splice(rng.int(out.length + 1), 0, { type: a.type, value: rng.chance(0.5) ? a.value : rng.bytes(a.value.length) });
        break;
      case 2:
        if (a) out.splice(i, 1), out.splice(rng.int(out.length + 1), 0, a);
        break;
      case 3:
        if (a) a.type = rng.chance(0.7) ? rng.pick(ATTR_TYPES) : rng.int(0x10000);
        break;
      case 4:
        if (a) a.value = rng.chance(0.5) ? a.value.subarray(0, rng.int(a.value.length + 1)) : Uint8Array.from([...a.value, ...rng.bytes(rng.range(1, 8))]);
        break;
      case 5:
        if (a) a.value = mutateBytes(rng, a.value, { maxLength: a.value.length + 16 }, 3);
        break;
      case 6:
        out.splice(rng.int(out.length + 1), 0, { type: rng.chance(0.5) ? rng.int(0x8000) : rng.pick(ATTR_TYPES), value: rng.bytes(rng.pick([0, 1, 2, 4, 8, 20, rng.int(64)])) });
        break;
      default:
        if (a) a.value = new Uint8Array(rng.pick([0, 1, 3, 4, 5, 8, 12, 16, 20, 24, 32]));
        break;
    }
  }
  return out;
}
