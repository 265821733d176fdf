/**
 * The local link between turnpike-sidecar and turnpike-relay: wire format.
 * This comment is the spec; encoder and decoder below implement exactly it.
 *
 * Transport: a Unix stream socket (the sidecar listens, the relay connects).
 * All multi-byte integers are big-endian (network order). Addresses are
 * carried as text, exactly as node:dgram reports them, so both sides compare
 * the same strings (no reformatting of IPv6 zero runs).
 *
 * Frame = u32 length | u8 type | body
 *   length counts the type byte and the body (not itself): 1 .. 1+MAX_BODY_BYTES.
 *   A length outside that range, an unknown type, or a body that does not
 *   parse exactly (short or with trailing bytes where the layout is closed)
 *   is a protocol error: the receiver closes the connection with a logged
 *   reason. FROZEN across versions: this framing, HELLO and REJECT.
 *
 * Field types used below:
 *   addr    = u8 family (4|6) | u8 n | n bytes ASCII address | u16 port
 *   lep     = u8 family (4|6) | u16 port                 (local endpoint)
 *   binding = addr client | u16 channel | addr peer | u16 allocationPort
 *             | u16 allocationPorts.v4 (0 = none) | u16 allocationPorts.v6 (0 = none)
 *             | f64 expiresAt (ms, relay clock)
 *   str8    = u8 n | n bytes;  rest = all remaining bytes (UTF-8 unless said)
 *
 * type  name              dir  body
 * 0x01  HELLO             both u32 magic 0x54504C4B ("TPLK") | u16 version | u8 role (1 sidecar, 2 relay)
 *                                | u32 pid | str8 software version
 * 0x02  REJECT            both u8 code (1 version, 2 role, 3 busy, 4 protocol) | rest reason
 * 0x10  PACKET_IN         s->r lep local | addr remote | rest payload          (droppable)
 * 0x11  PACKET_OUT        r->s lep from  | addr to     | rest payload          (droppable)
 * 0x20  OPEN_PORT         r->s u32 token | u8 family | u16 port
 * 0x21  PORT_OPENED       s->r u32 token | u8 family | u16 port | u8 ok | rest error code text (ASCII, e.g. EADDRINUSE)
 * 0x22  CLOSE_PORT        r->s u8 family | u16 port
 * 0x30  CHANNEL_BOUND     r->s u32 seq | binding
 * 0x31  CHANNEL_REFRESHED r->s u32 seq | binding
 * 0x32  CHANNEL_UNBOUND   r->s u32 seq | binding
 * 0x33  CHANNEL_ACK       s->r u32 seq | u8 ok | rest error text
 *                                (sent once the kernel map write for that seq is done or failed)
 * 0x40  SNAPSHOT_BEGIN    r->s u32 generation
 * 0x41  SNAPSHOT_PORT     r->s u8 family | u16 port         (an allocation port the relay owns)
 * 0x42  SNAPSHOT_CHANNEL  r->s binding
 * 0x43  SNAPSHOT_END      r->s u32 generation | u32 ports | u32 channels (counts, for checking)
 * 0x44  SNAPSHOT_ACK      s->r u32 generation | u32 failedTotal | u16 n | n x (u8 family | u16 port | str8 error)
 * 0x50  PING              both u32 nonce
 * 0x51  PONG              both u32 nonce
 * 0x60  LOG               r->s u8 pino level (10..60) | str8 module | rest JSON object text   (droppable)
 * 0x61  COUNTERS          r->s rest JSON text (ServerStats plus link counters)             (droppable)
 * 0x62  LOG_FILTER        s->r rest filter text (UTF-8), e.g. `info,server=debug`: the sidecar's
 *                                current log filter, sent on connect and on every change (POST /log)
 *
 * Session: on connect both sides send HELLO at once. Each checks the other's
 * magic, version and role; on a mismatch it sends REJECT (with a reason that
 * names both versions) and closes, so both sides log the same clear error.
 * Then the relay sends a snapshot (BEGIN, PORT*, CHANNEL*, END): the sidecar
 * makes its sockets and maps equal to it and answers SNAPSHOT_ACK. Droppable
 * frames may be discarded by a sender whose queue is full; every other frame
 * is delivered in order or the link is torn down.
 */
