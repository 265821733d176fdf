// Batched UDP sends for node:dgram sockets: datagrams queued during one turn
// of the event loop leave with one sendmmsg(2) per socket when the turn ends,
// instead of one syscall (and libuv request) each. The relay's packet-out
// frames arrive many to a link read, so one turn carries many datagrams.
//
// Where the kernel has UDP GSO (UDP_SEGMENT, 4.18+), a socket's datagrams of
// one size to one destination leave as one message the kernel cuts into
// those datagrams (the receiver sees no difference): the stack is walked once
// per message, not per datagram, which was most of the sidecar's send cost.
//
// Where libc cannot be bound (see native.ts: x86_64 Linux with koffi),
// `openSendBatcher` returns why and callers keep plain dgram.send.
// Datagrams are copied into one preallocated native arena, laid out with the
// struct declarations of native.ts, so nothing is allocated per packet.
import type { Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { constants as osConstants } from 'node:os';
import { errnoCode } from '../shared/errno.ts';
import { addressToBytes, formatAddress, formatV4 } from '../shared/ip.ts';
import { AF_INET, AF_INET6, MSG_DONTWAIT, MSG_TRUNC, SOL_UDP, UDP_SEGMENT, libc, type Libc, type MmsgLayout, type RecvMmsg, type SendMmsg } from './native.ts';
import { fdOf } from './socket-fd.ts';

/** Datagrams held per turn before an early flush. */
const SLOTS = 256;
/** Largest datagram the arena holds; bigger ones go through the fallback (after a flush, to keep order). */
export const MAX_BATCHED_BYTES = 2048;
/**
 * Bytes in front of each slot's datagram that no iovec covers: a datagram
 * whose payload starts a few bytes into its buffer (ChannelData in, UDP
 * out) is copied whole, its header landing here, because copying a range
 * out of a Buffer makes a view object (~96 B of garbage per datagram).
 */
const SLOT_GUARD = 8;
const SLOT_STRIDE = MAX_BATCHED_BYTES + SLOT_GUARD;
/** UDP_MAX_SEGMENTS (include/linux/udp.h) on every kernel with UDP GSO. */
const GSO_MAX_SEGMENTS = 64;
/** One GSO send is one UDP datagram before segmentation: under 64 KiB with headers. */
const GSO_MAX_BYTES = 65000;

const EAGAIN = osConstants.errno.EAGAIN;
const EINTR = osConstants.errno.EINTR;
/** A GSO send refused for what the output device cannot do: GSO stays off from then on. */
const GSO_UNSUPPORTED = new Set([osConstants.errno.EIO, osConstants.errno.EOPNOTSUPP, osConstants.errno.ENOPROTOOPT]);

/** Where a queued datagram goes when the batch cannot take it. */
export type FallbackSend = (socket: Socket, data: Uint8Array, port: number, address: string) => void;
/** A kernel send error for one datagram (code as node reports it, "EHOSTUNREACH"). */
export type SendErrorSink = (socket: Socket, code: string, port: number, address: string) => void;

type Arena = ReturnType<Libc['alloc']>;

/** A socket's queued slots; one object per socket, reused across turns. */
interface Pending {
  socket: Socket;
  slots: Int16Array;
  n: number;
  queued: boolean;
}

export interface SendBatcherOptions {
  /**
   * UDP GSO (UDP_SEGMENT): 'auto' sends same-size datagrams to one
   * destination queued in a turn as one message the kernel segments, where
   * the kernel offers it; 'off': one message per datagram.
   */
  gso?: 'auto' | 'off';
  /** Largest datagram put into a GSO send: the kernel refuses a segment bigger than the path MTU allows. Default 1452 (1500 - IPv6 - UDP). */
  gsoMaxSegment?: number;
  /** Where in `arena` this batcher's region starts (it may share the arena with a RecvDrainer). */
  arenaOffset?: number;
}

export interface SendBatcherStats {
  /** 'unknown' until the first send asks the kernel. */
  gso: 'on' | 'off' | 'unknown';
  /** Messages handed to sendmmsg and the datagrams in them (equal without GSO). */
  messages: number;
  datagrams: number;
  /** GSO sends the kernel refused, whose datagrams then left one by one. */
  gsoRefused: number;
}

/** Bytes per arena for SLOTS datagrams, with the layout's structs. */
export const arenaBytes = (L: MmsgLayout) => SLOTS * (2 * L.mmsghdr + L.meta + L.iovec + L.cmsgSpaceU16 + SLOT_STRIDE);

export class SendBatcher {
  private readonly bytes: Buffer;
  private readonly view: DataView;
  private readonly base: bigint;
  /** The arena's address in two 32-bit halves, for pointer writes through the DataView. */
  private readonly baseLo: number;
  private readonly baseHi: number;
  /** Arena regions: messages (the second half for one-by-one retries), per-slot iovec+address, gathered iovecs, GSO cmsgs, datagrams. */
  private readonly msgAt: number;
  private readonly singlesAt: number;
  private readonly metaAt: number;
  private readonly iovAt: number;
  private readonly cmsgAt: number;
  private readonly dataAt: number;
  /** Each slot's destination as the caller gave it, for the fallback and error reports. */
  private readonly toAddress: string[] = new Array<string>(SLOTS).fill('');
  private readonly toPort = new Uint16Array(SLOTS);
  private readonly lens = new Uint16Array(SLOTS);
  /** Each slot's sockaddr: one object per destination (cached), so it keys the GSO grouping. */
  private readonly saOf: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(SLOTS).fill(undefined);
  /** A flush's messages: their datagrams as linked lists of slots, then in send order. */
  private readonly nextSlot = new Int16Array(SLOTS);
  private readonly gHead = new Int16Array(SLOTS);
  private readonly gTail = new Int16Array(SLOTS);
  private readonly gCount = new Int32Array(SLOTS);
  private readonly gBytes = new Int32Array(SLOTS);
  private readonly gSeg = new Int32Array(SLOTS);
  private readonly gOpen = new Uint8Array(SLOTS);
  /**
   * A destination's group in the flush being built: [flush number, group].
   * Kept across flushes (one entry per cached sockaddr): a Map cleared per
   * flush reallocates its table every time, garbage on every wake-up.
   */
  private readonly groupOf = new Map<Uint8Array, Int32Array>();
  private buildSeq = 0;
  private readonly order = new Int16Array(SLOTS);
  private readonly msgStart = new Int32Array(SLOTS + 1);
  private used = 0;
  /**
   * Sockets with datagrams queued this turn, in order of their first one:
   * active[0, activeN). A list kept at its size, not emptied by `length = 0`,
   * which gives up its backing store so the next push allocates one again
   * (~140 B per flush, most of what a relayed datagram cost the sidecar
   * besides node's own receive). At most SLOTS: each holds a slot.
   */
  private readonly active: (Pending | undefined)[] = new Array<Pending | undefined>(SLOTS).fill(undefined);
  private activeN = 0;
  private readonly pendingOf = new WeakMap<Socket, Pending>();
  private scheduled = false;
  /** The caller flushes before its turn ends (hold()): no end-of-turn flush is scheduled. */
  private held = false;
  /** address -> port -> sockaddr: destinations repeat, and the lookup builds no string. */
  private readonly sockaddrCache = new Map<string, Map<number, Uint8Array>>();
  private sockaddrCount = 0;
  private readonly flushNow = () => this.flush();
  private closed = false;
  private gso: 'on' | 'off' | 'unknown';
  /** Where sendmmsg starts in the usual case (the first message), as the BigInt koffi takes: not made per send. */
  private readonly msgVec: bigint;
  private readonly gsoMaxSegment: number;
  private readonly counts = { messages: 0, datagrams: 0, gsoRefused: 0 };

  constructor(
    private readonly sendmmsg: SendMmsg,
    private readonly errno: () => number,
    private readonly L: MmsgLayout,
    private readonly arena: Arena,
    private readonly fallback: FallbackSend,
    private readonly onError: SendErrorSink,
    private readonly gsoProbe: (fd: number) => boolean = () => false,
    options: SendBatcherOptions = {},
  ) {
    this.base = arena.base;
    this.baseLo = Number(arena.base & 0xffffffffn);
    this.baseHi = Number(arena.base >> 32n);
    this.bytes = Buffer.from(arena.buffer);
    this.view = new DataView(arena.buffer);
    this.msgAt = options.arenaOffset ?? 0;
    this.singlesAt = this.msgAt + SLOTS * L.mmsghdr;
    this.metaAt = this.msgAt + 2 * SLOTS * L.mmsghdr;
    this.iovAt = this.metaAt + SLOTS * L.meta;
    this.cmsgAt = this.iovAt + SLOTS * L.iovec;
    this.dataAt = this.cmsgAt + SLOTS * L.cmsgSpaceU16;
    this.msgVec = arena.base + BigInt(this.msgAt);
    this.gso = options.gso === 'off' ? 'off' : 'unknown';
    this.gsoMaxSegment = options.gsoMaxSegment ?? 1452;
    for (let i = 0; i < SLOTS; i++) {
      // iov_base never changes; only iov_len does.
      this.setPtr(this.metaAt + i * L.meta + L.iovBase, this.slotAt(i));
      // A GSO message's cmsg differs only in its segment size.
      const c = this.cmsgAt + i * L.cmsgSpaceU16;
      this.view.setUint32(c + L.cmsgLen, L.cmsgLenU16, true);
      this.view.setInt32(c + L.cmsgLevel, SOL_UDP, true);
      this.view.setInt32(c + L.cmsgType, UDP_SEGMENT, true);
    }
  }

  /**
   * Queues one datagram, data[start, end) (with channel >= 0: a ChannelData
   * header for that channel in front); false when it was not queued (too big, or the
   * address is not an IP literal) and the caller must send it itself —
   * pending datagrams of every socket are flushed first, so order holds.
   */
  enqueue(socket: Socket, data: Uint8Array, port: number, address: string, channel = -1, start = 0, end = data.byteLength): boolean {
    if (this.closed) return false;
    const head = channel >= 0 ? 4 : 0;
    const len = end - start + head;
    // Port 0 and the like: dgram.send refuses them synchronously (ERR_SOCKET_BAD_PORT); let it.
    if (len > MAX_BATCHED_BYTES || !(port > 0 && port < 65536 && (port | 0) === port)) {
      this.flush();
      return false;
    }
    const sa = this.sockaddr(address, port);
    if (!sa) {
      this.flush();
      return false;
    }
    if (this.used === SLOTS) this.flush();
    const i = this.used++;
    const meta = this.metaAt + i * this.L.meta;
    const at = this.slotAt(i);
    // A drain's datagram lies in this same arena (openBatchedIo): copyWithin copies it without a view object.
    if (data.buffer === this.bytes.buffer && data.byteOffset === 0) this.bytes.copyWithin(at + head, start, end);
    // The whole buffer, what precedes the payload going into the slot's guard (or under the header written next).
    else if (end === data.byteLength && start - head <= SLOT_GUARD) this.bytes.set(data, at + head - start);
    else copyRange(data, this.bytes, at + head, start, end);
    if (head !== 0) {
      // A ChannelData header (RFC 8656 12.4) in front of the payload, written here so the payload is copied once.
      this.view.setUint16(at, channel, false);
      this.view.setUint16(at + 2, end - start, false);
    }
    // iov_len is a size_t: its high half stays zero.
    this.view.setUint32(meta + this.L.iovLen, len, true);
    this.bytes.set(sa, meta + this.L.addr);
    this.lens[i] = len;
    this.saOf[i] = sa;
    this.toAddress[i] = address;
    this.toPort[i] = port;
    let p = this.pendingOf.get(socket);
    if (p === undefined) {
      p = { socket, slots: new Int16Array(SLOTS), n: 0, queued: false };
      this.pendingOf.set(socket, p);
    }
    if (!p.queued) {
      p.queued = true;
      p.n = 0;
      this.active[this.activeN++] = p;
    }
    p.slots[p.n++] = i;
    if (!this.scheduled && !this.held) {
      this.scheduled = true;
      // node's queueMicrotask makes an AsyncResource and a bound function per call: a third of what the fast path allocated per wake-up.
      queueMicrotask(this.flushNow);
    }
    return true;
  }

  /**
   * The caller will flush() before its synchronous work ends (a socket's
   * receive handler, which flushes after draining the socket): enqueues until
   * then schedule no end-of-turn flush. flush() ends the hold.
   */
  hold(): void {
    this.held = true;
  }

  /** Sends what one socket has queued (before it closes: its fd number may be reused at once). */
  flushSocket(socket: Socket): void {
    const p = this.pendingOf.get(socket);
    this.pendingOf.delete(socket);
    if (p === undefined || !p.queued) return;
    const active = this.active;
    const at = active.indexOf(p);
    for (let k = at + 1; k < this.activeN; k++) active[k - 1] = active[k];
    active[--this.activeN] = undefined;
    p.queued = false;
    this.sendAll(p);
    if (this.activeN === 0) this.used = 0;
  }

  /** Sends everything queued. */
  flush(): void {
    this.scheduled = false;
    this.held = false;
    if (this.closed) return;
    const active = this.active;
    const n = this.activeN;
    for (let k = 0; k < n; k++) {
      const p = active[k]!;
      // Not kept: a closed socket's Pending would stay reachable from here.
      active[k] = undefined;
      p.queued = false;
      this.sendAll(p);
    }
    this.activeN = 0;
    this.used = 0;
  }

  stats(): SendBatcherStats {
    return { gso: this.gso, ...this.counts };
  }

  /** Flushes and releases the native arena; later enqueues are refused. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.arena.free();
  }

  /** Where slot i's datagram starts in the arena (after its guard). */
  private slotAt(i: number): number {
    return this.dataAt + i * SLOT_STRIDE + SLOT_GUARD;
  }

  /** Writes the arena address of `off` as a pointer at `at`. */
  private setPtr(at: number, off: number): void {
    let lo = this.baseLo + off;
    let hi = this.baseHi;
    if (lo >= 0x1_0000_0000) {
      lo -= 0x1_0000_0000;
      hi++;
    }
    this.view.setUint32(at, lo, true);
    this.view.setUint32(at + 4, hi, true);
  }

  /**
   * One socket's datagrams as messages: with GSO, datagrams to one
   * destination of one size (the last may be shorter) share a message, in
   * their order; a destination's datagrams keep their order across messages.
   * Returns the message count; `order` holds the slots in send order.
   */
  private build(slots: Int16Array, count: number): number {
    const L = this.L;
    const v = this.view;
    const gso = this.gso === 'on';
    const groupOf = this.groupOf;
    // Group entries of earlier flushes are stale by their number; |0 keeps it a small integer.
    const seq = (this.buildSeq = (this.buildSeq + 1) | 0);
    let G = 0;
    for (let k = 0; k < count; k++) {
      const i = slots[k]!;
      const len = this.lens[i]!;
      const sa = this.saOf[i]!;
      const e = gso ? groupOf.get(sa) : undefined;
      const g = e !== undefined && e[0] === seq ? e[1] : undefined;
      if (g !== undefined && this.gOpen[g] === 1 && len <= this.gSeg[g]! && this.gCount[g]! < GSO_MAX_SEGMENTS && this.gBytes[g]! + len <= GSO_MAX_BYTES) {
        this.nextSlot[this.gTail[g]!] = i;
        this.gTail[g] = i;
        this.gCount[g]!++;
        this.gBytes[g]! += len;
        // Only the last segment may be shorter.
        if (len < this.gSeg[g]!) this.gOpen[g] = 0;
      } else {
        const n = G++;
        this.gHead[n] = i;
        this.gTail[n] = i;
        this.gCount[n] = 1;
        this.gBytes[n] = len;
        this.gSeg[n] = len;
        this.gOpen[n] = gso && len <= this.gsoMaxSegment ? 1 : 0;
        if (gso) {
          if (e !== undefined) {
            e[0] = seq;
            e[1] = n;
          } else groupOf.set(sa, Int32Array.of(seq, n));
        }
      }
      this.nextSlot[i] = -1;
    }
    let pos = 0;
    for (let g = 0; g < G; g++) {
      const m = this.msgAt + g * L.mmsghdr;
      const head = this.gHead[g]!;
      this.msgStart[g] = pos;
      for (let i = head; i !== -1; i = this.nextSlot[i]!) {
        this.order[pos] = i;
        const iov = this.iovAt + pos * L.iovec;
        this.setPtr(iov + L.iovBase, this.slotAt(i));
        v.setUint32(iov + L.iovLen, this.lens[i]!, true);
        pos++;
      }
      const sa = this.metaAt + head * L.meta + L.addr;
      this.setPtr(m + L.msgName, sa);
      v.setUint32(m + L.msgNamelen, v.getUint16(sa + L.family, true) === AF_INET ? L.sockaddrIn : L.sockaddrIn6, true);
      this.setPtr(m + L.msgIov, this.iovAt + this.msgStart[g]! * L.iovec);
      v.setUint32(m + L.msgIovlen, this.gCount[g]!, true); // a size_t; the high half stays zero
      if (this.gCount[g]! > 1) {
        const c = this.cmsgAt + g * L.cmsgSpaceU16;
        v.setUint16(c + L.cmsgData, this.gSeg[g]!, true);
        this.setPtr(m + L.msgControl, c);
        v.setUint32(m + L.msgControllen, L.cmsgSpaceU16, true);
      } else {
        v.setUint32(m + L.msgControl, 0, true);
        v.setUint32(m + L.msgControl + 4, 0, true);
        v.setUint32(m + L.msgControllen, 0, true);
      }
    }
    this.msgStart[G] = pos;
    return G;
  }

  private sendAll(p: Pending): void {
    const { slots, socket, n } = p;
    const fd = fdOf(socket);
    if (fd < 0) {
      // Closed under us: dgram.send would throw ERR_SOCKET_DGRAM_NOT_RUNNING; let the fallback report it the same way.
      this.fallbackSlots(socket, slots, 0, n);
      return;
    }
    if (this.gso === 'unknown') this.gso = this.gsoProbe(fd) ? 'on' : 'off';
    const G = this.build(slots, n);
    const L = this.L;
    let done = 0;
    while (done < G) {
      const r = this.sendmmsg(fd, done === 0 ? this.msgVec : this.base + BigInt(this.msgAt + done * L.mmsghdr), G - done, 0);
      if (r > 0) {
        for (let g = done; g < done + r; g++) this.counted(this.gCount[g]!);
        done += r;
        continue;
      }
      const e = this.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) {
        // The socket buffer is full (libuv made the fd non-blocking): libuv queues the rest and retries when writable.
        this.fallbackSlots(socket, this.order, this.msgStart[done]!, n);
        return;
      }
      if (this.gCount[done]! > 1) {
        // The kernel refused the GSO send as a whole: its datagrams go one by one, each with its own error.
        this.counts.gsoRefused++;
        if (GSO_UNSUPPORTED.has(e)) {
          // Off from now on, for this flush's later messages too.
          this.gso = 'off';
          this.sendSingles(fd, socket, this.msgStart[done]!, n);
          return;
        }
        if (!this.sendSingles(fd, socket, this.msgStart[done]!, this.msgStart[done + 1]!)) {
          this.fallbackSlots(socket, this.order, this.msgStart[done + 1]!, n);
          return;
        }
      } else {
        // sendmmsg fails only on its first message; that datagram is lost, as a kernel error on dgram.send loses it.
        const i = this.order[this.msgStart[done]!]!;
        this.onError(socket, errnoCode(e), this.toPort[i]!, this.toAddress[i]!);
      }
      done++;
    }
  }

  /** order[from, to) one message each (the arena's second message area); false when the socket filled up (the rest went to the fallback). */
  private sendSingles(fd: number, socket: Socket, from: number, to: number): boolean {
    const L = this.L;
    const v = this.view;
    for (let k = from; k < to; k++) {
      const i = this.order[k]!;
      const m = this.singlesAt + (k - from) * L.mmsghdr;
      const meta = this.metaAt + i * L.meta;
      this.setPtr(m + L.msgName, meta + L.addr);
      v.setUint32(m + L.msgNamelen, v.getUint16(meta + L.addr + L.family, true) === AF_INET ? L.sockaddrIn : L.sockaddrIn6, true);
      this.setPtr(m + L.msgIov, meta + L.iovBase);
      v.setUint32(m + L.msgIovlen, 1, true);
    }
    let done = from;
    while (done < to) {
      const r = this.sendmmsg(fd, this.base + BigInt(this.singlesAt + (done - from) * L.mmsghdr), to - done, 0);
      if (r > 0) {
        for (let k = 0; k < r; k++) this.counted(1);
        done += r;
        continue;
      }
      const e = this.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) {
        this.fallbackSlots(socket, this.order, done, to);
        return false;
      }
      const i = this.order[done]!;
      this.onError(socket, errnoCode(e), this.toPort[i]!, this.toAddress[i]!);
      done++;
    }
    return true;
  }

  private counted(datagrams: number): void {
    this.counts.messages++;
    this.counts.datagrams += datagrams;
  }

  private fallbackSlots(socket: Socket, list: ArrayLike<number>, from: number, to: number): void {
    for (let k = from; k < to; k++) {
      const i = list[k]!;
      const off = this.slotAt(i);
      this.fallback(socket, Buffer.from(this.bytes.subarray(off, off + this.lens[i]!)), this.toPort[i]!, this.toAddress[i]!);
    }
  }

  /** sockaddr_in/sockaddr_in6 bytes for an IP literal (cached: destinations repeat); null for anything else. */
  private sockaddr(address: string, port: number): Uint8Array | null {
    let byPort = this.sockaddrCache.get(address);
    let sa = byPort?.get(port);
    if (sa) return sa;
    // Names need a lookup and scoped IPv6 a scope id: dgram.send takes those.
    const ip = isIP(address) !== 0 && !address.includes('%') ? addressToBytes(address) : undefined;
    if (!ip) return null;
    sa = new Uint8Array(this.L.sockaddr);
    const v = new DataView(sa.buffer);
    v.setUint16(this.L.family, ip.length === 4 ? AF_INET : AF_INET6, true);
    v.setUint16(this.L.port, port, false);
    sa.set(ip, ip.length === 4 ? this.L.sinAddr : this.L.sin6Addr);
    if (this.sockaddrCount >= 65536) {
      this.sockaddrCache.clear();
      this.groupOf.clear();
      this.sockaddrCount = 0;
      byPort = undefined;
    }
    if (!byPort) this.sockaddrCache.set(address, (byPort = new Map()));
    byPort.set(port, sa);
    this.sockaddrCount++;
    return sa;
  }
}

