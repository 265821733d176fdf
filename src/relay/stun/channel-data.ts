// ChannelData (RFC 8656 §12.4): 2-byte channel number, 2-byte length, payload.
// Over UDP the payload need not be padded, but a sender may pad to 4 bytes,
// so up to 3 bytes after the payload are accepted and anything more dropped.
import { CHANNEL_MAX, CHANNEL_MIN } from './constants.ts';
import type { ChannelDataResult } from './types.ts';
import { allocTransient } from './slab.ts';

/** Decode a ChannelData datagram received over UDP. Never throws. */
export function decodeChannelData(buf: Uint8Array): ChannelDataResult {
  if (buf.length < 4) return { kind: 'drop', reason: 'too-short' };
  if (buf[0]! >> 6 !== 1) return { kind: 'drop', reason: 'not-channel-data' };
  const channel = (buf[0]! << 8) | buf[1]!;
  if (channel > CHANNEL_MAX) return { kind: 'drop', reason: 'bad-channel' };
  const len = (buf[2]! << 8) | buf[3]!;
  const extra = buf.length - 4 - len;
  if (extra < 0) return { kind: 'drop', reason: 'truncated' };
  if (extra > 3) return { kind: 'drop', reason: 'trailing-bytes' };
  return { kind: 'channel-data', channel, data: buf.subarray(4, 4 + len) };
}

/**
 * Build a ChannelData message; `pad` adds zero padding to a multiple of 4
 * (required over TCP, optional over UDP). The result may share its
 * ArrayBuffer with other recent ones (slab.ts): copy it to keep it for long.
 */
export function encodeChannelData(channel: number, data: Uint8Array, opts: { pad?: boolean } = {}): Uint8Array {
  if (!Number.isInteger(channel) || channel < CHANNEL_MIN || channel > CHANNEL_MAX) throw new RangeError(`channel out of range: ${channel}`);
  if (data.length > 0xffff) throw new RangeError('ChannelData payload over 65535 bytes');
  const size = 4 + (opts.pad ? (data.length + 3) & ~3 : data.length);
  const out = allocTransient(size);
  out[0] = channel >> 8; out[1] = channel & 0xff;
  out[2] = data.length >> 8; out[3] = data.length & 0xff;
  out.set(data, 4);
  return out;
}
