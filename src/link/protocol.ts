/**
 * The local link between turnpike-sidecar and turnpike-relay: wire format.
 * This comment is the spec; the FRAMES table below implements it, one entry
 * per row of the frame table (type byte, droppable, and the body's size,
 * encoder and decoder side by side).
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
 *                                | str8 relayed IPv4 | str8 relayed IPv6   (since version 2)
 *                                (the sidecar's choice of relayed address per family, "" = none,
 *                                as text; the relay sends both empty: it runs with no network of
 *                                its own and cannot choose)
 * 0x02  REJECT            both u8 code (1 version, 2 role, 3 busy, 4 protocol, 5 forbidden: the
 *                                connecting process is not the relay's user) | rest reason
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
 *                                that must match the schema in counters.ts (reason maps bounded)
 * 0x62  LOG_FILTER        s->r rest UTF-8 text: local filter [ "\n" stream filter ], e.g.
 *                                `info,server=debug` or `info\ndebug,bpf=trace`: the sidecar's local
 *                                filter (what is printed) and, while `stream-logs` streams, its stream
 *                                filter (what goes to Sentry); the relay makes every line either wants.
 *                                Sent on connect and on every change of either (POST /log, the flag).
 *                                No newline part: nothing is streamed (what version 1 sidecars send;
 *                                a version 1 relay refuses a filter with a newline and keeps its own).
 * 0x63  DRAIN             s->r u8 has | addr alternate (when has = 1)                        (since version 3)
 *                                the sidecar drains (SIGTERM, POST /drain): refuse new Allocates, with
 *                                300 Try Alternate naming `alternate` when there is one, else 508; existing
 *                                allocations are served. Sent again on every reconnect while draining.
 * 0x70  STATE             both u32 id | u8 final | rest bytes: one chunk of the relay's state document
 *                                (src/relay/server/state-document.ts; opaque to the sidecar, at most
 *                                MAX_STATE_CHUNK bytes per frame). r->s: the relay's current state,
 *                                sent on connect and whenever it changed (debounced); the sidecar keeps
 *                                the latest complete one. s->r: right after HELLO, the document the
 *                                sidecar holds for a restarted relay; a final frame with no bytes and
 *                                no chunks before it = none. Chunks of one document share the id and
 *                                arrive in order; the one with final = 1 completes it.   (since version 3)
 *
 * Session: on connect both sides send HELLO at once. Each checks the other's
 * magic, version and role; on a mismatch it sends REJECT (with a reason that
 * names both versions) and closes, so both sides log the same clear error.
 * The sidecar first checks who connected (SO_PEERCRED): a process that is not
 * the relay's user gets REJECT forbidden before any other frame is read.
 * The relay builds its TURN server with the relayed addresses of the first
 * HELLO it gets, restored from the STATE document the sidecar sends after
 * its HELLO (if any: a relay that restarted within the sidecar's grace time).
 * Then the relay sends a snapshot (BEGIN, PORT*, CHANNEL*, END): the sidecar
 * makes its sockets and maps equal to it and answers SNAPSHOT_ACK. Droppable
 * frames may be discarded by a sender whose queue is full; every other frame
 * is delivered in order or the link is torn down.
 */
import { isIP } from 'node:net';
import type { Family, LocalEndpoint, TransportAddress } from '../shared/endpoint.ts';
import type { ChannelBinding } from '../shared/binding.ts';
import { parseCounters, type RelayCounters } from './counters.ts';

/** 2: HELLO carries the relayed addresses, REJECT code 5 (forbidden). 3: STATE. */
export const PROTOCOL_VERSION = 3;
export const MAGIC = 0x54504c4b;
export const LENGTH_BYTES = 4;
export const HEADER_BYTES = 5;
/** Largest body: a 64 KiB datagram plus its two addresses with room to spare. */
export const MAX_BODY_BYTES = 65536 + 512;
export const MAX_FRAME_BYTES = HEADER_BYTES + MAX_BODY_BYTES;
const MAX_ADDRESS_CHARS = 64;
/** Failed ports listed in one SNAPSHOT_ACK; the total is still reported. */
export const MAX_SNAPSHOT_FAILURES = 1000;
/** Bytes of a state document carried by one STATE frame. */
export const MAX_STATE_CHUNK = 60_000;