/** Datagrams one drain reads at most. */
const RECV_SLOTS = 64;
/** node:dgram reads into 64 KiB too: no datagram that reaches it is cut. */
const RECV_BYTES = 65536;
/** Slots are not 64 KiB apart: a power-of-two stride puts every slot's first bytes in the same cache sets. */
const RECV_STRIDE = RECV_BYTES + 320;

/** One datagram read by a drain; `family` is the sockaddr's, as node:dgram reports it. Every datagram read is delivered. */
export type DrainedHandler = (data: Buffer, family: 'IPv4' | 'IPv6', address: string, port: number) => unknown;
/**
 * Offered each datagram first, in place: bytes[off, off + len) of the drain's
 * own memory, valid only during the call. True: taken, not delivered (and
 * never copied out).
 */
export type DrainPeek = (bytes: Buffer, off: number, len: number, family: 4 | 6, address: string, port: number) => boolean;

/**
 * Reads what a socket's receive queue holds with recvmmsg(MSG_DONTWAIT),
 * called from a 'message' handler: libuv delivers one datagram per callback
 * into JS, this delivers up to RECV_SLOTS more for the same wake-up. Both run
 * on the one JS thread, one after the other, so arrival order holds.
 */
export class RecvDrainer {
  private readonly bytes: Buffer;
  private readonly view: DataView;
  private readonly metaAt: number;
  private readonly dataAt: number;
  private readonly recvAt: bigint;
  private readonly addrCache = new Map<string, string>();
  private readonly v4Cache = new Map<number, string>();
  private lastUsed = RECV_SLOTS;
  private closed = false;