import type { Family, LocalEndpoint, TransportAddress } from '../shared/endpoint.ts';
import type { ChannelBinding } from '../shared/binding.ts';

export const PROTOCOL_VERSION = 1;
export const MAGIC = 0x54504c4b;
export const LENGTH_BYTES = 4;
export const HEADER_BYTES = 5;
/** Largest body: a 64 KiB datagram plus its two addresses with room to spare. */
export const MAX_BODY_BYTES = 65536 + 512;
export const MAX_FRAME_BYTES = HEADER_BYTES + MAX_BODY_BYTES;
const MAX_ADDRESS_CHARS = 64;
/** Failed ports listed in one SNAPSHOT_ACK; the total is still reported. */
export const MAX_SNAPSHOT_FAILURES = 1000;

export const FrameType = {
  hello: 0x01,
  reject: 0x02,
  'packet-in': 0x10,
  'packet-out': 0x11,
  'open-port': 0x20,
  'port-opened': 0x21,
  'close-port': 0x22,
  'channel-bound': 0x30,
  'channel-refreshed': 0x31,
  'channel-unbound': 0x32,
  'channel-ack': 0x33,
  'snapshot-begin': 0x40,
  'snapshot-port': 0x41,
  'snapshot-channel': 0x42,
  'snapshot-end': 0x43,
  'snapshot-ack': 0x44,
  ping: 0x50,
  pong: 0x51,
  log: 0x60,
  counters: 0x61,
  'log-filter': 0x62,
} as const;

export type FrameKind = keyof typeof FrameType;
export type Role = 'sidecar' | 'relay';

export const RejectCode = { version: 1, role: 2, busy: 3, protocol: 4 } as const;
export type RejectReason = keyof typeof RejectCode;

export type ChannelOp = 'channel-bound' | 'channel-refreshed' | 'channel-unbound';

export type Frame =
  | { kind: 'hello'; version: number; role: Role; pid: number; software: string }
  | { kind: 'reject'; code: RejectReason; reason: string }
  | { kind: 'packet-in'; local: LocalEndpoint; remote: TransportAddress; data: Uint8Array }
  | { kind: 'packet-out'; from: LocalEndpoint; to: TransportAddress; data: Uint8Array }
  | { kind: 'open-port'; token: number; family: Family; port: number }
  | { kind: 'port-opened'; token: number; family: Family; port: number; ok: boolean; error: string }
  | { kind: 'close-port'; family: Family; port: number }
  | { kind: ChannelOp; seq: number; binding: ChannelBinding }
  | { kind: 'channel-ack'; seq: number; ok: boolean; error: string }
  | { kind: 'snapshot-begin'; generation: number }
  | { kind: 'snapshot-port'; family: Family; port: number }
  | { kind: 'snapshot-channel'; binding: ChannelBinding }
  | { kind: 'snapshot-end'; generation: number; ports: number; channels: number }
  | { kind: 'snapshot-ack'; generation: number; failedTotal: number; failed: PortFailure[] }
  | { kind: 'ping'; nonce: number }
  | { kind: 'pong'; nonce: number }
  | { kind: 'log'; level: number; module: string; json: string }
  | { kind: 'counters'; json: string }
  | { kind: 'log-filter'; filter: string };

export interface PortFailure {
  family: Family;
  port: number;
  error: string;
}

/** Frames a sender may discard under backpressure (counted). */
export function isDroppable(kind: FrameKind): boolean {
  return kind === 'packet-in' || kind === 'packet-out' || kind === 'log' || kind === 'counters';
}

const KIND_BY_TYPE: (FrameKind | undefined)[] = [];
for (const [k, v] of Object.entries(FrameType)) KIND_BY_TYPE[v] = k as FrameKind;
const ROLE_CODE: Record<Role, number> = { sidecar: 1, relay: 2 };
const REJECT_BY_CODE: (RejectReason | undefined)[] = [];
for (const [k, v] of Object.entries(RejectCode)) REJECT_BY_CODE[v] = k as RejectReason;

// ---------------------------------------------------------------- encoding

