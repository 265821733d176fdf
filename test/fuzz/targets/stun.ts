// Target "stun": the STUN/TURN codec on single datagrams (decodeMessage,
// classify, isStun, decodeChannelData, the server's ChannelData header
// parser, verifyIntegrity on what decodes). Inputs: valid messages from the
// encoder, the committed corpus and both mutated (bytes, attribute lists,
// with the lengths and FINGERPRINT made right again or not), attribute soup,
// ChannelData and raw bytes.
// Invariants: nothing throws; every result has the documented shape; valid
// messages decode to exactly what was encoded and verify with their key;
// whatever decodes re-encodes to the same message; classify, isStun and the
// two ChannelData parsers agree; the work done is linear in the datagram;
// the input is never written to.
import { isDeepStrictEqual } from 'node:util';
import {
  ATTR,
  CHANNEL_MAX,
  CHANNEL_MIN,
  HEADER_LENGTH,
  MAX_UNKNOWN_ATTRIBUTES,
  classify,
  decodeChannelData,
  decodeMessage,
  encodeMessage,
  isStun,
  verifyIntegrity,
  type DecodeResult,
  type StunAttributes,
  type StunMessage,
} from '../../../src/relay/stun/index.ts';
import { decodeWork } from '../../../src/relay/stun/decode.ts';
import type { StunAddress } from '../../../src/relay/stun/types.ts';
import { channelDataHeader, decodeChannelDataUpTo, LEGACY_CHANNEL_MAX } from '../../../src/relay/server/channel-data.ts';
import { readHexCorpus } from '../engine/corpus.ts';
import { mutateBytes } from '../engine/mutate.ts';
import type { Rng } from '../engine/rng.ts';
import { ATTR_TYPES, joinMessage, mutateAttributes, sign, splitMessage } from '../engine/stun-bytes.ts';
import { isCanonical, randomMessage, stunHeader } from '../engine/stun-values.ts';
import { Tally, hex, type Findings, type FuzzTarget, type TargetRun } from '../engine/target.ts';

const MAX_INPUT = 4096;
const KNOWN = new Set(ATTR_TYPES);
const DICTIONARY = [
  Uint8Array.from([0x21, 0x12, 0xa4, 0x42]),
  ...ATTR_TYPES.map((t) => Uint8Array.from([t >> 8, t & 0xff])),
  Uint8Array.from([0x00, 0x01]),
  Uint8Array.from([0x40, 0x00]),
];

type Problem = (message: string) => void;

/** A valid message from the encoder, its bytes, and the key it was signed with. */
interface Generated {
  readonly bytes: Uint8Array;
  readonly attributes: StunAttributes;
  readonly key: Uint8Array | undefined;
  readonly algorithm: 'sha1' | 'sha256' | undefined;
  readonly fingerprint: boolean;
}

function generate(rng: Rng): Generated {
  const msg = randomMessage(rng);
  const key = rng.chance(0.5) ? rng.bytes(rng.pick([16, 20])) : undefined;
  const integrity = key ? rng.pick(['sha1', 'sha256', 'both'] as const) : undefined;
  const fingerprint = rng.chance(0.5);
  const bytes = encodeMessage(msg, { ...(key ? { key, integrity } : {}), fingerprint, padding: rng.chance(0.1) ? rng.int(256) : 0 });
  return { bytes, attributes: msg.attributes, key, algorithm: integrity === 'both' ? 'sha256' : integrity, fingerprint };
}

/** Attributes of random types and lengths behind a valid header (lengths honest or not). */
function attributeSoup(rng: Rng): Uint8Array {
  const attrs = Array.from({ length: rng.int(rng.chance(0.1) ? 200 : 12) }, () => ({
    type: rng.chance(0.6) ? rng.pick(ATTR_TYPES) : rng.int(0x10000),
    value: rng.bytes(rng.pick([0, 1, 2, 4, 8, 12, 20, 32, rng.int(100)])),
  }));
  const body = joinMessage(stunHeader(rng, rng.int(0x4000), 0), attrs);
  return rng.chance(0.3) ? sign(body, { fingerprint: true }) : body;
}