export type Role = 'sidecar' | 'relay';

export const RejectCode = { version: 1, role: 2, busy: 3, protocol: 4, forbidden: 5 } as const;
export type RejectReason = keyof typeof RejectCode;

/** The relayed address per family, as the sidecar chose them (absent: none for that family). */
export interface RelayedAddresses {
  readonly v4?: string;
  readonly v6?: string;
}

export type ChannelOp = 'channel-bound' | 'channel-refreshed' | 'channel-unbound';

export type Frame =
  | { kind: 'hello'; version: number; role: Role; pid: number; software: string; relayAddresses?: RelayedAddresses }
  | { kind: 'reject'; code: RejectReason; reason: string }
  | { kind: 'packet-in'; local: LocalEndpoint; remote: TransportAddress; data: Uint8Array }
  | { kind: 'packet-out'; from: LocalEndpoint; to: TransportAddress; data: Uint8Array }
  | { kind: 'open-port'; token: number; family: Family; port: number }
  | { kind: 'port-opened'; token: number; family: Family; port: number; ok: boolean; error: string }
  | { kind: 'close-port'; family: Family; port: number }
  | { [K in ChannelOp]: { kind: K; seq: number; binding: ChannelBinding } }[ChannelOp]
  | { kind: 'channel-ack'; seq: number; ok: boolean; error: string }
  | { kind: 'snapshot-begin'; generation: number }
  | { kind: 'snapshot-port'; family: Family; port: number }
  | { kind: 'snapshot-channel'; binding: ChannelBinding }
  | { kind: 'snapshot-end'; generation: number; ports: number; channels: number }
  | { kind: 'snapshot-ack'; generation: number; failedTotal: number; failed: PortFailure[] }
  | { kind: 'ping'; nonce: number }
  | { kind: 'pong'; nonce: number }
  | { kind: 'log'; level: number; module: string; json: string }
  | { kind: 'counters'; counters: RelayCounters }
  /** `stream`: the stream filter, absent while nothing is streamed. */
  | { kind: 'log-filter'; filter: string; stream?: string }
  | { kind: 'drain'; alternate?: TransportAddress }
  /** One chunk of a state document (see STATE above). */
  | { kind: 'state'; id: number; final: boolean; data: Uint8Array };

export type FrameKind = Frame['kind'];
type FrameOf<K extends FrameKind> = Extract<Frame, { kind: K }>;

export interface PortFailure {
  family: Family;
  port: number;
  error: string;
}

export class FrameTooLargeError extends Error {
  readonly code = 'LINK_FRAME_TOO_LARGE';
}

class Malformed extends Error {}

// ---------------------------------------------------------------- field codecs

// latin1: one byte per UTF-16 unit, so the byte length is the string length.
const addrSize = (a: TransportAddress) => 4 + a.address.length;
const bindingSize = (b: ChannelBinding) => addrSize(b.client) + addrSize(b.peer) + 2 + 2 + 2 + 2 + 8;
const utf8Size = (s: string) => Buffer.byteLength(s, 'utf8');
const logFilterText = (f: FrameOf<'log-filter'>) => (f.stream === undefined ? f.filter : `${f.filter}\n${f.stream}`);
const str8Size = (s: string) => 1 + Math.min(255, utf8Size(s));
const LEP_BYTES = 3;

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
  return off + LEP_BYTES;
}

/** PACKET_IN and PACKET_OUT: lep | addr | rest payload. */
const packetSize = (a: TransportAddress, data: Uint8Array) => LEP_BYTES + addrSize(a) + data.length;

