// The sidecar's UDP sockets: the TURN listen port on each configured address
// and the allocation ports the relay asks for. Everything the kernel fast path
// passes up arrives here and goes to `onPacket`; the relay's replies leave via
// `send`. No TURN logic. A socket error is counted (by operation and code) and
// logged at most once per interval per kind, never fatal.
import type { RemoteInfo, Socket } from 'node:dgram';
import type { Logger } from 'pino';
import type { Family, LocalEndpoint, SocketKind, TransportAddress } from '../shared/endpoint.ts';
import { ErrorCounter } from '../net/error-log.ts';
import { ReplyRoutes, bindUdp, closeQuietly, remoteOf } from '../net/udp.ts';
import { WILDCARD, familyOf, portKey } from '../shared/endpoint.ts';
import { openBatchedIo, type DrainPeek, type DrainedHandler, type RecvDrainer, type SendBatcher } from '../net/mmsg.ts';
import { fdOf, forgetFd } from '../net/socket-fd.ts';
import { dropsSince, socketDrops } from '../net/socket-drops.ts';
import { errnoCode } from '../shared/errno.ts';

export type { SocketKind } from '../shared/endpoint.ts';

/**
 * Returns false when the datagram was dropped because its consumer is
 * backpressured: the socket then stops draining its queue early and lets the
 * kernel drop the excess (cheaper than reading it only to drop it here).
 */
export type PacketHandler = (local: LocalEndpoint, remote: TransportAddress, data: Buffer, kind: SocketKind) => void | boolean;

/**
 * The userspace fast path (fastpath.ts), offered every datagram before
 * `onPacket`; true when it took it (relayed or dropped), so the relay never
 * sees it.
 */
export type FastPathHandler = (local: LocalEndpoint, kind: SocketKind, data: Buffer, off: number, len: number, family: Family, address: string, port: number) => boolean;

/** A fast-path output: where to, from which of our sockets, and a ChannelData header's channel (-1: none). */
export interface ForwardTarget {
  readonly to: TransportAddress;
  readonly from: LocalEndpoint;
  readonly fromKind: SocketKind;
  readonly channel: number;
}

export interface UdpSocketsOptions {
  listenPort: number;
  /** e.g. ['0.0.0.0', '::']; IPv6 sockets are v6-only so both wildcards bind. */
  listenAddresses: readonly string[];
  /** Address allocation ports bind to per family; default the family's first listen address, else its wildcard. */
  allocationBind?: { v4?: string; v6?: string };
  /** SO_RCVBUF/SO_SNDBUF requested (the kernel clamps to net.core.[rw]mem_max). Default 4 MiB. */
  bufferBytes?: number;
  logger?: Logger;
  onPacket: PacketHandler;
  fastPath?: FastPathHandler;
  /** Minimum ms between two log lines of one error kind. */
  errorLogIntervalMs?: number;
  /**
   * 'auto' (default; the sidecar passes config.batchedIo): datagrams sent in one event
   * loop turn leave with one sendmmsg(2) per socket where that is available
   * (x86_64 Linux, koffi); 'off': one dgram.send each.
   */
  batchedIo?: 'auto' | 'off';
  /** UDP GSO for batched sends (net/mmsg.ts): 'auto' (default) where the kernel has it, or 'off'. */
  udpGso?: 'auto' | 'off';
  /** Largest IP packet a GSO segment may make (the interface MTU); default 1500. */
  mtu?: number;
}

export interface OpenResult {
  ok: boolean;
  /** errno code ("EADDRINUSE", "EACCES", ...) when not ok, else "". */
  error: string;
}

interface Traffic {
  packets: number;
  bytes: number;
}

export interface SocketStats {
  in: Record<SocketKind, Traffic>;
  out: Record<SocketKind, Traffic>;
  /**
   * "send:EHOSTUNREACH", "receive:ENOBUFS", "bind:EADDRINUSE", "send:no-socket", ...
   * Kernel send errors are seen on sampled sends (see UdpSockets.send): a
   * burst of them may be undercounted by up to SEND_CHECK_EVERY - 1.
   */
  errors: Record<string, number>;
  allocationPorts: number;
  /** Effective buffer sizes of the first listen socket (after kernel clamping). */
  buffers: { recv: number; send: number };
  /**
   * Datagrams the kernel dropped at our sockets instead of queueing them
   * (receive buffer full: we read slower than they came), cumulative, as of
   * the last pollDrops pass; closed allocation ports' drops stay in.
   */
  kernelDropped: Record<SocketKind, number>;
}

