// Public API of the STUN/TURN codec (RFC 8489, RFC 8656, RFC 5769 vectors).
// Pure functions, no I/O, no state kept between datagrams: each datagram is
// decoded on its own, so a malformed one can never affect the next. Nothing
// here throws on untrusted input; decode returns message / reply-error / drop.
export * from './constants.ts';
export type * from './types.ts';
export { decodeMessage, classify, isStun } from './decode.ts';
export { encodeMessage, errorResponse, successResponse, newTransactionId } from './encode.ts';
export { verifyIntegrity, longTermKey, fingerprintOf, crc32 } from './integrity.ts';
export { decodeChannelData, encodeChannelData } from './channel-data.ts';
export { allocTransient } from './slab.ts';
export { formatAddress, addressToBytes, transactionIdKey } from './address.ts';
