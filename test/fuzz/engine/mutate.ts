// A small byte-level mutation engine (in the manner of AFL's havoc stage):
// bit flips, boundary values in 8/16/32-bit fields, inserted, deleted,
// duplicated and spliced ranges. Protocol-aware mutations (lengths, attribute
// lists, checksums) live with their targets; this one knows nothing of them.
import type { Rng } from './rng.ts';

const BYTES = [0x00, 0x01, 0x02, 0x03, 0x04, 0x10, 0x3f, 0x40, 0x41, 0x7f, 0x80, 0x81, 0xc0, 0xfe, 0xff];
const WORDS = [0, 1, 2, 3, 4, 7, 8, 0x14, 0x3fff, 0x4000, 0x4001, 0x4fff, 0x5000, 0x7fff, 0x8000, 0x8028, 0xfffc, 0xffff];
const LONGS = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x2112a442, 0x10000, 0x10201];

export interface MutateOptions {
  /** Longest result; insertions stop there. */
  readonly maxLength: number;
  /** Other inputs to splice from (crossover). */
  readonly others?: readonly Uint8Array[];
  /** Byte strings worth planting (magic numbers, type codes). */
  readonly dictionary?: readonly Uint8Array[];
}

type Op = (rng: Rng, b: Uint8Array, o: MutateOptions) => Uint8Array;

function setWord(b: Uint8Array, at: number, v: number, size: 2 | 4): void {
  for (let i = size - 1; i >= 0; i--, v = Math.floor(v / 256)) if (at + i < b.length) b[at + i] = v & 0xff;
}

function readWord(b: Uint8Array, at: number, size: 2 | 4): number {
  let v = 0;
  for (let i = 0; i < size; i++) v = v * 256 + (b[at + i] ?? 0);
  return v;
}

const join = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

const OPS: readonly (readonly [number, Op])[] = [
  [4, (r, b) => { if (b.length) b[r.int(b.length)]! ^= 1 << r.int(8); return b; }],
  [2, (r, b) => { if (b.length) b[r.int(b.length)] = r.int(256); return b; }],
  [3, (r, b) => { if (b.length) b[r.int(b.length)] = r.pick(BYTES); return b; }],
  [4, (r, b) => { if (b.length > 1) setWord(b, r.int(b.length - 1), r.pick(WORDS), 2); return b; }],
  [2, (r, b) => {
    // A 16-bit field nudged: off-by-one lengths are where parsers break.
    if (b.length > 1) { const at = r.int(b.length - 1); setWord(b, at, (readWord(b, at, 2) + r.range(-4, 4)) & 0xffff, 2); }
    return b;
  }],
  [1, (r, b) => { if (b.length > 3) setWord(b, r.int(b.length - 3), r.pick(LONGS), 4); return b; }],
  [2, (r, b, o) => {
    const at = r.int(b.length + 1);
    const n = Math.min(r.few(16) * r.range(1, 4), o.maxLength - b.length);
    return n > 0 ? join(b.subarray(0, at), r.bytes(n), b.subarray(at)) : b;
  }],
  [3, (r, b) => {
    if (b.length === 0) return b;
    const at = r.int(b.length);
    const n = r.range(1, Math.min(b.length - at, 32));
    return join(b.subarray(0, at), b.subarray(at + n));
  }],
  [2, (r, b) => b.subarray(0, r.int(b.length + 1))],
  [1, (r, b, o) => {
    if (b.length === 0) return b;
    const from = r.int(b.length);
    const chunk = b.slice(from, from + r.range(1, 64));
    const at = r.int(b.length + 1);
    return b.length + chunk.length > o.maxLength ? b : join(b.subarray(0, at), chunk, b.subarray(at));
  }],
  [2, (r, b, o) => {
    const other = o.others?.length ? r.pick(o.others) : undefined;
    if (!other || other.length === 0) return b;
    const cut = r.int(b.length + 1);
    const from = r.int(other.length);
    return join(b.subarray(0, cut), other.subarray(from, from + Math.max(0, o.maxLength - cut)));
  }],
  [2, (r, b, o) => {
    const token = o.dictionary?.length ? r.pick(o.dictionary) : undefined;
    if (!token || b.length < token.length) return b;
    b.set(token, r.int(b.length - token.length + 1));
    return b;
  }],
];

/** A mutated copy of `input`: one to `rounds` havoc operations. Never returns the input itself. */
export function mutateBytes(rng: Rng, input: Uint8Array, opts: MutateOptions, rounds = 6): Uint8Array {
  // A copy even of a Buffer, whose slice() is a view.
  let b: Uint8Array = new Uint8Array(input);
  for (let n = rng.few(rounds); n > 0; n--) b = rng.weighted(OPS)(rng, b, opts);
  return b.length > opts.maxLength ? b.subarray(0, opts.maxLength) : b;
}
