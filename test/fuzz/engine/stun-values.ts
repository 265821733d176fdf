// Random well-formed STUN/TURN values: addresses, texts, attribute sets and
// whole messages the encoder accepts. What the decoder must turn back into
// exactly the same thing.
import { isIP } from 'node:net';
import { HEADER_LENGTH, MAX_TEXT_BYTES, MAX_USERNAME_BYTES, METHOD, type StunAttributes, type StunClass, type StunMessageInit } from '../../../src/relay/stun/index.ts';
import type { StunAddress } from '../../../src/relay/stun/types.ts';
import { formatAddress } from '../../../src/shared/ip.ts';
import type { Rng } from './rng.ts';

const CLASSES: readonly StunClass[] = ['request', 'indication', 'success', 'error'];
const TEXT_UNITS = ['a', 'Z', '0', ':', '.', ' ', '-', '~', 'é', 'ß', '€', '中', '😀', '\u0000', '\u007f'];

/** Canonical text of random address bytes: public, private, mapped, zero runs. */
export function randomAddress(rng: Rng, family: 4 | 6): string {
  if (family === 4) return formatAddress(rng.bytes(4));
  const b = rng.bytes(16);
  switch (rng.int(4)) {
    case 0: b.fill(0, 0, 10); b[10] = 0xff; b[11] = 0xff; break; // IPv4-mapped
    case 1: b.fill(0, rng.int(8), rng.int(16)); break; // zero runs
    default: break;
  }
  return formatAddress(b);
}

export function randomTransport(rng: Rng): StunAddress {
  const family = rng.chance(0.5) ? 4 : 6;
  return { family, address: randomAddress(rng, family), port: rng.int(0x10000) };
}

/** Valid UTF-8 text of at most `maxBytes` bytes (no lone surrogates: those would not round-trip). */
export function randomText(rng: Rng, maxBytes: number): string {
  let s = '';
  let bytes = 0;
  const target = rng.chance(0.05) ? maxBytes : rng.int(Math.min(maxBytes, 48) + 1);
  while (bytes < target) {
    const u = rng.pick(TEXT_UNITS);
    const n = Buffer.byteLength(u);
    if (bytes + n > target) break;
    s += u;
    bytes += n;
  }
  return s;
}

const someOf = <T>(rng: Rng, max: number, make: () => T): T[] => Array.from({ length: rng.range(1, max) }, make);
const bigU64 = (rng: Rng) => (BigInt(rng.u32()) << 32n) | BigInt(rng.u32());

/** Each attribute present with probability `p`, with a valid value. */
export function randomAttributes(rng: Rng, p = 0.2): StunAttributes {
  const a: StunAttributes = {};
  const maybe = () => rng.chance(p);
  if (maybe()) a.mappedAddress = randomTransport(rng);
  if (maybe()) a.xorMappedAddress = randomTransport(rng);
  if (maybe()) a.xorRelayedAddress = someOf(rng, 2, () => randomTransport(rng));
  if (maybe()) a.xorPeerAddress = someOf(rng, 4, () => randomTransport(rng));
  if (maybe()) a.alternateServer = randomTransport(rng);
  if (maybe()) a.username = randomText(rng, MAX_USERNAME_BYTES);
  if (maybe()) a.realm = randomText(rng, MAX_TEXT_BYTES);
  if (maybe()) a.nonce = randomText(rng, MAX_TEXT_BYTES);
  if (maybe()) a.software = randomText(rng, MAX_TEXT_BYTES);
  if (maybe()) a.errorCode = { code: rng.range(300, 699), reason: randomText(rng, MAX_TEXT_BYTES) };
  if (maybe()) a.unknownAttributes = someOf(rng, 5, () => rng.int(0x10000));
  if (maybe()) a.lifetime = rng.chance(0.5) ? rng.pick([0, 1, 600, 3600, 0xffffffff]) : rng.u32();
  if (maybe()) a.requestedTransport = rng.chance(0.8) ? 17 : rng.int(256);
  if (maybe()) a.requestedAddressFamily = rng.pick([4, 6, 'unsupported'] as const);
  if (maybe()) a.additionalAddressFamily = rng.pick([4, 6, 'unsupported'] as const);
  if (maybe()) a.addressErrorCode = { family: rng.pick([4, 6] as const), code: rng.range(300, 699), reason: randomText(rng, 64) };
  if (maybe()) a.channelNumber = rng.chance(0.7) ? rng.range(0x4000, 0x7fff) : rng.int(0x10000);
  if (maybe()) a.data = rng.bytes(rng.int(rng.chance(0.05) ? 4000 : 100));
  if (maybe()) a.dontFragment = true;
  if (maybe()) a.evenPort = { reserve: rng.chance(0.5) };
  if (maybe()) a.reservationToken = rng.bytes(8);
  if (maybe()) a.priority = rng.u32();
  if (maybe()) a.useCandidate = true;
  if (maybe()) a.iceControlled = bigU64(rng);
  if (maybe()) a.iceControlling = bigU64(rng);
  if (maybe()) a.passwordAlgorithm = rng.bytes(rng.int(12));
  if (maybe()) a.passwordAlgorithms = rng.bytes(rng.int(12));
  if (maybe()) a.userhash = rng.bytes(32);
  return a;
}

export function randomMessage(rng: Rng): StunMessageInit {
  const methods = Object.values(METHOD);
  return {
    method: rng.chance(0.8) ? rng.pick(methods) : rng.int(0x1000),
    cls: rng.pick(CLASSES),
    transactionId: rng.bytes(12),
    attributes: randomAttributes(rng),
  };
}

/** A STUN header (type, length, cookie, transaction id) for hand-built bodies. */
export function stunHeader(rng: Rng, type: number, bodyLength: number): Uint8Array {
  const h = new Uint8Array(HEADER_LENGTH);
  const v = new DataView(h.buffer);
  v.setUint16(0, type & 0x3fff);
  v.setUint16(2, bodyLength);
  v.setUint32(4, 0x2112a442);
  h.set(rng.bytes(12), 8);
  return h;
}

/** True when `address` is canonical text of its family (what the decoder must produce). */
export function isCanonical(address: string, family: 4 | 6): boolean {
  if (isIP(address) !== family) return false;
  return family === 4 || address === address.toLowerCase();
}
