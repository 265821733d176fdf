// Target "link": the sidecar's reading of what the relay writes on the local
// link (FrameReader and decodeFrame), as a buggy or hostile relay would write
// it: valid frame streams cut into random chunks, the same streams mutated
// (bytes, length prefixes, type bytes, cut short, garbage appended), runs of
// random length-prefixed frames, and single bodies for every type byte.
// Invariants: nothing throws; a reader reports at most one error and delivers
// nothing after it (nor after stop()); it never holds more than one frame's
// bytes; every delivered frame is well typed (families, ports, addresses,
// counts); a valid stream comes out frame for frame whatever the chunking,
// and a damaged one still delivers every frame that ends before the damage.
import { isDeepStrictEqual } from 'node:util';
import {
  FrameReader,
  FrameType,
  LENGTH_BYTES,
  MAX_BODY_BYTES,
  MAX_FRAME_BYTES,
  MAX_REASON_KEYS,
  MAX_REASON_KEY_CHARS,
  decodeFrame,
  encodeFrame,
  type Frame,
  RejectCode,
  type FrameKind,
  type RejectReason,
} from '../../../src/link/index.ts';
import type { ChannelBinding } from '../../../src/shared/binding.ts';
import type { TransportAddress } from '../../../src/shared/endpoint.ts';
import { readHexCorpus } from '../engine/corpus.ts';
import { mutateBytes } from '../engine/mutate.ts';
import type { Rng } from '../engine/rng.ts';
import { randomAddress, randomText } from '../engine/stun-values.ts';
import { Tally, hex, type Findings, type FuzzTarget, type TargetRun } from '../engine/target.ts';
import { relayCounters } from '../../link/samples.ts';

const KINDS = Object.keys(FrameType) as FrameKind[];
const TYPE_BYTES = Object.values(FrameType);
type Problem = (message: string) => void;

// -- generators -----------------------------------------------------------------------

const family = (rng: Rng) => (rng.chance(0.5) ? 4 : 6) as 4 | 6;
const port = (rng: Rng) => (rng.chance(0.2) ? rng.pick([0, 1, 3478, 65535]) : rng.int(0x10000));
const ascii = (rng: Rng, max: number) => Array.from({ length: rng.int(max + 1) }, () => String.fromCharCode(rng.range(0x20, 0x7e))).join('');

function address(rng: Rng): TransportAddress {
  const f = family(rng);
  // Mostly real addresses; sometimes any latin1 text the frame can carry (1-64 chars).
  const text = rng.chance(0.9) ? randomAddress(rng, f) : String.fromCharCode(...Array.from({ length: rng.range(1, 64) }, () => rng.int(256)));
  return { family: f, address: text, port: port(rng) };
}

function binding(rng: Rng): ChannelBinding {
  const ports: { v4?: number; v6?: number } = {};
  if (rng.chance(0.7)) ports.v4 = rng.range(1, 65535);
  if (rng.chance(0.7)) ports.v6 = rng.range(1, 65535);
  return {
    client: address(rng),
    channel: rng.int(0x10000),
    peer: address(rng),
    allocationPort: port(rng),
    allocationPorts: ports,
    expiresAt: rng.chance(0.9) ? rng.u32() * 1000 + rng.int(1000) / 8 : rng.pick([0, -1, Number.MAX_VALUE, Number.POSITIVE_INFINITY]),
  };
}

function counters(rng: Rng): typeof relayCounters {
  const reasons = () => Object.fromEntries(Array.from({ length: rng.int(rng.chance(0.05) ? MAX_REASON_KEYS + 1 : 8) }, () => [ascii(rng, MAX_REASON_KEY_CHARS - 1) + 'k', rng.int(1e9)]));
  return { ...relayCounters, allocations: rng.int(1e6), channels: rng.u32(), responses: reasons(), dropped: reasons() };
}