function channelData(rng: Rng): Uint8Array {
  const data = rng.bytes(rng.int(64));
  const out = new Uint8Array(4 + data.length + rng.int(5));
  const v = new DataView(out.buffer);
  v.setUint16(0, rng.chance(0.8) ? rng.range(0x4000, 0x7fff) : rng.int(0x10000));
  v.setUint16(2, rng.chance(0.8) ? data.length : rng.int(0x10000));
  out.set(data, 4);
  return out;
}

/** Mutations that keep a STUN message walkable: the attribute list, then maybe the lengths and FINGERPRINT made right. */
function mutateStun(rng: Rng, base: Uint8Array, others: readonly Uint8Array[]): Uint8Array {
  if (rng.chance(0.5) && base.length >= HEADER_LENGTH) {
    const { header, attrs } = splitMessage(base);
    const joined = joinMessage(header, mutateAttributes(rng, attrs));
    return rng.chance(0.5) ? sign(joined, { fingerprint: true }) : joined;
  }
  const out = mutateBytes(rng, base, { maxLength: MAX_INPUT, others, dictionary: DICTIONARY });
  if (out.length >= 4 && rng.chance(0.3)) {
    const len = Math.max(0, out.length - HEADER_LENGTH);
    out[2] = (len >> 8) & 0xff;
    out[3] = len & 0xff;
  }
  return out;
}

// -- checks -------------------------------------------------------------------------

function checkAddress(a: StunAddress, what: string, problem: Problem): void {
  if ((a.family !== 4 && a.family !== 6) || !isCanonical(a.address, a.family)) problem(`${what}: address ${JSON.stringify(a)} is not canonical text of its family`);
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 0xffff) problem(`${what}: port ${a.port}`);
}

function within(view: Uint8Array, buf: Uint8Array): boolean {
  return view.buffer === buf.buffer && view.byteOffset >= buf.byteOffset && view.byteOffset + view.length <= buf.byteOffset + buf.length;
}

/** The shape DecodeResult promises for `buf`. */
function checkDecoded(buf: Uint8Array, r: DecodeResult, problem: Problem): void {
  if (r.kind === 'drop') {
    if (typeof r.reason !== 'string' || !r.reason) problem('drop without a reason');
    return;
  }
  const type = (buf[0]! << 8) | buf[1]!;
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
  const txid = r.kind === 'message' ? r.message.transactionId : r.transactionId;
  if (!isDeepStrictEqual(Uint8Array.from(txid), buf.slice(8, 20))) problem('transaction id is not bytes 8-20');
  if ((r.kind === 'message' ? r.message.method : r.method) !== method) problem('method is not the header\'s');
  if (buf.length !== HEADER_LENGTH + ((buf[2]! << 8) | buf[3]!)) problem('accepted a datagram whose length field disagrees with its size');
  if (r.kind === 'reply-error') {
    if ((type & 0x0110) !== 0) problem(`reply-error for a non-request (class bits ${(type & 0x0110).toString(16)})`);
    if (r.code === 420) {
      const u = r.unknownAttributes ?? [];
      if (u.length === 0 || u.length > MAX_UNKNOWN_ATTRIBUTES) problem(`420 lists ${u.length} attributes`);
      if (new Set(u).size !== u.length) problem('420 lists an attribute twice');
      if (u.some((t) => t >= 0x8000 || KNOWN.has(t))) problem(`420 lists a known or comprehension-optional type: ${u.map((t) => t.toString(16))}`);
    } else if (r.code !== 400 || !r.detail) {
      problem(`reply-error ${r.code} without detail`);
    }
    return;
  }
  checkMessage(buf, r.message, problem);
}