function writePacket(buf: Buffer, off: number, l: LocalEndpoint, a: TransportAddress, data: Uint8Array): number {
  off = writeAddr(buf, writeLep(buf, off, l), a);
  buf.set(data, off);
  return off + data.length;
}

const writeUtf8 = (buf: Buffer, off: number, s: string) => off + buf.write(s, off, 'utf8');
const writeU32 = (buf: Buffer, off: number, v: number) => buf.writeUInt32BE(v >>> 0, off);

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
  bool(): boolean { return this.u8() !== 0; }
  family(): Family {
    const f = this.u8();
    if (f !== 4 && f !== 6) throw new Malformed(`bad address family ${f}`);
    return f;
  }
  str8(): string { const n = this.u8(); this.need(n); const s = this.buf.toString('utf8', this.off, this.off + n); this.off += n; return s; }
  /** str8 holding an IP address of `family`, or "" for none. */
  ipOrNone(family: Family): string | undefined {
    const s = this.str8();
    if (s === '') return undefined;
    if (isIP(s) !== family) throw new Malformed(`relayed IPv${family} address ${JSON.stringify(s.slice(0, 64))} is not an IPv${family} address`);
    return s;
  }
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

// ---------------------------------------------------------------- the frame table

/** One row of the spec's frame table: everything the codec knows about a kind. */
interface FrameSpec<F extends { kind: FrameKind }> {
  /** The type byte. */
  readonly type: number;
  /** A sender may discard it under backpressure (counted). */
  readonly droppable: boolean;
  /** Body bytes (the 5-byte header excluded). */
  size(f: F): number;
  /** Writes the body at `off`; returns the offset after it. */
  encode(f: F, buf: Buffer, off: number): number;
  /** Reads the body (throws Malformed); the caller then requires it consumed exactly. */
  decode(c: Cursor): F;
}

type FrameTable = { readonly [K in FrameKind]: FrameSpec<FrameOf<K>> };

const ROLE_CODE: Record<Role, number> = { sidecar: 1, relay: 2 };
const REJECT_BY_CODE: (RejectReason | undefined)[] = [];
for (const [k, v] of Object.entries(RejectCode)) REJECT_BY_CODE[v] = k as RejectReason;

// Kinds that share a body layout share its codec.

/** CLOSE_PORT and SNAPSHOT_PORT: u8 family | u16 port. */
const portFrame = <K extends FrameKind>(kind: K, type: number): FrameSpec<{ kind: K; family: Family; port: number }> => ({
  type,
  droppable: false,
  size: () => LEP_BYTES,
  encode: (f, buf, off) => writeLep(buf, off, f),
  decode: (c) => ({ kind, ...c.lep() }),
});

/** CHANNEL_BOUND, CHANNEL_REFRESHED, CHANNEL_UNBOUND: u32 seq | binding. */
const channelFrame = <K extends FrameKind>(kind: K, type: number): FrameSpec<{ kind: K; seq: number; binding: ChannelBinding }> => ({
  type,
  droppable: false,
  size: (f) => 4 + bindingSize(f.binding),
  encode: (f, buf, off) => writeBinding(buf, writeU32(buf, off, f.seq), f.binding),
  decode: (c) => ({ kind, seq: c.u32(), binding: c.binding() }),
});

/** PING and PONG: u32 nonce. */
const nonceFrame = <K extends FrameKind>(kind: K, type: number): FrameSpec<{ kind: K; nonce: number }> => ({
  type,
  droppable: false,
  size: () => 4,
  encode: (f, buf, off) => writeU32(buf, off, f.nonce),
  decode: (c) => ({ kind, nonce: c.u32() }),
});