/** A frame of any kind with valid field values: what a correct relay or sidecar could send. */
export function randomFrame(rng: Rng): Frame {
  const data = () => rng.bytes(rng.chance(0.01) ? rng.int(65536) : rng.int(200));
  const lep = () => ({ family: family(rng), port: port(rng) });
  const kind = rng.pick(KINDS);
  switch (kind) {
    case 'hello': return { kind, version: rng.int(0x10000), role: rng.pick(['relay', 'sidecar'] as const), pid: rng.u32(), software: ascii(rng, 40) };
    case 'reject': return { kind, code: rng.pick(Object.keys(RejectCode) as RejectReason[]), reason: randomText(rng, 100) };
    case 'packet-in': return { kind, local: lep(), remote: address(rng), data: data() };
    case 'packet-out': return { kind, from: lep(), to: address(rng), data: data() };
    case 'open-port': return { kind, token: rng.u32(), ...lep() };
    case 'port-opened': return { kind, token: rng.u32(), ...lep(), ok: rng.chance(0.5), error: ascii(rng, 12) };
    case 'close-port':
    case 'snapshot-port': return { kind, ...lep() };
    case 'channel-bound':
    case 'channel-refreshed':
    case 'channel-unbound': return { kind, seq: rng.u32(), binding: binding(rng) };
    case 'channel-ack': return { kind, seq: rng.u32(), ok: rng.chance(0.5), error: randomText(rng, 60) };
    case 'snapshot-begin': return { kind, generation: rng.u32() };
    case 'snapshot-channel': return { kind, binding: binding(rng) };
    case 'snapshot-end': return { kind, generation: rng.u32(), ports: rng.u32(), channels: rng.u32() };
    case 'snapshot-ack': {
      const failed = Array.from({ length: rng.int(rng.chance(0.05) ? 1000 : 5) }, () => ({ ...lep(), error: ascii(rng, 20) }));
      return { kind, generation: rng.u32(), failedTotal: failed.length + rng.int(3), failed };
    }
    case 'ping':
    case 'pong': return { kind, nonce: rng.u32() };
    case 'log': return { kind, level: rng.pick([10, 20, 30, 40, 50, 60]), module: ascii(rng, 20), json: `{"msg":${JSON.stringify(randomText(rng, 80))}}` };
    case 'counters': {
      const c = counters(rng);
      return Object.keys(c.responses).length > MAX_REASON_KEYS || Object.keys(c.dropped).length > MAX_REASON_KEYS ? { kind: 'ping', nonce: 0 } : { kind, counters: c };
    }
    case 'log-filter': return { kind, filter: ascii(rng, 40) };
    case 'drain': return rng.chance(0.5) ? { kind } : { kind, alternate: address(rng) };
    case 'state': return { kind, id: rng.u32(), final: rng.chance(0.5), data: data() };
  }
}

// -- damage -------------------------------------------------------------------------------

interface Stream {
  readonly bytes: Uint8Array;
  /** Frames in order, each with the offset where it ends. */
  readonly frames: readonly { readonly frame: Frame; readonly end: number }[];
}

function streamOf(frames: readonly Frame[]): Stream {
  const parts = frames.map((f) => encodeFrame(f));
  let end = 0;
  return { bytes: new Uint8Array(Buffer.concat(parts)), frames: frames.map((frame, i) => ({ frame, end: (end += parts[i]!.length) })) };
}

/** The offsets where each frame of a well-formed stream starts. */
function frameStarts(s: Stream): number[] {
  return [0, ...s.frames.map((f) => f.end).slice(0, -1)];
}

/** Damage as a hostile relay would do it. */
function damage(rng: Rng, s: Stream, corpus: readonly Uint8Array[]): Uint8Array {
  const b = new Uint8Array(s.bytes);
  const starts = frameStarts(s);
  const at = rng.pick(starts);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (rng.int(6)) {
    case 0: // a length prefix that lies
      if (at + 4 <= b.length) view.setUint32(at, rng.pick([0, 1, 2, 5, MAX_BODY_BYTES, MAX_BODY_BYTES + 1, MAX_BODY_BYTES + 2, 0xffffffff, Math.max(0, view.getUint32(at) + rng.range(-8, 8))]));
      return b;
    case 1: // a type byte no one knows, or another kind's
      if (at + 4 < b.length) b[at + 4] = rng.chance(0.5) ? rng.pick(TYPE_BYTES) : rng.int(256);
      return b;
    case 2: // cut short
      return b.subarray(0, rng.int(b.length));
    case 3: // garbage appended
      return Uint8Array.from([...b, ...rng.bytes(rng.range(1, 64))]);
    default:
      return mutateBytes(rng, b, { maxLength: b.length + 256, others: corpus }, 4);
  }
}

