// Batched UDP sends for node:dgram sockets: datagrams queued during one turn
// of the event loop leave with one sendmmsg(2) per socket when the turn ends,
// instead of one syscall (and libuv request) each. The relay's packet-out
// frames arrive many to a link read, so one turn carries many datagrams.
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
import { AF_INET, AF_INET6, MSG_DONTWAIT, MSG_TRUNC, libc, type Libc, type MmsgLayout, type RecvMmsg, type SendMmsg } from './native.ts';
import { fdOf } from './socket-fd.ts';

/** Datagrams held per turn before an early flush. */
const SLOTS = 256;
/** Largest datagram the arena holds; bigger ones go through the fallback (after a flush, to keep order). */
export const MAX_BATCHED_BYTES = 2048;

const EAGAIN = osConstants.errno.EAGAIN;
const EINTR = osConstants.errno.EINTR;

/** Where a queued datagram goes when the batch cannot take it. */
export type FallbackSend = (socket: Socket, data: Uint8Array, port: number, address: string) => void;
/** A kernel send error for one datagram (code as node reports it, "EHOSTUNREACH"). */
export type SendErrorSink = (socket: Socket, code: string, port: number, address: string) => void;

type Arena = ReturnType<Libc['alloc']>;

interface Pending {
  socket: Socket;
  slots: number[];
}

export class SendBatcher {
  private readonly bytes: Buffer;
  private readonly view: DataView;
  private readonly base: bigint;
  /** Where the per-datagram iovec+address records start, and where the datagrams do. */
  private readonly metaAt: number;
  private readonly dataAt: number;
  /** Absolute address of each slot's iovec, sockaddr and data, split into 32-bit halves for DataView writes. */
  private readonly addrLo: Uint32Array;
  private readonly addrHi: Uint32Array;
  /** Each slot's destination as the caller gave it, for the fallback and error reports. */
  private readonly toAddress: string[] = new Array<string>(SLOTS).fill('');
  private readonly toPort = new Uint16Array(SLOTS);
  private used = 0;
  private readonly pending = new Map<Socket, Pending>();
  private scheduled = false;
  /** address -> port -> sockaddr: destinations repeat, and the lookup builds no string. */
  private readonly sockaddrCache = new Map<string, Map<number, Uint8Array>>();
  private sockaddrCount = 0;
  private readonly flushNow = () => this.flush();
  private closed = false;