const FRAMES: FrameTable = {
  hello: {
    type: 0x01,
    droppable: false,
    size: (f) => 4 + 2 + 1 + 4 + str8Size(f.software) + str8Size(f.relayAddresses?.v4 ?? '') + str8Size(f.relayAddresses?.v6 ?? ''),
    encode(f, buf, off) {
      off = buf.writeUInt32BE(MAGIC, off);
      off = buf.writeUInt16BE(f.version, off);
      buf[off++] = ROLE_CODE[f.role];
      off = writeU32(buf, off, f.pid);
      off = writeStr8(buf, off, f.software);
      off = writeStr8(buf, off, f.relayAddresses?.v4 ?? '');
      return writeStr8(buf, off, f.relayAddresses?.v6 ?? '');
    },
    decode(c) {
      if (c.u32() !== MAGIC) throw new Malformed('bad magic: the peer is not a turnpike link endpoint');
      const version = c.u16();
      const r = c.u8();
      const role: Role | undefined = r === 1 ? 'sidecar' : r === 2 ? 'relay' : undefined;
      if (!role) throw new Malformed(`bad role ${r}`);
      const pid = c.u32();
      const software = c.str8();
      // A version-1 HELLO ends here: decode it, so the version check can name both versions.
      const v4 = c.off < c.end ? c.ipOrNone(4) : undefined;
      const v6 = c.off < c.end ? c.ipOrNone(6) : undefined;
      // Later versions may append fields to HELLO; accept and ignore them.
      c.off = c.end;
      const hello: FrameOf<'hello'> = { kind: 'hello', version, role, pid, software };
      if (v4 !== undefined || v6 !== undefined) hello.relayAddresses = { ...(v4 ? { v4 } : {}), ...(v6 ? { v6 } : {}) };
      return hello;
    },
  },
  reject: {
    type: 0x02,
    droppable: false,
    size: (f) => 1 + utf8Size(f.reason),
    encode(f, buf, off) {
      buf[off] = RejectCode[f.code];
      return writeUtf8(buf, off + 1, f.reason);
    },
    decode: (c) => ({ kind: 'reject', code: REJECT_BY_CODE[c.u8()] ?? 'protocol', reason: c.restUtf8() }),
  },
  // The per-datagram frames: decodeFrame reads them with decodePacketFrame
  // first; these decoders give the exact reason for a body that one refuses.
  'packet-in': {
    type: 0x10,
    droppable: true,
    size: (f) => packetSize(f.remote, f.data),
    encode: (f, buf, off) => writePacket(buf, off, f.local, f.remote, f.data),
    decode: (c) => ({ kind: 'packet-in', local: c.lep(), remote: c.addr(), data: c.rest() }),
  },
  'packet-out': {
    type: 0x11,
    droppable: true,
    size: (f) => packetSize(f.to, f.data),
    encode: (f, buf, off) => writePacket(buf, off, f.from, f.to, f.data),
    decode: (c) => ({ kind: 'packet-out', from: c.lep(), to: c.addr(), data: c.rest() }),
  },
  'open-port': {
    type: 0x20,
    droppable: false,
    size: () => 4 + LEP_BYTES,
    encode: (f, buf, off) => writeLep(buf, writeU32(buf, off, f.token), f),
    decode: (c) => ({ kind: 'open-port', token: c.u32(), ...c.lep() }),
  },
  'port-opened': {
    type: 0x21,
    droppable: false,
    // The error is an errno name: ASCII, so latin1 bytes = characters.
    size: (f) => 4 + LEP_BYTES + 1 + f.error.length,
    encode(f, buf, off) {
      off = writeLep(buf, writeU32(buf, off, f.token), f);
      buf[off++] = f.ok ? 1 : 0;
      return off + buf.write(f.error, off, 'latin1');
    },
    decode: (c) => ({ kind: 'port-opened', token: c.u32(), ...c.lep(), ok: c.bool(), error: c.restLatin1() }),
  },
  'close-port': portFrame('close-port', 0x22),
  'channel-bound': channelFrame('channel-bound', 0x30),
  'channel-refreshed': channelFrame('channel-refreshed', 0x31),
  'channel-unbound': channelFrame('channel-unbound', 0x32),
  'channel-ack': {
    type: 0x33,
    droppable: false,
    size: (f) => 4 + 1 + utf8Size(f.error),
    encode(f, buf, off) {
      off = writeU32(buf, off, f.seq);
      buf[off++] = f.ok ? 1 : 0;
      return writeUtf8(buf, off, f.error);
    },
    decode: (c) => ({ kind: 'channel-ack', seq: c.u32(), ok: c.bool(), error: c.restUtf8() }),
  },
  'snapshot-begin': {
    type: 0x40,
    droppable: false,
    size: () => 4,
    encode: (f, buf, off) => writeU32(buf, off, f.generation),
    decode: (c) => ({ kind: 'snapshot-begin', generation: c.u32() }),
  },
  'snapshot-port': portFrame('snapshot-port', 0x41),
  'snapshot-channel': {
    type: 0x42,
    droppable: false,
    size: (f) => bindingSize(f.binding),
    encode: (f, buf, off) => writeBinding(buf, off, f.binding),
    decode: (c) => ({ kind: 'snapshot-channel', binding: c.binding() }),
  },
  'snapshot-end': {
    type: 0x43,
    droppable: false,
    size: () => 12,
    encode: (f, buf, off) => writeU32(buf, writeU32(buf, writeU32(buf, off, f.generation), f.ports), f.channels),
    decode: (c) => ({ kind: 'snapshot-end', generation: c.u32(), ports: c.u32(), channels: c.u32() }),
  },
  'snapshot-ack': {
    type: 0x44,
    droppable: false,
    size(f) {
      let n = 4 + 4 + 2;
      for (const x of f.failed.slice(0, MAX_SNAPSHOT_FAILURES)) n += LEP_BYTES + str8Size(x.error);
      return n;
    },
    encode(f, buf, off) {
      const listed = f.failed.slice(0, MAX_SNAPSHOT_FAILURES);
      off = writeU32(buf, off, f.generation);
      off = writeU32(buf, off, f.failedTotal);
      off = buf.writeUInt16BE(listed.length, off);
      for (const x of listed) off = writeStr8(buf, writeLep(buf, off, x), x.error);
      return off;
    },
    decode(c) {
      const generation = c.u32();
      const failedTotal = c.u32();
      const n = c.u16();
      const failed: PortFailure[] = [];
      for (let i = 0; i < n; i++) failed.push({ ...c.lep(), error: c.str8() });
      return { kind: 'snapshot-ack', generation, failedTotal, failed };
    },
  },
  ping: nonceFrame('ping', 0x50),
  pong: nonceFrame('pong', 0x51),
  log: {
    type: 0x60,
    droppable: true,
    size: (f) => 1 + str8Size(f.module) + utf8Size(f.json),
    encode(f, buf, off) {
      buf[off] = f.level;
      return writeUtf8(buf, writeStr8(buf, off + 1, f.module), f.json);
    },
    decode: (c) => ({ kind: 'log', level: c.u8(), module: c.str8(), json: c.restUtf8() }),
  },
  counters: {
    type: 0x61,
    droppable: true,
    // Stringified twice (size, then encode): once a second, cheaper than a cache.
    size: (f) => utf8Size(JSON.stringify(f.counters)),
    encode: (f, buf, off) => writeUtf8(buf, off, JSON.stringify(f.counters)),
    decode(c) {
      const r = parseCounters(c.restUtf8());
      if (!r.ok) throw new Malformed(r.reason);
      return { kind: 'counters', counters: r.counters };
    },
  },
  'log-filter': {
    type: 0x62,
    droppable: false,
    size: (f) => utf8Size(logFilterText(f)),
    encode: (f, buf, off) => writeUtf8(buf, off, logFilterText(f)),
    decode(c) {
      const text = c.restUtf8();
      const nl = text.indexOf('\n');
      return nl < 0 ? { kind: 'log-filter', filter: text } : { kind: 'log-filter', filter: text.slice(0, nl), stream: text.slice(nl + 1) };
    },
  },
  drain: {
    type: 0x63,
    droppable: false,
    size: (f) => 1 + (f.alternate ? addrSize(f.alternate) : 0),
    encode(f, buf, off) {
      buf[off] = f.alternate ? 1 : 0;
      return f.alternate ? writeAddr(buf, off + 1, f.alternate) : off + 1;
    },
    decode: (c) => (c.bool() ? { kind: 'drain', alternate: c.addr() } : { kind: 'drain' }),
  },
  state: {
    type: 0x70,
    droppable: false,
    size: (f) => 4 + 1 + f.data.length,
    encode(f, buf, off) {
      off = writeU32(buf, off, f.id);
      buf[off++] = f.final ? 1 : 0;
      buf.set(f.data, off);
      return off + f.data.length;
    },
    decode(c) {
      const id = c.u32();
      const final = c.bool();
      const data = c.rest();
      if (data.length > MAX_STATE_CHUNK) throw new Malformed(`state chunk of ${data.length} bytes exceeds ${MAX_STATE_CHUNK}`);
      return { kind: 'state', id, final, data };
    },
  },
};