  constructor(
    private readonly recvmmsg: RecvMmsg,
    private readonly errno: () => number,
    private readonly L: MmsgLayout,
    private readonly arena: Arena,
    /** Where in `arena` this drainer's region starts (it may share the arena with a SendBatcher). */
    private readonly msgAt = 0,
  ) {
    this.bytes = Buffer.from(arena.buffer);
    this.view = new DataView(arena.buffer);
    this.metaAt = msgAt + RECV_SLOTS * L.mmsghdr;
    this.recvAt = arena.base + BigInt(msgAt);
    this.dataAt = this.metaAt + RECV_SLOTS * L.meta;
    const v = this.view;
    const at = (off: number) => arena.base + BigInt(off);
    for (let i = 0; i < RECV_SLOTS; i++) {
      const m = msgAt + i * L.mmsghdr;
      const meta = this.metaAt + i * L.meta;
      v.setBigUint64(m + L.msgName, at(meta + L.addr), true);
      v.setBigUint64(m + L.msgIov, at(meta + L.iovBase), true);
      v.setBigUint64(m + L.msgIovlen, 1n, true);
      v.setBigUint64(meta + L.iovBase, at(this.dataAt + i * RECV_STRIDE), true);
      v.setBigUint64(meta + L.iovLen, BigInt(RECV_BYTES), true);
    }
  }