function checkMessage(buf: Uint8Array, m: StunMessage, problem: Problem): void {
  const a = m.attributes;
  for (const k of ['mappedAddress', 'xorMappedAddress', 'alternateServer'] as const) if (a[k]) checkAddress(a[k], k, problem);
  for (const k of ['xorPeerAddress', 'xorRelayedAddress'] as const) for (const x of a[k] ?? []) checkAddress(x, k, problem);
  if (a.username !== undefined && Buffer.byteLength(a.username) > 513) problem('USERNAME over 513 bytes');
  for (const k of ['data', 'reservationToken', 'userhash', 'passwordAlgorithm', 'passwordAlgorithms'] as const) {
    if (a[k] !== undefined && !within(a[k], buf)) problem(`${k} is not a view into the datagram`);
  }
  if (a.reservationToken && a.reservationToken.length !== 8) problem('RESERVATION-TOKEN not 8 bytes');
  if (a.channelNumber !== undefined && (a.channelNumber < 0 || a.channelNumber > 0xffff)) problem('CHANNEL-NUMBER out of u16');
  const loc = m.integrity;
  if (loc) {
    if (loc.raw !== buf) problem('integrity location is not over the datagram');
    if (loc.sha1 !== undefined && ((buf[loc.sha1]! << 8) | buf[loc.sha1 + 1]!) !== ATTR.MESSAGE_INTEGRITY) problem('MESSAGE-INTEGRITY offset does not point at one');
    if (loc.sha256 !== undefined && ((buf[loc.sha256]! << 8) | buf[loc.sha256 + 1]!) !== ATTR.MESSAGE_INTEGRITY_SHA256) problem('MESSAGE-INTEGRITY-SHA256 offset does not point at one');
  }
  // What decodes is a valid init: it re-encodes, and decodes again to the same attributes.
  const again = decodeMessage(encodeMessage(m));
  if (again.kind !== 'message') problem(`re-encoded message does not decode: ${JSON.stringify(again)}`);
  else if (!isDeepStrictEqual(plain(again.message.attributes), plain(a))) problem('re-encoded message decodes to other attributes');
}

/** Attributes with byte views as plain arrays, so views and copies compare equal. */
function plain(a: StunAttributes): unknown {
  return Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v instanceof Uint8Array ? Array.from(v) : v]));
}

/** Agreement between the cheap classifiers and the decoders. */
function checkClassifiers(buf: Uint8Array, r: DecodeResult, problem: Problem): void {
  const kind = classify(buf);
  const top = buf.length === 0 ? -1 : buf[0]! >> 6;
  if (kind !== (top === 0 ? 'stun' : top === 1 ? 'channel-data' : 'other')) problem(`classify says ${kind}`);
  if (kind !== 'stun' && !(r.kind === 'drop' && r.reason === 'not-stun')) problem(`classify says ${kind} but decodeMessage gave ${r.kind}`);
  if (r.kind !== 'drop' && !isStun(buf)) problem('decoded although isStun says no');
  const cd = decodeChannelData(buf);
  if (cd.kind === 'channel-data') {
    const len = (buf[2]! << 8) | buf[3]!;
    const extra = buf.length - 4 - len;
    if (kind !== 'channel-data') problem('ChannelData decoded from a datagram classify does not call ChannelData');
    if (cd.channel < CHANNEL_MIN || cd.channel > CHANNEL_MAX) problem(`channel ${cd.channel} out of range`);
    if (cd.data.length !== len || extra < 0 || extra > 3 || !within(cd.data, buf) || cd.data.byteOffset !== buf.byteOffset + 4) problem('ChannelData payload is not bytes 4..4+length');
  }
  for (const max of [CHANNEL_MAX, LEGACY_CHANNEL_MAX]) {
    const slow = decodeChannelDataUpTo(buf, max);
    const fast = channelDataHeader(buf, max);
    if ((slow.kind === 'channel-data') !== fast >= 0 || (slow.kind === 'channel-data' && slow.channel !== fast)) {
      problem(`server ChannelData parsers disagree (max 0x${max.toString(16)}): ${slow.kind}/${fast}`);
    }
    if (max === CHANNEL_MAX && !isDeepStrictEqual(slow, cd)) problem('decodeChannelDataUpTo(CHANNEL_MAX) differs from decodeChannelData');
  }
}