/** One send in this many carries a completion callback while no error is known. */
export const SEND_CHECK_EVERY = 16;
/** After a send error, this many sends all carry the callback. */
const SEND_CHECK_AFTER_ERROR = 4096;

/** A socket whose kernel drop counter is read, and its last reading (0 when bound: the counter starts with the socket). */
interface DropWatch {
  readonly socket: Socket;
  readonly kind: SocketKind;
  last: number;
}

interface ListenSocket {
  socket: Socket;
  address: string;
  local: LocalEndpoint;
}

export class UdpSockets {
  private readonly listen = new Map<Family, ListenSocket[]>();
  private readonly allocations = new Map<number, Socket>();
  private readonly replyVia = new ReplyRoutes();
  private readonly traffic = {
    in: { listen: { packets: 0, bytes: 0 }, allocation: { packets: 0, bytes: 0 } },
    out: { listen: { packets: 0, bytes: 0 }, allocation: { packets: 0, bytes: 0 } },
  };
  private readonly errors: ErrorCounter;
  private readonly bufferBytes: number;
  private closed = false;
  private sendSeq = 0;
  private checkAllSends = 0;
  private readonly batcher: SendBatcher | null = null;
  private readonly drainer: RecvDrainer | null = null;
  private readonly dropWatches = new Map<Socket, DropWatch>();
  /** Where the pass under way stands; a Map iterator sees sockets added and skips ones deleted meanwhile. */
  private dropCursor: Iterator<DropWatch> | undefined;
  private readonly kernelDropped: Record<SocketKind, number> = { listen: 0, allocation: 0 };
  private dropsLogged = { at: 0, total: 0 };

  constructor(private readonly opts: UdpSocketsOptions) {
    this.bufferBytes = opts.bufferBytes ?? 4 << 20;
    this.errors = new ErrorCounter(opts.logger, opts.errorLogIntervalMs);
    const mode = opts.batchedIo ?? 'auto';
    if (mode === 'auto') {
      const io = openBatchedIo(
        (socket, data, port, address) => this.plainSend(socket, data, port, address),
        (socket, code, port, address) => this.error('send', { code, message: `sendmmsg: ${code}` }, { port: localPortOf(socket), to: `${address}:${port}` }),
        // An IPv6 and UDP header come off the MTU: the kernel refuses a GSO segment that would not fit.
        { gso: opts.udpGso ?? 'auto', gsoMaxSegment: (opts.mtu ?? 1500) - 48 },
      );
      if ('reason' in io) opts.logger?.info({ reason: io.reason }, 'batched UDP sends unavailable; one dgram.send per datagram');
      else {
        this.batcher = io.batcher;
        this.drainer = io.drainer;
      }
    }
  }