// latin1: one byte per UTF-16 unit, so the byte length is the string length.
const addrSize = (a: TransportAddress) => 4 + a.address.length;
const bindingSize = (b: ChannelBinding) => addrSize(b.client) + addrSize(b.peer) + 2 + 2 + 2 + 2 + 8;
const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');
const str8 = (s: string) => Math.min(255, utf8(s));

/** Body length of a frame (without the 5-byte header). */
function bodySize(f: Frame): number {
  switch (f.kind) {
    case 'hello': return 4 + 2 + 1 + 4 + 1 + str8(f.software);
    case 'reject': return 1 + utf8(f.reason);
    case 'packet-in': return 3 + addrSize(f.remote) + f.data.length;
    case 'packet-out': return 3 + addrSize(f.to) + f.data.length;
    case 'open-port': return 7;
    case 'port-opened': return 8 + f.error.length;
    case 'close-port': return 3;
    case 'channel-bound':
    case 'channel-refreshed':
    case 'channel-unbound': return 4 + bindingSize(f.binding);
    case 'channel-ack': return 5 + utf8(f.error);
    case 'snapshot-begin': return 4;
    case 'snapshot-port': return 3;
    case 'snapshot-channel': return bindingSize(f.binding);
    case 'snapshot-end': return 12;
    case 'snapshot-ack': {
      let n = 4 + 4 + 2;
      for (const x of f.failed.slice(0, MAX_SNAPSHOT_FAILURES)) n += 3 + 1 + str8(x.error);
      return n;
    }
    case 'ping':
    case 'pong': return 4;
    case 'log': return 1 + 1 + str8(f.module) + utf8(f.json);
    case 'counters': return utf8(f.json);
    case 'log-filter': return utf8(f.filter);
  }
}

/** Bytes this frame takes on the wire (header included). */
export function frameSize(f: Frame): number {
  return HEADER_BYTES + bodySize(f);
}

export class FrameTooLargeError extends Error {
  readonly code = 'LINK_FRAME_TOO_LARGE';
}

function writeAddr(buf: Buffer, off: number, a: TransportAddress): number {
  buf[off] = a.family;
  // A byte loop beats buf.write(s, 'latin1') for strings this short (no native call).
  const s = a.address;
  const n = s.length;
  const at = off + 2;
  for (let i = 0; i < n; i++) buf[at + i] = s.charCodeAt(i);
  buf[off + 1] = n;
  buf[at + n] = a.port >>> 8;
  buf[at + n + 1] = a.port & 0xff;
  return off + 4 + n;
}

function writeBinding(buf: Buffer, off: number, b: ChannelBinding): number {
  off = writeAddr(buf, off, b.client);
  off = buf.writeUInt16BE(b.channel, off);
  off = writeAddr(buf, off, b.peer);
  off = buf.writeUInt16BE(b.allocationPort, off);
  off = buf.writeUInt16BE(b.allocationPorts.v4 ?? 0, off);
  off = buf.writeUInt16BE(b.allocationPorts.v6 ?? 0, off);
  return buf.writeDoubleBE(b.expiresAt, off);
}

function writeStr8(buf: Buffer, off: number, s: string): number {
  // Truncate to 255 bytes; a cut UTF-8 sequence is acceptable for names/versions.
  const bytes = Buffer.from(s, 'utf8').subarray(0, 255);
  buf[off] = bytes.length;
  bytes.copy(buf, off + 1);
  return off + 1 + bytes.length;
}

function writeLep(buf: Buffer, off: number, l: LocalEndpoint): number {
  buf[off] = l.family;
  buf[off + 1] = l.port >>> 8;
  buf[off + 2] = l.port & 0xff;
  return off + 3;
}

/**
 * Writes the frame at `off` (the caller checked `frameSize` fits) and returns
 * the offset after it. Throws FrameTooLargeError for bodies over the limit
 * (a caller bug or an oversize datagram, never peer input).
 */
