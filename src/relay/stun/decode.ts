import type { DatagramKind, DecodeResult } from './types.ts';

/** Decode one datagram. Never throws. See DecodeResult for the three outcomes. */
export function decodeMessage(buf: Uint8Array): DecodeResult {
  void buf;
  return { kind: 'drop', reason: 'not-stun' };
}

/** 'stun' (first two bits 00), 'channel-data' (01) or 'other', from the first byte only. */
export function classify(buf: Uint8Array): DatagramKind {
  if (buf.length === 0) return 'other';
  const top = buf[0]! >> 6;
  return top === 0 ? 'stun' : top === 1 ? 'channel-data' : 'other';
}

/** Cheap check: long enough for a header, top bits 00 and the magic cookie in place. */
export function isStun(buf: Uint8Array): boolean {
  return buf.length >= 20 && buf[0]! >> 6 === 0 && buf[4] === 0x21 && buf[5] === 0x12 && buf[6] === 0xa4 && buf[7] === 0x42;
}