  /**
   * Delivers what `fd` holds now; returns how many datagrams, or a negative
   * errno (EAGAIN, an empty queue, is 0). Truncated datagrams cannot happen
   * with 64 KiB slots but would be dropped, not delivered cut.
   */
  drain(fd: number, deliver: DrainedHandler, peek?: DrainPeek): number {
    if (this.closed || fd < 0) return 0;
    const v = this.view;
    const L = this.L;
    // The kernel writes the sockaddr length back; reset those it touched.
    for (let i = 0; i < this.lastUsed; i++) v.setUint32(this.msgAt + i * L.mmsghdr + L.msgNamelen, L.sockaddr, true);
    const n = this.recvmmsg(fd, this.recvAt, RECV_SLOTS, MSG_DONTWAIT, null);
    if (n < 0) {
      this.lastUsed = 0;
      const e = this.errno();
      return e === EAGAIN || e === EINTR ? 0 : -e;
    }
    this.lastUsed = n;
    // In locals: deliver() is opaque to the JIT, which would reload each offset after it.
    const { mmsghdr, msgFlags, msgLen, meta, addr, family, port: portAt, sinAddr, sin6Addr } = L;
    const addrAt = this.metaAt + addr;
    for (let i = 0; i < n; i++) {
      const m = this.msgAt + i * mmsghdr;
      if (v.getInt32(m + msgFlags, true) & MSG_TRUNC) continue;
      const len = v.getUint32(m + msgLen, true);
      const sa = addrAt + i * meta;
      const off = this.dataAt + i * RECV_STRIDE;
      const port = v.getUint16(sa + portAt, false);
      const v4 = v.getUint16(sa + family, true) === AF_INET;
      const address = v4 ? this.ipv4At(sa + sinAddr) : this.ipv6At(sa + sin6Addr);
      if (peek !== undefined && peek(this.bytes, off, len, v4 ? 4 : 6, address, port)) continue;
      const data = Buffer.allocUnsafe(len);
      this.bytes.copy(data, 0, off, off + len);
      deliver(data, v4 ? 'IPv4' : 'IPv6', address, port);
    }
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.arena.free();
  }