  /** Binds the listen sockets; rejects (closing what was bound) if one cannot bind. */
  async listenAll(): Promise<void> {
    try {
      for (const address of this.opts.listenAddresses) {
        const family = familyOf(address);
        const socket = await this.bind(family, address, this.opts.listenPort);
        const port = (socket.address() as { port: number }).port;
        const entry: ListenSocket = { socket, address, local: { family, port } };
        const list = this.listen.get(family) ?? [];
        list.push(entry);
        this.listen.set(family, list);
        const deliver: DrainedHandler = (msg, family, address, port) => {
          this.count(this.traffic.in.listen, msg.length);
          const remote = remoteOf({ family, address, port });
          if (list.length > 1) this.replyVia.remember(remote, socket);
          return this.opts.onPacket(entry.local, remote, msg, 'listen') !== false;
        };
        const peek = this.peekFor(entry.local, 'listen');
        socket.on('message', (msg, rinfo) => {
          this.batcher?.hold();
          // A consumer that refuses this datagram (backpressure) would drop a drained batch too: let the kernel drop it instead.
          if (this.offer(peek, msg, rinfo) || deliver(msg, rinfo.family as 'IPv4' | 'IPv6', rinfo.address, rinfo.port)) {
            this.drain(socket, deliver, peek, { port, address });
          } else this.batcher?.flush();
        });
        socket.on('error', (e: NodeJS.ErrnoException) => this.error('receive', e, { port, address }));
        this.dropWatches.set(socket, { socket, kind: 'listen', last: 0 });
        this.opts.logger?.info({ address, port, buffers: this.buffersOf(socket) }, 'listen socket bound');
      }
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  /** Bound listen sockets (the port is resolved when listenPort was 0). */
  boundAddresses(): { family: Family; address: string; port: number }[] {
    return [...this.listen.values()].flat().map((l) => ({ family: l.local.family, address: l.address, port: l.local.port }));
  }

  /** Binds an allocation port. Opening a port this layer already holds succeeds (re-announcements). */
  async openPort(family: Family, port: number): Promise<OpenResult> {
    if (this.closed) return { ok: false, error: 'ESHUTDOWN' };
    const key = portKey(family, port);
    if (this.allocations.has(key)) return { ok: true, error: '' };
    let socket: Socket;
    try {
      socket = await this.bind(family, this.allocationAddress(family), port);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'EINVAL';
      this.errors.count(`bind:${code}`);
      this.opts.logger?.debug({ family, port, code }, 'allocation port bind failed');
      return { ok: false, error: code };
    }
    if (this.closed || this.allocations.has(key)) {
      socket.close();
      return this.closed ? { ok: false, error: 'ESHUTDOWN' } : { ok: true, error: '' };
    }
    const local: LocalEndpoint = { family, port };
    const deliver: DrainedHandler = (msg, family, address, port) => {
      this.count(this.traffic.in.allocation, msg.length);
      return this.opts.onPacket(local, remoteOf({ family, address, port }), msg, 'allocation') !== false;
    };
    const peek = this.peekFor(local, 'allocation');
    socket.on('message', (msg, rinfo) => {
      this.batcher?.hold();
      if (this.offer(peek, msg, rinfo) || deliver(msg, rinfo.family as 'IPv4' | 'IPv6', rinfo.address, rinfo.port)) {
        this.drain(socket, deliver, peek, { family, port });
      } else this.batcher?.flush();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => this.error('receive', e, { family, port }));
    this.allocations.set(key, socket);
    this.dropWatches.set(socket, { socket, kind: 'allocation', last: 0 });
    return { ok: true, error: '' };
  }

  /** Closes one allocation port; false if it was not open. */
  closePort(family: Family, port: number): boolean {
    const key = portKey(family, port);
    const socket = this.allocations.get(key);
    if (!socket) return false;
    this.allocations.delete(key);
    // Its fd number may be reused by the next bind in this same turn: queued datagrams leave first.
    this.batcher?.flushSocket(socket);
    this.unwatchDrops(socket);
    closeSocket(socket);
    return true;
  }

  /** Closes every allocation port (the relay went away); returns how many. */
  closeAllocationPorts(): number {
    const n = this.allocations.size;
    this.batcher?.flush();
    for (const s of this.allocations.values()) {
      this.unwatchDrops(s);
      closeSocket(s);
    }
    this.allocations.clear();
    return n;
  }

  allocationPorts(): LocalEndpoint[] {
    return [...this.allocations.keys()].map((k) => ({ family: (k >> 16) as Family, port: k & 0xffff }));
  }

  hasPort(family: Family, port: number): boolean {
    return this.allocations.has(portKey(family, port));
  }

  /** Sends `data` from the relay's port `from`; false when no such socket (counted). */
  send(from: LocalEndpoint, to: TransportAddress, data: Uint8Array): boolean {
    let socket: Socket | undefined;
    let kind: SocketKind = 'allocation';
    const list = from.port === this.opts.listenPort || this.isListenPort(from) ? this.listen.get(from.family) : undefined;
    if (list && list.length > 0) {
      kind = 'listen';
      socket = list.length === 1 ? list[0]!.socket : this.replyVia.get(to) ?? list[0]!.socket;
    } else socket = this.allocations.get(portKey(from.family, from.port));
    if (!socket) {
      this.error('send', { code: 'no-socket', message: 'no socket for this local port' }, { family: from.family, port: from.port });
      return false;
    }
    this.count(this.traffic.out[kind], data.byteLength);
    if (this.batcher?.enqueue(socket, data, to.port, to.address)) return true;
    return this.plainSend(socket, data, to.port, to.address);
  }

  /** Sends a fast-path output (fastpath.ts); false when the port has no socket (closed meanwhile). */
  forward(t: ForwardTarget, data: Uint8Array, start: number, end: number): boolean {
    let socket: Socket | undefined;
    if (t.fromKind === 'listen') {
      const list = this.listen.get(t.from.family);
      if (list === undefined || list.length === 0) return false;
      socket = list.length === 1 ? list[0]!.socket : this.replyVia.get(t.to) ?? list[0]!.socket;
    } else socket = this.allocations.get(portKey(t.from.family, t.from.port));
    if (socket === undefined) return false;
    const to = t.to;
    this.count(this.traffic.out[t.fromKind], end - start + (t.channel >= 0 ? 4 : 0));
    if (this.batcher?.enqueue(socket, data, to.port, to.address, t.channel, start, end)) return true;
    // Copied: the fallback send outlives the caller's buffer (a drain's own memory).
    return this.plainSend(socket, withChannelHeader(t.channel, data.subarray(start, end)), to.port, to.address);
  }

  private plainSend(socket: Socket, data: Uint8Array, port: number, address: string): boolean {
    try {
      // A completion callback costs a closure and a tick per datagram (~10% of
      // the sidecar's CPU per relayed packet), and node:dgram reports kernel
      // send errors only through it. So sample: one send in SEND_CHECK_EVERY
      // carries it, and once an error shows up every send does for a while.
      if (this.checkAllSends > 0 || ++this.sendSeq % SEND_CHECK_EVERY === 0) {
        if (this.checkAllSends > 0) this.checkAllSends--;
        socket.send(data, port, address, (err) => {
          if (!err) return;
          this.checkAllSends = SEND_CHECK_AFTER_ERROR;
          this.error('send', err, { port: localPortOf(socket), to: `${address}:${port}` });
        });
      } else socket.send(data, port, address);
    } catch (e) {
      // Synchronous throws (a socket closed meanwhile, a bad address) are as non-fatal as async ones.
      this.error('send', e as NodeJS.ErrnoException, { port: localPortOf(socket), to: `${address}:${port}` });
      return false;
    }
    return true;
  }

  stats(): SocketStats {
    const first = [...this.listen.values()].flat()[0];
    return {
      in: { listen: { ...this.traffic.in.listen }, allocation: { ...this.traffic.in.allocation } },
      out: { listen: { ...this.traffic.out.listen }, allocation: { ...this.traffic.out.allocation } },
      errors: { ...this.errors.counts },
      allocationPorts: this.allocations.size,
      buffers: first ? this.buffersOf(first.socket) : { recv: 0, send: 0 },
      kernelDropped: { ...this.kernelDropped },
    };
  }

  /**
   * Reads the kernel's drop counter (net/socket-drops.ts) of up to `max`
   * sockets, going on from where the last call stopped; true when that
   * completed a pass over all of them. One getsockopt per socket: with
   * thousands of allocation ports a whole pass in one turn would hold up the
   * packets queued behind it, so callers read a slice per turn.
   */
  pollDrops(max = Infinity): boolean {
    this.dropCursor ??= this.dropWatches.values();
    for (let k = 0; k < max; k++) {
      const r = this.dropCursor.next();
      if (r.done === true) {
        this.dropCursor = undefined;
        this.logDrops();
        return true;
      }
      this.readDrops(r.value);
    }
    return false;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.batcher?.close();
    this.drainer?.close();
    this.dropWatches.clear();
    this.dropCursor = undefined;
    const all = [...[...this.listen.values()].flat().map((l) => l.socket), ...this.allocations.values()];
    this.listen.clear();
    this.allocations.clear();
    this.replyVia.clear();
    await Promise.all(all.map((s) => new Promise<void>((r) => closeSocket(s, r))));
  }

  /**
   * After libuv hands over one datagram, read what else is queued with one
   * recvmmsg: one wake-up then delivers many datagrams, in arrival order.
   */
  private drain(socket: Socket, deliver: DrainedHandler, peek: DrainPeek | undefined, fields: Record<string, unknown>): void {
    const d = this.drainer;
    // What the fast path queued leaves before the next read, not a turn later (and ends the handler's hold).
    if (!d) return void this.batcher?.flush();
    const r = d.drain(fdOf(socket), deliver, peek);
    this.batcher?.flush();
    if (r < 0) this.error('receive', { code: errnoCode(-r), message: 'recvmmsg failed' }, fields);
  }

  /** The fast path for one socket, counting what it takes (what it leaves is counted on delivery). */
  private peekFor(local: LocalEndpoint, kind: SocketKind): DrainPeek | undefined {
    const fast = this.opts.fastPath;
    if (fast === undefined) return undefined;
    const t = this.traffic.in[kind];
    return (bytes, off, len, family, address, port) => {
      if (!fast(local, kind, bytes, off, len, family, address, port)) return false;
      this.count(t, len);
      return true;
    };
  }

  private offer(peek: DrainPeek | undefined, msg: Buffer, rinfo: RemoteInfo): boolean {
    return peek !== undefined && peek(msg, 0, msg.length, rinfo.family === 'IPv4' ? 4 : 6, rinfo.address, rinfo.port);
  }

  private readDrops(w: DropWatch): void {
    const now = socketDrops(fdOf(w.socket));
    // -1: unreadable (no libc binding, a fd not found): that socket's drops stay unknown.
    if (now < 0) return;
    this.kernelDropped[w.kind] += dropsSince(w.last, now);
    w.last = now;
  }

  /** A closing socket's last drops are counted before its fd goes. */
  private unwatchDrops(socket: Socket): void {
    const w = this.dropWatches.get(socket);
    if (w === undefined) return;
    this.readDrops(w);
    this.dropWatches.delete(socket);
  }

  /** Drops since the last line, at most once per error-log interval: an overload is one line, not one per second. */
  private logDrops(): void {
    const total = this.kernelDropped.listen + this.kernelDropped.allocation;
    const now = Date.now();
    if (total === this.dropsLogged.total || now - this.dropsLogged.at < (this.opts.errorLogIntervalMs ?? 10_000)) return;
    this.opts.logger?.warn(
      { dropped: total - this.dropsLogged.total, listen: this.kernelDropped.listen, allocation: this.kernelDropped.allocation, recvBuffer: this.stats().buffers.recv },
      'udp receive buffers overflowed: the kernel dropped datagrams (read slower than they came)',
    );
    this.dropsLogged = { at: now, total };
  }

  private isListenPort(from: LocalEndpoint): boolean {
    // listenPort 0 (tests): the bound port is only known per socket.
    return this.opts.listenPort === 0 && (this.listen.get(from.family) ?? []).some((l) => l.local.port === from.port);
  }

  private allocationAddress(family: Family): string {
    const configured = family === 4 ? this.opts.allocationBind?.v4 : this.opts.allocationBind?.v6;
    return configured ?? this.opts.listenAddresses.find((a) => familyOf(a) === family) ?? WILDCARD[family];
  }

  private count(t: Traffic, bytes: number): void {
    t.packets++;
    t.bytes += bytes;
  }

  private error(op: 'send' | 'receive', e: { code?: string; message: string }, fields: Record<string, unknown>): void {
    this.errors.record(`${op}:${e.code ?? 'error'}`, { ...fields, err: e.message }, `udp ${op} error (not fatal)`);
  }

  private bind(family: Family, address: string, port: number): Promise<Socket> {
    return bindUdp(family, address, port, this.bufferBytes, this.opts.logger);
  }

  private buffersOf(socket: Socket): { recv: number; send: number } {
    try {
      return { recv: socket.getRecvBufferSize(), send: socket.getSendBufferSize() };
    } catch {
      return { recv: 0, send: 0 };
    }
  }
}

/** Closes a socket of ours; its fd number may come back for the next bind before dgram's 'close' event, so forget it now. */
function closeSocket(s: Socket, done?: () => void): void {
  forgetFd(s);
  closeQuietly(s, done);
}

/** The bound port of a socket for log fields; 0 once it is closed. */
function localPortOf(socket: Socket): number {
  try {
    return socket.address().port;
  } catch {
    return 0;
  }
}

/** A copy of data, as ChannelData (RFC 8656 12.4, no padding, as the XDP program sends it) when channel >= 0. */
function withChannelHeader(channel: number, data: Uint8Array): Buffer {
  const head = channel >= 0 ? 4 : 0;
  const b = Buffer.allocUnsafe(head + data.byteLength);
  if (head) {
    b.writeUInt16BE(channel, 0);
    b.writeUInt16BE(data.byteLength, 2);
  }
  b.set(data, head);
  return b;
}
