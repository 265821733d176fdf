// ChannelData for the server with a configurable top channel number.
// RFC 8656 §12 allows 0x4000-0x4FFF; RFC 5766 allowed 0x4000-0x7FFF, and
// clients written to it (coturn's turnutils_uclient picks channels at random
// up to 0x7FFF) still send those. The codec implements RFC 8656 strictly; this
// wrapper widens the range when the operator asks for RFC 5766 compatibility.
import { CHANNEL_MAX, CHANNEL_MIN, allocTransient, decodeChannelData, encodeChannelData, type ChannelDataDropReason, type ChannelDataResult } from '../stun/index.ts';

/** Highest channel number RFC 5766 allowed. */
export const LEGACY_CHANNEL_MAX = 0x7fff;

export function decodeChannelDataUpTo(buf: Uint8Array, maxChannel: number): ChannelDataResult {
  const r = decodeChannelData(buf);
  if (r.kind !== 'drop' || r.reason !== 'bad-channel' || maxChannel <= CHANNEL_MAX) return r;
  const channel = (buf[0]! << 8) | buf[1]!;
  if (channel > maxChannel) return r;
  // Same framing rules as the codec: payload length, up to 3 bytes of padding.
  const len = (buf[2]! << 8) | buf[3]!;
  const extra = buf.length - 4 - len;
  if (extra < 0) return { kind: 'drop', reason: 'truncated' };
  if (extra > 3) return { kind: 'drop', reason: 'trailing-bytes' };
  return { kind: 'channel-data', channel, data: buf.subarray(4, 4 + len) };
}

export function encodeChannelDataAny(channel: number, data: Uint8Array): Uint8Array {
  if (channel <= CHANNEL_MAX) return encodeChannelData(channel, data);
  const out = allocTransient(4 + data.length);
  out[0] = channel >> 8;
  out[1] = channel & 0xff;
  out[2] = data.length >> 8;
  out[3] = data.length & 0xff;
  out.set(data, 4);
  return out;
}

/** Drop reasons of channelDataHeader, indexed by minus its negative result (counter names). */
export const CHANNEL_DATA_DROP: readonly (`channel-data-${ChannelDataDropReason}` | undefined)[] = [
  undefined,
  'channel-data-too-short',
  'channel-data-not-channel-data',
  'channel-data-bad-channel',
  'channel-data-truncated',
  'channel-data-trailing-bytes',
];

/**
 * The per-packet form of decodeChannelDataUpTo: the channel number, or minus
 * the index of the drop reason in CHANNEL_DATA_DROP. Same rules, no objects;
 * the payload is buf[4, 4 + length field).
 */
export function channelDataHeader(buf: Uint8Array, maxChannel: number): number {
  const size = buf.length;
  if (size < 4) return -1;
  const b0 = buf[0]!;
  if (b0 >> 6 !== 1) return -2;
  const channel = (b0 << 8) | buf[1]!;
  if (channel > (maxChannel > CHANNEL_MAX ? maxChannel : CHANNEL_MAX)) return -3;
  const extra = size - 4 - ((buf[2]! << 8) | buf[3]!);
  if (extra < 0) return -4;
  if (extra > 3) return -5;
  return channel;
}

export function validChannel(channel: number, maxChannel: number): boolean {
  return channel >= CHANNEL_MIN && channel <= maxChannel;
}