  /** Sources repeat: one string per address, not one per datagram. */
  private ipv4At(off: number): string {
    const key = this.view.getInt32(off, false);
    let s = this.v4Cache.get(key);
    if (s === undefined) {
      s = formatV4(this.bytes, off);
      if (this.v4Cache.size >= 65536) this.v4Cache.clear();
      this.v4Cache.set(key, s);
    }
    return s;
  }

  private ipv6At(off: number): string {
    const key = this.bytes.toString('latin1', off, off + 16);
    let s = this.addrCache.get(key);
    if (s === undefined) {
      s = dgramIPv6Text(this.bytes.subarray(off, off + 16));
      if (this.addrCache.size >= 65536) this.addrCache.clear();
      this.addrCache.set(key, s);
    }
    return s;
  }
}

/**
 * 16 address bytes as node:dgram reports them (libuv's inet_ntop): RFC 5952,
 * as shared/ip writes it, but for the deprecated IPv4-compatible form that
 * libuv still writes for ::/96 (other than :: and ::1): ::a.b.c.d.
 */
export function dgramIPv6Text(b: Uint8Array): string {
  for (let k = 0; k < 12; k++) if (b[k] !== 0) return formatAddress(b);
  return b[12] === 0 && b[13] === 0 ? formatAddress(b) : `::${formatV4(b, 12)}`;
}

