// Batched UDP sends for node:dgram sockets: datagrams queued during one turn
// of the event loop leave with one sendmmsg(2) per socket when the turn ends,
// instead of one syscall (and libuv request) each. The relay's packet-out
// frames arrive many to a link read, so one turn carries many datagrams.
//
// x86_64 Linux only (the struct layouts below are LP64 glibc); elsewhere, or
// when libc cannot be bound, `openSendBatcher` returns null and callers keep
// plain dgram.send. Datagrams are copied into one preallocated native arena,
// so nothing is allocated per packet.
import type { Socket } from 'node:dgram';
import { constants as osConstants } from 'node:os';
import { isIPv4, isIPv6 } from 'node:net';
import { createRequire } from 'node:module';

/** Datagrams held per turn before an early flush. */
const SLOTS = 256;
/** Largest datagram the arena holds; bigger ones go through the fallback (after a flush, to keep order). */
export const MAX_BATCHED_BYTES = 2048;

const MMSGHDR = 64; // struct mmsghdr: msghdr (56) + msg_len (4) + pad
const IOVEC = 16;
const SOCKADDR = 32; // sockaddr_in6 (28), 8-aligned
const SLOT_META = IOVEC + SOCKADDR;
const META_BYTES = SLOTS * SLOT_META;
const MMSG_BYTES = SLOTS * MMSGHDR;
const ARENA = MMSG_BYTES + META_BYTES + SLOTS * MAX_BATCHED_BYTES;

const EAGAIN = osConstants.errno.EAGAIN;
const EINTR = osConstants.errno.EINTR;
const errnoName = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));

/** Where a queued datagram goes when the batch cannot take it. */
export type FallbackSend = (socket: Socket, data: Uint8Array, port: number, address: string) => void;
/** A kernel send error for one datagram (code as node reports it, "EHOSTUNREACH"). */
export type SendErrorSink = (socket: Socket, code: string, port: number, address: string) => void;

type SendMmsg = (fd: number, vec: bigint, vlen: number, flags: number) => number;

interface Pending {
  socket: Socket;
  slots: number[];
}

let stateSymbol: symbol | undefined;

