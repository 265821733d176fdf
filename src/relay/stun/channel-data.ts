import type { ChannelDataResult } from './types.ts';

/** Decode a ChannelData datagram (RFC 8656 §12.4) received over UDP. Never throws. */
export function decodeChannelData(buf: Uint8Array): ChannelDataResult {
  void buf;
  return { kind: 'drop', reason: 'too-short' };
}

/** Build a ChannelData message; `pad` adds zero padding to a multiple of 4 (required over TCP, optional over UDP). */
export function encodeChannelData(channel: number, data: Uint8Array, opts: { pad?: boolean } = {}): Uint8Array {
  void channel; void data; void opts;
  throw new Error('TODO');
}