/** Up to this many bytes are copied in a loop: Buffer.copy and subarray make a view object per call. */
const LOOP_COPY_BYTES = 512;

/** src[start, end) into dst at `at`, without a view object per call where the copy is short. */
function copyRange(src: Uint8Array, dst: Buffer, at: number, start: number, end: number): void {
  if (end - start <= LOOP_COPY_BYTES) {
    for (let i = start, j = at; i < end; i++, j++) dst[j] = src[i]!;
  } else if (Buffer.isBuffer(src)) src.copy(dst, at, start, end);
  else dst.set(src.subarray(start, end), at);
}

export type BatcherUnavailable = { reason: string };

/** A RecvDrainer bound to libc's recvmmsg, or the reason there is none. */
export function openRecvDrainer(): RecvDrainer | BatcherUnavailable {
  try {
    const c = libc();
    const arena = c.alloc(recvArenaBytes(c.layout));
    return new RecvDrainer(c.recvmmsg, c.errno, c.layout, arena);
  } catch (e) {
    return { reason: (e as Error).message };
  }
}

const recvArenaBytes = (L: MmsgLayout) => RECV_SLOTS * (L.mmsghdr + L.meta + RECV_STRIDE);

/**
 * A SendBatcher and a RecvDrainer in one native arena: a drained datagram
 * that the fast path relays is copied into the send slots with copyWithin,
 * which needs no view object per datagram (Buffer.copy makes one). The arena
 * is freed when both are closed.
 */