/** Frames of random length prefixes and bodies (the relay writing nonsense with framing intact). */
function nonsense(rng: Rng): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let n = rng.range(1, 8); n > 0; n--) {
    const body = rng.bytes(rng.int(48));
    const f = new Uint8Array(5 + body.length);
    new DataView(f.buffer).setUint32(0, 1 + body.length);
    f[4] = rng.chance(0.8) ? rng.pick(TYPE_BYTES) : rng.int(256);
    f.set(body, 5);
    parts.push(f);
  }
  return Buffer.concat(parts);
}

function chunks(rng: Rng, b: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  const mode = rng.int(4);
  for (let off = 0; off < b.length; ) {
    const n = mode === 0 ? b.length : mode === 1 ? rng.range(1, 3) : mode === 2 ? rng.range(1, 64) : rng.range(1, b.length);
    // A Buffer view at an odd offset, as a socket read may give.
    out.push(Buffer.from(b.buffer, b.byteOffset + off, Math.min(n, b.length - off)));
    off += n;
  }
  return out;
}

// -- checks ---------------------------------------------------------------------------------

function checkAddr(a: TransportAddress, what: string, problem: Problem): void {
  if (a.family !== 4 && a.family !== 6) problem(`${what}: family ${a.family}`);
  if (typeof a.address !== 'string' || a.address.length < 1 || a.address.length > 64) problem(`${what}: address length ${a.address?.length}`);
  checkPort(a.port, what, problem);
}

function checkPort(p: number, what: string, problem: Problem): void {
  if (!Number.isInteger(p) || p < 0 || p > 0xffff) problem(`${what}: port ${p}`);
}

function checkU32(v: number, what: string, problem: Problem): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) problem(`${what}: ${v} is not a u32`);
}

/** Every field within its wire type, the shape Frame promises. */
export function checkFrame(f: Frame, problem: Problem): void {
  if (!KINDS.includes(f.kind)) return problem(`unknown kind ${String(f.kind)}`);
  const lep = (l: { family: number; port: number }, what: string) => {
    if (l.family !== 4 && l.family !== 6) problem(`${what}: family ${l.family}`);
    checkPort(l.port, what, problem);
  };
  const bind = (b: ChannelBinding) => {
    checkAddr(b.client, 'binding client', problem);
    checkAddr(b.peer, 'binding peer', problem);
    checkPort(b.channel, 'channel', problem);
    checkPort(b.allocationPort, 'allocation port', problem);
    for (const p of [b.allocationPorts.v4, b.allocationPorts.v6]) if (p !== undefined && (p === 0 || !Number.isInteger(p) || p > 0xffff)) problem(`allocation ports ${JSON.stringify(b.allocationPorts)}`);
    if (typeof b.expiresAt !== 'number') problem('expiresAt not a number');
  };
  switch (f.kind) {
    case 'hello': if (f.role !== 'relay' && f.role !== 'sidecar') problem(`role ${f.role}`); checkU32(f.pid, 'pid', problem); break;
    case 'reject': if (!(f.code in RejectCode)) problem(`reject code ${f.code}`); break;
    case 'packet-in': lep(f.local, 'local'); checkAddr(f.remote, 'remote', problem); break;
    case 'packet-out': lep(f.from, 'from'); checkAddr(f.to, 'to', problem); break;
    case 'open-port':
    case 'port-opened': checkU32(f.token, 'token', problem); lep(f, f.kind); break;
    case 'close-port':
    case 'snapshot-port': lep(f, f.kind); break;
    case 'channel-bound':
    case 'channel-refreshed':
    case 'channel-unbound': checkU32(f.seq, 'seq', problem); bind(f.binding); break;
    case 'snapshot-channel': bind(f.binding); break;
    case 'snapshot-ack': for (const x of f.failed) lep(x, 'failed port'); break;
    case 'log': if (!Number.isInteger(f.level) || f.level < 0 || f.level > 255) problem(`log level ${f.level}`); break;
    case 'counters':
      for (const m of [f.counters.responses, f.counters.dropped]) {
        const keys = Object.keys(m);
        if (keys.length > MAX_REASON_KEYS || keys.some((k) => k.length < 1 || k.length > MAX_REASON_KEY_CHARS)) problem('counters reason map out of bounds');
      }
      break;
    default: break;
  }
}

/** Frames with their byte fields as arrays, so a Buffer view and the Uint8Array it was made from compare equal. */
function normalize(f: Frame): unknown {
  return 'data' in f ? { ...f, data: Array.from(f.data) } : f;
}

interface Read {
  readonly frames: Frame[];
  readonly errors: string[];
  readonly wire: number;
  readonly problems: string[];
}