/** The decoder's work is linear: one header read per 4 bytes at most, one value per attribute, bounded comparisons. */
function checkWork(buf: Uint8Array, before: typeof decodeWork, problem: Problem): void {
  const attributes = decodeWork.attributes - before.attributes;
  const values = decodeWork.values - before.values;
  const comparisons = decodeWork.comparisons - before.comparisons;
  const most = Math.max(0, Math.ceil((buf.length - HEADER_LENGTH) / 4));
  if (attributes > most || values > attributes || comparisons > attributes * MAX_UNKNOWN_ATTRIBUTES) {
    problem(`decode work not linear: ${attributes} attributes, ${values} values, ${comparisons} comparisons for ${buf.length} bytes`);
  }
}

/** Whatever a generated message held comes back, and its integrity verifies with its key only. */
function checkRoundTrip(g: Generated, r: DecodeResult, problem: Problem): void {
  if (r.kind !== 'message') return problem(`valid message decoded as ${r.kind} (${'reason' in r ? r.reason : ''})`);
  const m = r.message;
  if (!isDeepStrictEqual(plain(m.attributes), plain(g.attributes))) problem('valid message decoded to other attributes');
  if (m.hasFingerprint !== g.fingerprint) problem('FINGERPRINT presence lost');
  const v = g.key ? verifyIntegrity(m, g.key) : undefined;
  if (g.key && (v?.result !== 'ok' || v.algorithm !== g.algorithm)) problem(`integrity with the right key: ${JSON.stringify(v)}`);
  if (!g.key && m.integrity !== undefined) problem('integrity found in a message without');
  if (g.key && verifyIntegrity(m, new Uint8Array(16).fill(7)).result !== 'bad') problem('integrity verifies with a wrong key');
}

// -- the target ------------------------------------------------------------------------

export const stunTarget: FuzzTarget = {
  name: 'stun',
  open(corpusDir): TargetRun {
    const corpus = readHexCorpus(corpusDir);
    const results = new Tally();
    return {
      one(rng: Rng, findings: Findings): number {
        const generated = rng.chance(0.25) ? generate(rng) : undefined;
        const buf = generated
          ? generated.bytes
          : rng.weighted<() => Uint8Array>([
              [5, () => mutateStun(rng, rng.chance(0.5) ? rng.pick(corpus) : generate(rng).bytes, corpus)],
              [1, () => attributeSoup(rng)],
              [1, () => (rng.chance(0.5) ? channelData(rng) : mutateBytes(rng, channelData(rng), { maxLength: 128 }))],
              [1, () => rng.bytes(rng.int(rng.chance(0.5) ? 24 : 200))],
            ])();
        const copy = new Uint8Array(buf);
        const input = () => hex(copy);
        const problem: Problem = (message) => findings.violation(message, input);
        const before = { ...decodeWork };
        let r: DecodeResult;
        try {
          r = decodeMessage(buf);
        } catch (err) {
          findings.exception(err, input);
          return 1;
        }
        results.add(r.kind === 'drop' ? `drop:${r.reason}` : r.kind);
        try {
          checkWork(buf, before, problem);
          checkDecoded(buf, r, problem);
          checkClassifiers(buf, r, problem);
          if (generated) checkRoundTrip(generated, r, problem);
          else if (r.kind === 'message') verifyIntegrity(r.message, rng.bytes(16));
        } catch (err) {
          findings.exception(err, input);
        }
        if (!isDeepStrictEqual(buf, copy)) problem('the input was written to');
        return 1;
      },
      summary: () => [`results: ${results.toString(12)}`],
      close() {},
    };
  },
};