const specOf = (kind: FrameKind): FrameSpec<Frame> => FRAMES[kind];

/** The type byte of every kind. */
export const FrameType = Object.fromEntries(Object.entries(FRAMES).map(([k, s]) => [k, s.type])) as { readonly [K in FrameKind]: number };

const BY_TYPE: ({ kind: FrameKind; spec: FrameSpec<Frame> } | undefined)[] = [];
for (const [kind, spec] of Object.entries(FRAMES) as [FrameKind, FrameSpec<Frame>][]) {
  if (BY_TYPE[spec.type]) throw new Error(`link frame type 0x${spec.type.toString(16)} used twice`);
  BY_TYPE[spec.type] = { kind, spec };
}

/** Frames a sender may discard under backpressure (counted). */
export function isDroppable(kind: FrameKind): boolean {
  return FRAMES[kind].droppable;
}

// ---------------------------------------------------------------- encoding

/** Bytes this frame takes on the wire (header included). */
export function frameSize(f: Frame): number {
  return HEADER_BYTES + specOf(f.kind).size(f);
}

/**
 * Writes the frame at `off` (the caller checked `frameSize` fits) and returns
 * the offset after it. Throws FrameTooLargeError for bodies over the limit
 * (a caller bug or an oversize datagram, never peer input).
 */