export function encodeFrameInto(f: Frame, buf: Buffer, off: number, size = frameSize(f)): number {
  if (size - HEADER_BYTES > MAX_BODY_BYTES) throw new FrameTooLargeError(`${f.kind} frame of ${size} bytes exceeds ${MAX_FRAME_BYTES}`);
  const start = off;
  buf.writeUInt32BE(size - LENGTH_BYTES, off);
  buf[off + 4] = FrameType[f.kind];
  off += HEADER_BYTES;
  switch (f.kind) {
    case 'hello':
      off = buf.writeUInt32BE(MAGIC, off);
      off = buf.writeUInt16BE(f.version, off);
      buf[off++] = ROLE_CODE[f.role];
      off = buf.writeUInt32BE(f.pid >>> 0, off);
      off = writeStr8(buf, off, f.software);
      break;
    case 'reject':
      buf[off++] = RejectCode[f.code];
      off += buf.write(f.reason, off, 'utf8');
      break;
    case 'packet-in':
      off = writeLep(buf, off, f.local);
      off = writeAddr(buf, off, f.remote);
      buf.set(f.data, off);
      off += f.data.length;
      break;
    case 'packet-out':
      off = writeLep(buf, off, f.from);
      off = writeAddr(buf, off, f.to);
      buf.set(f.data, off);
      off += f.data.length;
      break;
    case 'open-port':
      off = buf.writeUInt32BE(f.token >>> 0, off);
      off = writeLep(buf, off, f);
      break;
    case 'port-opened':
      off = buf.writeUInt32BE(f.token >>> 0, off);
      off = writeLep(buf, off, f);
      buf[off++] = f.ok ? 1 : 0;
      off += buf.write(f.error, off, 'latin1');
      break;
    case 'close-port':
    case 'snapshot-port':
      off = writeLep(buf, off, f);
      break;
    case 'channel-bound':
    case 'channel-refreshed':
    case 'channel-unbound':
      off = buf.writeUInt32BE(f.seq >>> 0, off);
      off = writeBinding(buf, off, f.binding);
      break;
    case 'channel-ack':
      off = buf.writeUInt32BE(f.seq >>> 0, off);
      buf[off++] = f.ok ? 1 : 0;
      off += buf.write(f.error, off, 'utf8');
      break;
    case 'snapshot-begin':
      off = buf.writeUInt32BE(f.generation >>> 0, off);
      break;
    case 'snapshot-channel':
      off = writeBinding(buf, off, f.binding);
      break;
    case 'snapshot-end':
      off = buf.writeUInt32BE(f.generation >>> 0, off);
      off = buf.writeUInt32BE(f.ports >>> 0, off);
      off = buf.writeUInt32BE(f.channels >>> 0, off);
      break;
    case 'snapshot-ack': {
      const listed = f.failed.slice(0, MAX_SNAPSHOT_FAILURES);
      off = buf.writeUInt32BE(f.generation >>> 0, off);
      off = buf.writeUInt32BE(f.failedTotal >>> 0, off);
      off = buf.writeUInt16BE(listed.length, off);
      for (const x of listed) {
        off = writeLep(buf, off, x);
        off = writeStr8(buf, off, x.error);
      }
      break;
    }
    case 'ping':
    case 'pong':
      off = buf.writeUInt32BE(f.nonce >>> 0, off);
      break;
    case 'log':
      buf[off++] = f.level;
      off = writeStr8(buf, off, f.module);
      off += buf.write(f.json, off, 'utf8');
      break;
    case 'counters':
      off += buf.write(f.json, off, 'utf8');
      break;
    case 'log-filter':
      off += buf.write(f.filter, off, 'utf8');
      break;
  }
  if (off - start !== size) throw new Error(`link encoder size mismatch for ${f.kind}: ${off - start} != ${size}`);
  return off;
}

export function encodeFrame(f: Frame): Buffer {
  const size = frameSize(f);
  const buf = Buffer.allocUnsafe(size);
  encodeFrameInto(f, buf, 0, size);
  return buf;
}

// ---------------------------------------------------------------- decoding

class Malformed extends Error {}