export function openBatchedIo(fallback: FallbackSend, onError: SendErrorSink, options: SendBatcherOptions = {}): { batcher: SendBatcher; drainer: RecvDrainer } | BatcherUnavailable {
  try {
    const c = libc();
    const sendBytes = arenaBytes(c.layout);
    const own = c.alloc(sendBytes + recvArenaBytes(c.layout));
    let users = 2;
    const arena = { ...own, free: () => --users === 0 && own.free() };
    const batcher = new SendBatcher(c.sendmmsg, c.errno, c.layout, arena, fallback, onError, gsoProbe(c), { ...options, arenaOffset: 0 });
    const drainer = new RecvDrainer(c.recvmmsg, c.errno, c.layout, arena, sendBytes);
    return { batcher, drainer };
  } catch (e) {
    return { reason: (e as Error).message };
  }
}

/** Kernels with UDP GSO (4.18+) answer getsockopt(UDP_SEGMENT); older ones refuse it (ENOPROTOOPT). */
const gsoProbe = (c: Libc) => (fd: number) => c.getsockopt(fd, SOL_UDP, UDP_SEGMENT, new Int32Array(1), new Uint32Array([4])) === 0;

/**
 * A SendBatcher bound to libc's sendmmsg through koffi, or the reason there
 * is none (not x86_64 Linux, koffi or libc missing). Callers fall back to
 * plain dgram.send.
 */
export function openSendBatcher(fallback: FallbackSend, onError: SendErrorSink, options: SendBatcherOptions = {}): SendBatcher | BatcherUnavailable {
  try {
    const c = libc();
    const arena = c.alloc(arenaBytes(c.layout));
    return new SendBatcher(c.sendmmsg, c.errno, c.layout, arena, fallback, onError, gsoProbe(c), options);
  } catch (e) {
    return { reason: (e as Error).message };
  }
}