  constructor(
    private readonly sendmmsg: SendMmsg,
    private readonly errno: () => number,
    private readonly L: MmsgLayout,
    private readonly arena: Arena,
    private readonly fallback: FallbackSend,
    private readonly onError: SendErrorSink,
  ) {
    this.base = arena.base;
    this.bytes = Buffer.from(arena.buffer);
    this.view = new DataView(arena.buffer);
    this.metaAt = SLOTS * L.mmsghdr;
    this.dataAt = this.metaAt + SLOTS * L.meta;
    this.addrLo = new Uint32Array(SLOTS * 3);
    this.addrHi = new Uint32Array(SLOTS * 3);
    for (let i = 0; i < SLOTS; i++) {
      const meta = this.metaAt + i * L.meta;
      const offs = [meta + L.iovBase, meta + L.addr, this.dataAt + i * MAX_BATCHED_BYTES];
      offs.forEach((off, k) => {
        const a = this.base + BigInt(off);
        this.addrLo[i * 3 + k] = Number(a & 0xffffffffn);
        this.addrHi[i * 3 + k] = Number(a >> 32n);
      });
      // iov_base never changes; only iov_len does.
      this.view.setUint32(meta + L.iovBase, this.addrLo[i * 3 + 2]!, true);
      this.view.setUint32(meta + L.iovBase + 4, this.addrHi[i * 3 + 2]!, true);
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
    const at = this.dataAt + i * MAX_BATCHED_BYTES;
    if (head !== 0) {
      // A ChannelData header (RFC 8656 12.4) in front of the payload, written here so the payload is copied once.
      this.view.setUint16(at, channel, false);
      this.view.setUint16(at + 2, end - start, false);
    }
    if (start === 0 && end === data.byteLength) this.bytes.set(data, at + head);
    else copyRange(data, this.bytes, at + head, start, end);
    // iov_len is a size_t: its high half stays zero.
    this.view.setUint32(meta + this.L.iovLen, len, true);
    this.bytes.set(sa, meta + this.L.addr);
    this.toAddress[i] = address;
    this.toPort[i] = port;
    let p = this.pending.get(socket);
    if (!p) {
      p = { socket, slots: [] };
      this.pending.set(socket, p);
    }
    p.slots.push(i);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushNow);
    }
    return true;
  }

  /** Sends what one socket has queued (before it closes: its fd number may be reused at once). */
  flushSocket(socket: Socket): void {
    const p = this.pending.get(socket);
    if (!p) return;
    this.pending.delete(socket);
    this.sendAll(p);
    if (this.pending.size === 0) this.used = 0;
  }

  /** Sends everything queued. */
  flush(): void {
    this.scheduled = false;
    if (this.closed) return;
    for (const p of this.pending.values()) this.sendAll(p);
    this.pending.clear();
    this.used = 0;
  }

  /** Flushes and releases the native arena; later enqueues are refused. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.arena.free();
  }

  private sendAll(p: Pending): void {
    const { slots, socket } = p;
    const n = slots.length;
    const fd = fdOf(socket);
    if (fd < 0) {
      // Closed under us: dgram.send would throw ERR_SOCKET_DGRAM_NOT_RUNNING; let the fallback report it the same way.
      this.fallbackFrom(p, 0);
      return;
    }
    const v = this.view;
    const L = this.L;
    for (let k = 0; k < n; k++) {
      const i = slots[k]!;
      const m = k * L.mmsghdr;
      const sa = i * 3 + 1;
      v.setUint32(m + L.msgName, this.addrLo[sa]!, true);
      v.setUint32(m + L.msgName + 4, this.addrHi[sa]!, true);
      const family = v.getUint16(this.metaAt + i * L.meta + L.addr + L.family, true);
      v.setUint32(m + L.msgNamelen, family === AF_INET ? L.sockaddrIn : L.sockaddrIn6, true);
      v.setUint32(m + L.msgIov, this.addrLo[i * 3]!, true);
      v.setUint32(m + L.msgIov + 4, this.addrHi[i * 3]!, true);
      v.setUint32(m + L.msgIovlen, 1, true); // a size_t
      v.setUint32(m + L.msgIovlen + 4, 0, true);
      // msg_control/msg_controllen/msg_flags stay zero: the arena starts zeroed and nothing else writes there.
    }
    let done = 0;
    while (done < n) {
      const r = this.sendmmsg(fd, this.base + BigInt(done * L.mmsghdr), n - done, 0);
      if (r > 0) {
        done += r;
        continue;
      }
      const e = this.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) {
        // The socket buffer is full (libuv made the fd non-blocking): libuv queues the rest and retries when writable.
        this.fallbackFrom(p, done);
        return;
      }
      // sendmmsg fails only on its first datagram; that one is lost, as a kernel error on dgram.send loses it.
      const i = slots[done]!;
      this.onError(socket, errnoCode(e), this.toPort[i]!, this.toAddress[i]!);
      done++;
    }
  }

  private fallbackFrom(p: Pending, from: number): void {
    for (let k = from; k < p.slots.length; k++) {
      const i = p.slots[k]!;
      const off = this.dataAt + i * MAX_BATCHED_BYTES;
      const len = this.view.getUint32(this.metaAt + i * this.L.meta + this.L.iovLen, true);
      this.fallback(p.socket, Buffer.from(this.bytes.subarray(off, off + len)), this.toPort[i]!, this.toAddress[i]!);
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
  private readonly addrCache = new Map<string, string>();
  private readonly v4Cache = new Map<number, string>();
  private lastUsed = RECV_SLOTS;
  private closed = false;

  constructor(
    private readonly recvmmsg: RecvMmsg,
    private readonly errno: () => number,
    private readonly L: MmsgLayout,
    private readonly arena: Arena,
  ) {
    this.bytes = Buffer.from(arena.buffer);
    this.view = new DataView(arena.buffer);
    this.metaAt = RECV_SLOTS * L.mmsghdr;
    this.dataAt = this.metaAt + RECV_SLOTS * L.meta;
    const v = this.view;
    const at = (off: number) => arena.base + BigInt(off);
    for (let i = 0; i < RECV_SLOTS; i++) {
      const m = i * L.mmsghdr;
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
    for (let i = 0; i < this.lastUsed; i++) v.setUint32(i * L.mmsghdr + L.msgNamelen, L.sockaddr, true);
    const n = this.recvmmsg(fd, this.arena.base, RECV_SLOTS, MSG_DONTWAIT, null);
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
      const m = i * mmsghdr;
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

/** src[start, end) into dst at `at`, without a view object per call. */
function copyRange(src: Uint8Array, dst: Buffer, at: number, start: number, end: number): void {
  if (Buffer.isBuffer(src)) src.copy(dst, at, start, end);
  else dst.set(src.subarray(start, end), at);
}

export type BatcherUnavailable = { reason: string };

/** A RecvDrainer bound to libc's recvmmsg, or the reason there is none. */
export function openRecvDrainer(): RecvDrainer | BatcherUnavailable {
  try {
    const c = libc();
    const arena = c.alloc(RECV_SLOTS * (c.layout.mmsghdr + c.layout.meta + RECV_STRIDE));
    return new RecvDrainer(c.recvmmsg, c.errno, c.layout, arena);
  } catch (e) {
    return { reason: (e as Error).message };
  }
}

/**
 * A SendBatcher bound to libc's sendmmsg through koffi, or the reason there
 * is none (not x86_64 Linux, koffi or libc missing). Callers fall back to
 * plain dgram.send.
 */
export function openSendBatcher(fallback: FallbackSend, onError: SendErrorSink): SendBatcher | BatcherUnavailable {
  try {
    const c = libc();
    const arena = c.alloc(SLOTS * (c.layout.mmsghdr + c.layout.meta + MAX_BATCHED_BYTES));
    return new SendBatcher(c.sendmmsg, c.errno, c.layout, arena, fallback, onError);
  } catch (e) {
    return { reason: (e as Error).message };
  }
}