/** Feeds the chunks to a reader; `stopAfter` frames, the handler stops it. */
function read(parts: readonly Buffer[], stopAfter: number | undefined): Read {
  const frames: Frame[] = [];
  const errors: string[] = [];
  const problems: string[] = [];
  let wire = 0;
  let stopped = false;
  const reader = new FrameReader({
    onFrame(f, wireBytes) {
      if (errors.length > 0) problems.push('a frame delivered after the error');
      if (stopped) problems.push('a frame delivered after stop()');
      frames.push(f);
      wire += wireBytes;
      if (frames.length === stopAfter) {
        stopped = true;
        reader.stop();
      }
    },
    onError(reason) {
      errors.push(reason);
    },
  });
  for (const c of parts) {
    reader.push(c);
    if (reader.buffered > MAX_FRAME_BYTES) problems.push(`reader holds ${reader.buffered} bytes`);
  }
  if (errors.length > 1) problems.push(`${errors.length} errors reported`);
  if (errors.length > 0 && !reader.dead) problems.push('reader not dead after an error');
  return { frames, errors, wire, problems };
}

export const linkTarget: FuzzTarget = {
  name: 'link',
  open(corpusDir): TargetRun {
    const corpus = readHexCorpus(corpusDir);
    const modes = new Tally();
    return {
      one(rng: Rng, findings: Findings): number {
        const mode = rng.weighted([[3, 'valid'], [5, 'damaged'], [1, 'nonsense'], [2, 'body']] as const);
        modes.add(mode);
        if (mode === 'body') {
          // One body for one type byte, straight into decodeFrame.
          const base = rng.chance(0.6) ? encodeFrame(randomFrame(rng)) : rng.pick(corpus);
          const b = Buffer.from(rng.chance(0.7) ? mutateBytes(rng, base, { maxLength: base.length + 64 }) : base);
          const typeOff = Math.min(LENGTH_BYTES, b.length);
          const input = () => hex(b);
          try {
            const r = b.length > typeOff ? decodeFrame(b, typeOff, b.length) : undefined;
            if (r?.ok) checkFrame(r.frame, (m) => findings.violation(m, input));
            else if (r && (typeof r.reason !== 'string' || r.reason === '')) findings.violation('refused without a reason', input);
          } catch (err) {
            findings.exception(err, input);
          }
          return 1;
        }
        const frames = Array.from({ length: rng.range(1, 12) }, () => (rng.chance(0.8) ? randomFrame(rng) : undefined));
        const s = streamOf(frames.map((f) => f ?? { kind: 'ping', nonce: 1 }));
        const bytes = mode === 'valid' ? s.bytes : mode === 'damaged' ? damage(rng, s, corpus) : nonsense(rng);
        const parts = chunks(rng, bytes);
        const stopAfter = rng.chance(0.1) ? rng.range(1, 4) : undefined;
        const input = () => `${hex(bytes)} (chunks ${parts.map((p) => p.length).join(',')}${stopAfter ? `, stop after ${stopAfter}` : ''})`;
        const problem: Problem = (m) => findings.violation(m, input);
        let got: Read;
        try {
          got = read(parts, stopAfter);
        } catch (err) {
          findings.exception(err, input);
          return 1;
        }
        for (const p of got.problems) problem(p);
        for (const f of got.frames) checkFrame(f, problem);
        if (mode === 'nonsense') return 1;
        // Frames ending before the first damaged byte come out intact.
        let firstDiff = 0;
        while (firstDiff < bytes.length && firstDiff < s.bytes.length && bytes[firstDiff] === s.bytes[firstDiff]) firstDiff++;
        const intact = s.frames.filter((f) => f.end <= firstDiff).map((f) => normalize(f.frame));
        const want = stopAfter === undefined ? intact : intact.slice(0, stopAfter);
        if (!isDeepStrictEqual(got.frames.slice(0, want.length).map(normalize), want)) problem(`the ${want.length} frames before the damage did not come out intact`);
        if (mode === 'valid') {
          if (got.errors.length > 0) problem(`valid stream refused: ${got.errors[0]}`);
          if (got.frames.length !== want.length) problem(`valid stream: ${got.frames.length} frames out, ${want.length} in`);
          if (stopAfter === undefined && got.wire !== bytes.length) problem(`wire bytes ${got.wire} != stream ${bytes.length}`);
        }
        return 1;
      },
      summary: () => [`modes: ${modes}`],
      close() {},
    };
  },
};