/** The fd under a bound node:dgram socket, or -1 (closed, unbound, or a node without the internal state). */
export function fdOf(socket: Socket): number {
  // `_handle` works too but warns (DEP0112); the state object holds the same handle.
  if (!stateSymbol) stateSymbol = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const state = stateSymbol ? (socket as unknown as Record<symbol, { handle?: { fd?: number } | null }>)[stateSymbol] : undefined;
  const fd = state?.handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

export class SendBatcher {
  private readonly bytes: Buffer;
  private readonly view: DataView;
  private readonly base: bigint;
  /** Absolute address of each slot's iovec, sockaddr and data, split into 32-bit halves for DataView writes. */
  private readonly addrLo: Uint32Array;
  private readonly addrHi: Uint32Array;
  private used = 0;
  private readonly pending = new Map<Socket, Pending>();
  private scheduled = false;
  private readonly freeArena: () => void;
  private readonly sockaddrCache = new Map<string, Uint8Array>();
  private readonly flushNow = () => this.flush();
  private closed = false;

  constructor(
    private readonly sendmmsg: SendMmsg,
    private readonly errno: () => number,
    arena: { base: bigint; buffer: ArrayBuffer; free: () => void },
    private readonly fallback: FallbackSend,
    private readonly onError: SendErrorSink,
  ) {
    this.base = arena.base;
    this.freeArena = arena.free;
    this.bytes = Buffer.from(arena.buffer);
    this.view = new DataView(arena.buffer);
    this.addrLo = new Uint32Array(SLOTS * 3);
    this.addrHi = new Uint32Array(SLOTS * 3);
    for (let i = 0; i < SLOTS; i++) {
      const offs = [MMSG_BYTES + i * SLOT_META, MMSG_BYTES + i * SLOT_META + IOVEC, MMSG_BYTES + META_BYTES + i * MAX_BATCHED_BYTES];
      offs.forEach((off, k) => {
        const a = this.base + BigInt(off);
        this.addrLo[i * 3 + k] = Number(a & 0xffffffffn);
        this.addrHi[i * 3 + k] = Number(a >> 32n);
      });
      // iov_base never changes; only iov_len does.
      const iov = offs[0]!;
      this.view.setUint32(iov, this.addrLo[i * 3 + 2]!, true);
      this.view.setUint32(iov + 4, this.addrHi[i * 3 + 2]!, true);
    }
  }

  /**
   * Queues one datagram; false when it was not queued (too big, or the
   * address is not an IP literal) and the caller must send it itself —
   * pending datagrams of every socket are flushed first, so order holds.
   */
  enqueue(socket: Socket, data: Uint8Array, port: number, address: string): boolean {
    if (this.closed) return false;
    // Port 0 and the like: dgram.send refuses them synchronously (ERR_SOCKET_BAD_PORT); let it.
    if (data.byteLength > MAX_BATCHED_BYTES || !(port > 0 && port < 65536 && (port | 0) === port)) {
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
    const iov = MMSG_BYTES + i * SLOT_META;
    this.bytes.set(data, MMSG_BYTES + META_BYTES + i * MAX_BATCHED_BYTES);
    this.view.setUint32(iov + 8, data.byteLength, true);
    this.bytes.set(sa, iov + IOVEC);
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
    this.freeArena();
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
    for (let k = 0; k < n; k++) {
      const i = slots[k]!;
      const m = k * MMSGHDR;
      const sa = i * 3 + 1;
      v.setUint32(m, this.addrLo[sa]!, true); // msg_name
      v.setUint32(m + 4, this.addrHi[sa]!, true);
      v.setUint32(m + 8, v.getUint16(MMSG_BYTES + i * SLOT_META + IOVEC, true) === 2 ? 16 : 28, true); // msg_namelen
      v.setUint32(m + 16, this.addrLo[i * 3]!, true); // msg_iov
      v.setUint32(m + 20, this.addrHi[i * 3]!, true);
      v.setUint32(m + 24, 1, true); // msg_iovlen
      v.setUint32(m + 28, 0, true);
      // msg_control/msg_controllen/msg_flags stay zero: the arena starts zeroed and nothing else writes there.
    }
    let done = 0;
    while (done < n) {
      const r = this.sendmmsg(fd, this.base + BigInt(done * MMSGHDR), n - done, 0);
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
      const [port, address] = this.destinationOf(i);
      this.onError(socket, errnoName.get(e) ?? `errno${e}`, port, address);
      done++;
    }
  }

  private fallbackFrom(p: Pending, from: number): void {
    for (let k = from; k < p.slots.length; k++) {
      const i = p.slots[k]!;
      const off = MMSG_BYTES + META_BYTES + i * MAX_BATCHED_BYTES;
      const len = this.view.getUint32(MMSG_BYTES + i * SLOT_META + 8, true);
      const [port, address] = this.destinationOf(i);
      this.fallback(p.socket, Buffer.from(this.bytes.subarray(off, off + len)), port, address);
    }
  }

  private destinationOf(i: number): [number, string] {
    const sa = MMSG_BYTES + i * SLOT_META + IOVEC;
    const port = this.view.getUint16(sa + 2, false);
    if (this.view.getUint16(sa, true) === 2) return [port, [...this.bytes.subarray(sa + 4, sa + 8)].join('.')];
    const words: string[] = [];
    for (let k = 0; k < 8; k++) words.push(this.view.getUint16(sa + 8 + k * 2, false).toString(16));
    return [port, words.join(':')];
  }

  /** sockaddr_in/sockaddr_in6 bytes for an IP literal (cached: destinations repeat); null for anything else. */
  private sockaddr(address: string, port: number): Uint8Array | null {
    const key = `${address}|${port}`;
    let sa = this.sockaddrCache.get(key);
    if (sa) return sa;
    sa = new Uint8Array(SOCKADDR);
    const v = new DataView(sa.buffer);
    if (isIPv4(address)) {
      v.setUint16(0, 2, true); // AF_INET
      v.setUint16(2, port, false);
      address.split('.').forEach((o, k) => v.setUint8(4 + k, Number(o)));
    } else if (isIPv6(address) && !address.includes('%')) {
      v.setUint16(0, 10, true); // AF_INET6
      v.setUint16(2, port, false);
      const words = parseIPv6(address);
      if (!words) return null;
      words.forEach((w, k) => v.setUint16(8 + k * 2, w, false));
    } else return null;
    if (this.sockaddrCache.size >= 65536) this.sockaddrCache.clear();
    this.sockaddrCache.set(key, sa);
    return sa;
  }
}

/** Eight 16-bit words of an IPv6 literal (with "::" and a dotted IPv4 tail); null if malformed. */
export function parseIPv6(address: string): number[] | null {
  const halves = address.split('::');
  if (halves.length > 2) return null;
  const part = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (g.includes('.')) {
        if (!isIPv4(g)) return null;
        const o = g.split('.').map(Number);
        out.push((o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  if (!head || !tail) return null;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  return [...head, ...new Array<number>(fill).fill(0), ...tail];
}

/** Datagrams one drain reads at most. */
const RECV_SLOTS = 64;
/** node:dgram reads into 64 KiB too: no datagram that reaches it is cut. */
const RECV_BYTES = 65536;
const RECV_META = RECV_SLOTS * (MMSGHDR + SLOT_META);
/** Slots are not 64 KiB apart: a power-of-two stride puts every slot's first bytes in the same cache sets. */
const RECV_STRIDE = RECV_BYTES + 320;
const RECV_ARENA = RECV_META + RECV_SLOTS * RECV_STRIDE;
const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;

type RecvMmsg = (fd: number, vec: bigint, vlen: number, flags: number, timeout: null) => number;

/** One datagram read by a drain; `family` is the sockaddr's, as node:dgram reports it. Every datagram read is delivered. */
export type DrainedHandler = (data: Buffer, family: 'IPv4' | 'IPv6', address: string, port: number) => unknown;

/**
 * Reads what a socket's receive queue holds with recvmmsg(MSG_DONTWAIT),
 * called from a 'message' handler: libuv delivers one datagram per callback
 * into JS, this delivers up to RECV_SLOTS more for the same wake-up. Both run
 * on the one JS thread, one after the other, so arrival order holds.
 */
export class RecvDrainer {
  private readonly bytes: Buffer;
  private readonly view: DataView;
  private readonly addrCache = new Map<string, string>();
  private lastUsed = RECV_SLOTS;
  private closed = false;

  constructor(
    private readonly recvmmsg: RecvMmsg,
    private readonly errno: () => number,
    private readonly arena: { base: bigint; buffer: ArrayBuffer; free: () => void },
  ) {
    this.bytes = Buffer.from(arena.buffer);
    this.view = new DataView(arena.buffer);
    const v = this.view;
    for (let i = 0; i < RECV_SLOTS; i++) {
      const m = i * MMSGHDR;
      const iov = RECV_SLOTS * MMSGHDR + i * SLOT_META;
      const sa = iov + IOVEC;
      const data = RECV_META + i * RECV_STRIDE;
      v.setBigUint64(m, arena.base + BigInt(sa), true);
      v.setBigUint64(m + 16, arena.base + BigInt(iov), true);
      v.setBigUint64(m + 24, 1n, true);
      v.setBigUint64(iov, arena.base + BigInt(data), true);
      v.setBigUint64(iov + 8, BigInt(RECV_BYTES), true);
    }
  }

  /**
   * Delivers what `fd` holds now; returns how many datagrams, or a negative
   * errno (EAGAIN, an empty queue, is 0). Truncated datagrams cannot happen
   * with 64 KiB slots but would be dropped, not delivered cut.
   */
  drain(fd: number, deliver: DrainedHandler): number {
    if (this.closed || fd < 0) return 0;
    const v = this.view;
    // The kernel writes the sockaddr length back; reset those it touched.
    for (let i = 0; i < this.lastUsed; i++) v.setUint32(i * MMSGHDR + 8, SOCKADDR, true);
    const n = this.recvmmsg(fd, this.arena.base, RECV_SLOTS, MSG_DONTWAIT, null);
    if (n < 0) {
      this.lastUsed = 0;
      const e = this.errno();
      return e === EAGAIN || e === EINTR ? 0 : -e;
    }
    this.lastUsed = n;
    for (let i = 0; i < n; i++) {
      const m = i * MMSGHDR;
      if (v.getInt32(m + 48, true) & MSG_TRUNC) continue;
      const len = v.getUint32(m + 56, true);
      const sa = RECV_SLOTS * MMSGHDR + i * SLOT_META + IOVEC;
      const off = RECV_META + i * RECV_STRIDE;
      const data = Buffer.allocUnsafe(len);
      this.bytes.copy(data, 0, off, off + len);
      const port = v.getUint16(sa + 2, false);
      if (v.getUint16(sa, true) === 2) deliver(data, 'IPv4', this.ipv4At(sa + 4), port);
      else deliver(data, 'IPv6', this.ipv6At(sa + 8), port);
    }
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.arena.free();
  }

  private ipv4At(off: number): string {
    const b = this.bytes;
    return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  }

  private ipv6At(off: number): string {
    const key = this.bytes.toString('latin1', off, off + 16);
    let s = this.addrCache.get(key);
    if (s === undefined) {
      const words: number[] = [];
      for (let k = 0; k < 8; k++) words.push(this.view.getUint16(off + k * 2, false));
      s = formatIPv6(words);
      if (this.addrCache.size >= 65536) this.addrCache.clear();
      this.addrCache.set(key, s);
    }
    return s;
  }
}

/**
 * An IPv6 address as libuv's inet_ntop writes it (what node:dgram reports):
 * the longest run of two or more zero words (the first on a tie) becomes
 * "::", and ::ffff:0:0/96 and ::/96 (other than :: and ::1) end in dotted IPv4.
 */
export function formatIPv6(w: readonly number[]): string {
  let bestBase = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestBase = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
      // (inet_ntop's third case, a run of 7, never reaches here: word 6 is inside the run.)
      out += `${w[6]! >> 8}.${w[6]! & 255}.${w[7]! >> 8}.${w[7]! & 255}`;
      return out;
    }
    out += w[i]!.toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ':';
  return out;
}

/** The struct layouts here are LP64 glibc: anything else keeps plain dgram. */
function platformReason(): BatcherUnavailable | undefined {
  return process.platform === 'linux' && process.arch === 'x64' ? undefined : { reason: `${process.platform}/${process.arch} is not x86_64 Linux` };
}

/** koffi and libc, loaded lazily so a machine without koffi's native module still runs plain dgram. */
function loadLibc() {
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  return { koffi, libc: koffi.load('libc.so.6') };
}

/** A RecvDrainer bound to libc's recvmmsg, or the reason there is none. */
export function openRecvDrainer(): RecvDrainer | BatcherUnavailable {
  const unsupported = platformReason();
  if (unsupported) return unsupported;
  try {
    const { koffi, libc } = loadLibc();
    const recvmmsg = libc.func('int recvmmsg(int fd, void *vec, unsigned int vlen, int flags, void *timeout)') as RecvMmsg;
    const base = koffi.alloc('uint8_t', RECV_ARENA) as bigint;
    const buffer = koffi.view(base, RECV_ARENA);
    new Uint8Array(buffer, 0, RECV_META).fill(0);
    return new RecvDrainer(recvmmsg, () => koffi.errno(), { base, buffer, free: () => koffi.free(base) });
  } catch (e) {
    return { reason: (e as Error).message };
  }
}

export type BatcherUnavailable = { reason: string };

/**
 * A SendBatcher bound to libc's sendmmsg through koffi, or the reason there
 * is none (not x86_64 Linux, koffi or libc missing). Callers fall back to
 * plain dgram.send.
 */
export function openSendBatcher(fallback: FallbackSend, onError: SendErrorSink): SendBatcher | BatcherUnavailable {
  const unsupported = platformReason();
  if (unsupported) return unsupported;
  try {
    const { koffi, libc } = loadLibc();
    const sendmmsg = libc.func('int sendmmsg(int fd, void *vec, unsigned int vlen, int flags)') as SendMmsg;
    const base = koffi.alloc('uint8_t', ARENA) as bigint;
    const buffer = koffi.view(base, ARENA);
    new Uint8Array(buffer).fill(0);
    return new SendBatcher(sendmmsg, () => koffi.errno(), { base, buffer, free: () => koffi.free(base) }, fallback, onError);
  } catch (e) {
    return { reason: (e as Error).message };
  }
}