/** A bounds-checked reader over one frame body. */
class Cursor {
  constructor(readonly buf: Buffer, public off: number, readonly end: number) {}
  need(n: number): void {
    if (this.off + n > this.end) throw new Malformed('truncated body');
  }
  u8(): number { this.need(1); return this.buf[this.off++]!; }
  u16(): number { this.need(2); const v = this.buf.readUInt16BE(this.off); this.off += 2; return v; }
  u32(): number { this.need(4); const v = this.buf.readUInt32BE(this.off); this.off += 4; return v; }
  f64(): number { this.need(8); const v = this.buf.readDoubleBE(this.off); this.off += 8; return v; }
  family(): Family {
    const f = this.u8();
    if (f !== 4 && f !== 6) throw new Malformed(`bad address family ${f}`);
    return f;
  }
  str8(): string { const n = this.u8(); this.need(n); const s = this.buf.toString('utf8', this.off, this.off + n); this.off += n; return s; }
  restUtf8(): string { const s = this.buf.toString('utf8', this.off, this.end); this.off = this.end; return s; }
  restLatin1(): string { const s = this.buf.toString('latin1', this.off, this.end); this.off = this.end; return s; }
  /** Zero-copy view of the remaining bytes. */
  rest(): Uint8Array { const v = this.buf.subarray(this.off, this.end); this.off = this.end; return v; }
  lep(): LocalEndpoint { const family = this.family(); return { family, port: this.u16() }; }
  addr(): TransportAddress {
    const family = this.family();
    const n = this.u8();
    if (n === 0 || n > MAX_ADDRESS_CHARS) throw new Malformed(`bad address length ${n}`);
    this.need(n);
    const address = this.buf.toString('latin1', this.off, this.off + n);
    this.off += n;
    return { family, address, port: this.u16() };
  }
  binding(): ChannelBinding {
    const client = this.addr();
    const channel = this.u16();
    const peer = this.addr();
    const allocationPort = this.u16();
    const v4 = this.u16();
    const v6 = this.u16();
    const expiresAt = this.f64();
    const allocationPorts: { v4?: number; v6?: number } = {};
    if (v4 !== 0) allocationPorts.v4 = v4;
    if (v6 !== 0) allocationPorts.v6 = v6;
    return { client, channel, peer, allocationPort, allocationPorts, expiresAt };
  }
  done(): void {
    if (this.off !== this.end) throw new Malformed(`${this.end - this.off} trailing bytes`);
  }
}

export type DecodeResult = { ok: true; frame: Frame } | { ok: false; reason: string };

/**
 * Decodes one frame whose type byte is at `typeOff` and whose body ends at
 * `end` (the length prefix was already checked by the reader). Payload views
 * share memory with `buf`. Never throws.
 */
export function decodeFrame(buf: Buffer, typeOff: number, end: number): DecodeResult {
  const type = buf[typeOff]!;
  if (type === PACKET_IN || type === PACKET_OUT) {
    const fast = decodePacketFrame(buf, typeOff, end);
    if (fast !== undefined) return fast;
  }
  const kind = KIND_BY_TYPE[type];
  if (kind === undefined) return { ok: false, reason: `unknown frame type 0x${type.toString(16).padStart(2, '0')}` };
  const c = new Cursor(buf, typeOff + 1, end);
  try {
    const frame = decodeBody(kind, c);
    return { ok: true, frame };
  } catch (e) {
    if (e instanceof Malformed) return { ok: false, reason: `malformed ${kind} frame: ${e.message}` };
    return { ok: false, reason: `malformed ${kind} frame: ${(e as Error).message}` };
  }
}

const PACKET_IN = FrameType['packet-in'];
const PACKET_OUT = FrameType['packet-out'];

/**
 * Packet frames without the Cursor: the per-datagram path. Returns undefined
 * for anything unusual, so the generic decoder produces the exact error.
 */
function decodePacketFrame(buf: Buffer, typeOff: number, end: number): DecodeResult | undefined {
  let off = typeOff + 1;
  if (end - off < 7) return undefined;
  const lf = buf[off]!;
  const af = buf[off + 3]!;
  const n = buf[off + 4]!;
  if ((lf !== 4 && lf !== 6) || (af !== 4 && af !== 6) || n === 0 || n > MAX_ADDRESS_CHARS || off + 7 + n > end) return undefined;
  const local: LocalEndpoint = { family: lf, port: (buf[off + 1]! << 8) | buf[off + 2]! };
  off += 5;
  const address = internAddress(buf, off, n);
  off += n;
  const remote: TransportAddress = { family: af, address, port: (buf[off]! << 8) | buf[off + 1]! };
  off += 2;
  const data = buf.subarray(off, end);
  return buf[typeOff] === PACKET_IN
    ? { ok: true, frame: { kind: 'packet-in', local, remote, data } }
    : { ok: true, frame: { kind: 'packet-out', from: local, to: remote, data } };
}

