// The worst STUN datagrams we can build for the decoder: 64 KiB bodies of the
// smallest, most numerous or most expensive attributes. Built byte by byte
// (the encoder writes each attribute once). Shared by the linear-work test
// and bench/codec.bench.ts, so the benchmark measures what the test bounds.
import { ATTR, METHOD, encodeMessage, longTermKey, type StunClass } from '../../../src/relay/stun/index.ts';

/** Largest STUN body: the length field is 16 bits and a multiple of 4. */
export const MAX_BODY = 0xfffc;

export const txid = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
export const key = longTermKey('1700000000:alice', 'turnpike', 'Oko4dt8u/EbTRjRUJWQDFm/zTCc=');
const auth = { username: '1700000000:alice', realm: 'turnpike', nonce: 'lp0b4x4g.Jx3jQe0v5y0wq9QXK2vXhA' };

/** One attribute: type, length, value, zero padding. */
export function attr(type: number, value: ArrayLike<number> = []): Uint8Array {
  const out = new Uint8Array(4 + ((value.length + 3) & ~3));
  out[0] = type >> 8; out[1] = type & 0xff; out[2] = value.length >> 8; out[3] = value.length & 0xff;
  out.set(value, 4);
  return out;
}

/** `head` (an encoded message) followed by `parts`, with the length field fixed up. */
export function message(head: Uint8Array, parts: readonly Uint8Array[]): Uint8Array {
  const size = head.length + parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  out.set(head);
  let off = head.length;
  for (const p of parts) { out.set(p, off); off += p.length; }
  const len = size - 20; out[2] = len >> 8; out[3] = len & 0xff;
  return out;
}

/** An encoded message of no attributes. */
export const empty = (cls: StunClass, method: number): Uint8Array => encodeMessage({ method, cls, transactionId: txid, attributes: {} });

/** As many of `make(0)`, `make(1)`, ... as fit in a 64 KiB body after `head`. */
export function fill(head: Uint8Array, make: (i: number) => Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let room = MAX_BODY - (head.length - 20), i = 0; ; i++) {
    const a = make(i);
    if (a.length > room) return out;
    out.push(a); room -= a.length;
  }
}

const KNOWN = new Set<number>(Object.values(ATTR));
/** Every comprehension-required type the codec does not know, ascending (32k of them: more than fit). */
export const unknownTypes: readonly number[] = Array.from({ length: 0x8000 }, (_, t) => t).filter((t) => !KNOWN.has(t));

export interface Hostile {
  readonly name: string;
  readonly bytes: Uint8Array;
  /** Attributes in the datagram (the decoder must walk each exactly once). */
  readonly attributes: number;
  /** Attribute values a linear decoder decodes at most (repeats of a single-valued one are skipped). */
  readonly values: number;
}

/** A datagram of `head` then 64 KiB worth of `make(i)`; `values(n)` of the n added ones must be decoded. */
function build(name: string, head: Uint8Array, headAttributes: number, make: (i: number) => Uint8Array, values: (n: number) => number): Hostile {
  const parts = fill(head, make);
  return { name, bytes: message(head, parts), attributes: headAttributes + parts.length, values: headAttributes + values(parts.length) };
}

const text = (n: number) => new TextEncoder().encode('x'.repeat(n));
const v4peer = (i: number) => [0, 1, 0x9c, 0x40, 0xe1, 0x12, (i >> 8) & 0xff, i & 0xff];
const v6peer = (i: number) => [0, 2, 0x9c, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (i >> 8) & 0xff, i & 0xff];
const none = () => 0;
const one = () => 1;
const each = (n: number) => n;

const request = empty('request', METHOD.ALLOCATE);
/** A signed Refresh (LIFETIME, USERNAME, REALM, NONCE, MESSAGE-INTEGRITY): what follows MESSAGE-INTEGRITY is ignored. */
export const signedRefresh = encodeMessage({ method: METHOD.REFRESH, cls: 'request', transactionId: txid, attributes: { lifetime: 600, ...auth } }, { key });

export const HOSTILE: readonly Hostile[] = [
  build('distinct unknown comp.-required, 0-length', request, 0, (i) => attr(unknownTypes[i]!), none),
  build('distinct unknown comp.-required, 4-byte', request, 0, (i) => attr(unknownTypes[i]!, [0, 0, 0, 0]), none),
  build('the same unknown comp.-required, 0-length', request, 0, () => attr(0x0031), none),
  build('distinct unknown, in an indication (dropped)', empty('indication', METHOD.SEND), 0, (i) => attr(unknownTypes[i]!), none),
  build('unknown comp.-optional, 0-length', request, 0, (i) => attr(0x8100 + (i & 0x7eff)), none),
  build('DONT-FRAGMENT, 0-length, repeated', request, 0, () => attr(ATTR.DONT_FRAGMENT), one),
  build('USERNAME, 0-length, repeated', request, 0, () => attr(ATTR.USERNAME), one),
  build('USERNAME, invalid UTF-8, repeated', request, 0, () => attr(ATTR.USERNAME, [0xff]), one),
  build('USERNAME 513 B, repeated', request, 0, () => attr(ATTR.USERNAME, text(513)), one),
  build('NONCE 763 B, repeated', request, 0, () => attr(ATTR.NONCE, text(763)), one),
  build('ICE-CONTROLLING, repeated', empty('request', METHOD.BINDING), 0, () => attr(ATTR.ICE_CONTROLLING, [1, 2, 3, 4, 5, 6, 7, 8]), one),
  build('XOR-PEER-ADDRESS v4, distinct', empty('request', METHOD.CREATE_PERMISSION), 0, (i) => attr(ATTR.XOR_PEER_ADDRESS, v4peer(i)), each),
  build('XOR-PEER-ADDRESS v6, distinct', empty('request', METHOD.CREATE_PERMISSION), 0, (i) => attr(ATTR.XOR_PEER_ADDRESS, v6peer(i)), each),
  build('XOR-RELAYED-ADDRESS v6, in a response', empty('success', METHOD.ALLOCATE), 0, (i) => attr(ATTR.XOR_RELAYED_ADDRESS, v6peer(i)), each),
  build('MESSAGE-INTEGRITY, then 0-length attributes', signedRefresh, 5, (i) => attr(unknownTypes[i]!), none),
];

/** The catalogue entry called `name`. */
export function hostile(name: string): Hostile {
  const h = HOSTILE.find((x) => x.name === name);
  if (!h) throw new Error(`no hostile datagram named ${name}`);
  return h;
}