export function encodeFrameInto(f: Frame, buf: Buffer, off: number, size = frameSize(f)): number {
  if (size - HEADER_BYTES > MAX_BODY_BYTES) throw new FrameTooLargeError(`${f.kind} frame of ${size} bytes exceeds ${MAX_FRAME_BYTES}`);
  const spec = specOf(f.kind);
  buf.writeUInt32BE(size - LENGTH_BYTES, off);
  buf[off + 4] = spec.type;
  const end = spec.encode(f, buf, off + HEADER_BYTES);
  if (end - off !== size) throw new Error(`link encoder size mismatch for ${f.kind}: ${end - off} != ${size}`);
  return end;
}

export function encodeFrame(f: Frame): Buffer {
  const size = frameSize(f);
  const buf = Buffer.allocUnsafe(size);
  encodeFrameInto(f, buf, 0, size);
  return buf;
}

// ---------------------------------------------------------------- decoding

export type DecodeResult = { ok: true; frame: Frame } | { ok: false; reason: string };

const PACKET_IN = FRAMES['packet-in'].type;
const PACKET_OUT = FRAMES['packet-out'].type;

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
  const row = BY_TYPE[type];
  if (row === undefined) return { ok: false, reason: `unknown frame type 0x${type.toString(16).padStart(2, '0')}` };
  const c = new Cursor(buf, typeOff + 1, end);
  try {
    const frame = row.spec.decode(c);
    c.done();
    return { ok: true, frame };
  } catch (e) {
    return { ok: false, reason: `malformed ${row.kind} frame: ${(e as Error).message}` };
  }
}

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