// Recently decoded address strings, direct-mapped by a hash of their bytes.
// Handing out the same string object for the same address saves the string's
// creation and, downstream, its hashing in every Map keyed by address (the
// hash is cached on the string). Bounded: ADDRESS_CACHE slots, each replaced
// on a miss.
const ADDRESS_CACHE = 1024;
const addressCache: (string | undefined)[] = new Array(ADDRESS_CACHE).fill(undefined);

function internAddress(buf: Buffer, off: number, n: number): string {
  let h = n;
  for (let i = 0; i < n; i++) h = (Math.imul(h, 31) + buf[off + i]!) | 0;
  const slot = h & (ADDRESS_CACHE - 1);
  const cached = addressCache[slot];
  if (cached !== undefined && cached.length === n) {
    let same = true;
    for (let i = 0; i < n; i++) {
      if (cached.charCodeAt(i) !== buf[off + i]) {
        same = false;
        break;
      }
    }
    if (same) return cached;
  }
  const s = buf.toString('latin1', off, off + n);
  addressCache[slot] = s;
  return s;
}

function decodeBody(kind: FrameKind, c: Cursor): Frame {
  let f: Frame;
  switch (kind) {
    case 'hello': {
      const magic = c.u32();
      if (magic !== MAGIC) throw new Malformed('bad magic: the peer is not a turnpike link endpoint');
      const version = c.u16();
      const r = c.u8();
      const role: Role | undefined = r === 1 ? 'sidecar' : r === 2 ? 'relay' : undefined;
      if (!role) throw new Malformed(`bad role ${r}`);
      const pid = c.u32();
      const software = c.str8();
      // Later versions may append fields to HELLO; accept and ignore them.
      c.off = c.end;
      return { kind, version, role, pid, software };
    }
    case 'reject': {
      const code = REJECT_BY_CODE[c.u8()] ?? 'protocol';
      return { kind, code, reason: c.restUtf8() };
    }
    case 'packet-in': {
      const local = c.lep();
      const remote = c.addr();
      return { kind, local, remote, data: c.rest() };
    }
    case 'packet-out': {
      const from = c.lep();
      const to = c.addr();
      return { kind, from, to, data: c.rest() };
    }
    case 'open-port': {
      const token = c.u32();
      const { family, port } = c.lep();
      f = { kind, token, family, port };
      break;
    }
    case 'port-opened': {
      const token = c.u32();
      const { family, port } = c.lep();
      const ok = c.u8() !== 0;
      return { kind, token, family, port, ok, error: c.restLatin1() };
    }
    case 'close-port':
    case 'snapshot-port': {
      const { family, port } = c.lep();
      f = { kind, family, port };
      break;
    }
    case 'channel-bound':
    case 'channel-refreshed':
    case 'channel-unbound': {
      const seq = c.u32();
      f = { kind, seq, binding: c.binding() };
      break;
    }
    case 'channel-ack': {
      const seq = c.u32();
      const ok = c.u8() !== 0;
      return { kind, seq, ok, error: c.restUtf8() };
    }
    case 'snapshot-begin':
      f = { kind, generation: c.u32() };
      break;
    case 'snapshot-channel':
      f = { kind, binding: c.binding() };
      break;
    case 'snapshot-end':
      f = { kind, generation: c.u32(), ports: c.u32(), channels: c.u32() };
      break;
    case 'snapshot-ack': {
      const generation = c.u32();
      const failedTotal = c.u32();
      const n = c.u16();
      const failed: PortFailure[] = [];
      for (let i = 0; i < n; i++) {
        const { family, port } = c.lep();
        failed.push({ family, port, error: c.str8() });
      }
      f = { kind, generation, failedTotal, failed };
      break;
    }
    case 'ping':
    case 'pong':
      f = { kind, nonce: c.u32() };
      break;
    case 'log': {
      const level = c.u8();
      const module = c.str8();
      return { kind, level, module, json: c.restUtf8() };
    }
    case 'counters':
      return { kind, json: c.restUtf8() };
    case 'log-filter':
      return { kind, filter: c.restUtf8() };
  }
  c.done();
  return f;
}
