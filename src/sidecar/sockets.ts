// The sidecar's UDP sockets: the TURN listen port on each configured address
// and the allocation ports the relay asks for. Everything the kernel fast path
// passes up arrives here and goes to `onPacket`; the relay's replies leave via
// `send`. No TURN logic. A socket error is counted (by operation and code) and
// logged at most once per interval per kind, never fatal.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Family, LocalEndpoint, TransportAddress } from '../relay/server/types.ts';

export type SocketKind = 'listen' | 'allocation';

export type PacketHandler = (local: LocalEndpoint, remote: TransportAddress, data: Buffer, kind: SocketKind) => void;

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
  /** Minimum ms between two log lines of one error kind. */
  errorLogIntervalMs?: number;
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
}

const WILDCARD: Record<Family, string> = { 4: '0.0.0.0', 6: '::' };
/** One send in this many carries a completion callback while no error is known. */
export const SEND_CHECK_EVERY = 16;
/** After a send error, this many sends all carry the callback. */
const SEND_CHECK_AFTER_ERROR = 4096;

/**
 * node:dgram resolves every destination with dns.lookup, which answers an IP
 * literal on the next tick: a tick per datagram sent. Destinations here are IP
 * literals, so answer those at once and leave names to dns.lookup.
 */
function literalLookup(hostname: string, options: LookupOneOptions | number, cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  const family = isIP(hostname);
  if (family !== 0) return cb(null, hostname, family);
  dnsLookup(hostname, typeof options === 'number' ? { family: options } : options, cb);
}

const portKey = (family: Family, port: number) => family * 65536 + port;

/** The remote as the relay should see it: IPv4-mapped IPv6 sources stay IPv4. */
export function remoteFrom(r: Pick<RemoteInfo, 'address' | 'family' | 'port'>): TransportAddress {
  if (r.family === 'IPv4') return { family: 4, address: r.address, port: r.port };
  const a = r.address;
  if (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4) return { family: 4, address: a.slice(7), port: r.port };
  return { family: 6, address: a, port: r.port };
}

interface ListenSocket {
  socket: Socket;
  address: string;
  local: LocalEndpoint;
}

export class UdpSockets {
  private readonly listen = new Map<Family, ListenSocket[]>();
  private readonly allocations = new Map<number, Socket>();
  /** With several listen sockets in one family, replies leave from the one the client used. */
  private readonly replyVia = new Map<string, Socket>();
  private readonly traffic = {
    in: { listen: { packets: 0, bytes: 0 }, allocation: { packets: 0, bytes: 0 } },
    out: { listen: { packets: 0, bytes: 0 }, allocation: { packets: 0, bytes: 0 } },
  };
  private readonly errors: Record<string, number> = {};
  private readonly lastLogged = new Map<string, { at: number; suppressed: number }>();
  private readonly bufferBytes: number;
  private closed = false;
  private sendSeq = 0;
  private checkAllSends = 0;

  constructor(private readonly opts: UdpSocketsOptions) {
    this.bufferBytes = opts.bufferBytes ?? 4 << 20;
  }

  /** Binds the listen sockets; rejects (closing what was bound) if one cannot bind. */
  async listenAll(): Promise<void> {
    try {
      for (const address of this.opts.listenAddresses) {
        const family: Family = isIP(address) === 6 ? 6 : 4;
        const socket = await this.bind(family, address, this.opts.listenPort);
        const port = (socket.address() as { port: number }).port;
        const entry: ListenSocket = { socket, address, local: { family, port } };
        const list = this.listen.get(family) ?? [];
        list.push(entry);
        this.listen.set(family, list);
        socket.on('message', (msg, rinfo) => {
          const remote = remoteFrom(rinfo);
          if (list.length > 1) this.rememberReply(remote, socket);
          this.count(this.traffic.in.listen, msg.length);
          this.opts.onPacket(entry.local, remote, msg, 'listen');
        });
        socket.on('error', (e: NodeJS.ErrnoException) => this.error('receive', e, { port, address }));
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
      this.errors[`bind:${code}`] = (this.errors[`bind:${code}`] ?? 0) + 1;
      this.opts.logger?.debug({ family, port, code }, 'allocation port bind failed');
      return { ok: false, error: code };
    }
    if (this.closed || this.allocations.has(key)) {
      socket.close();
      return this.closed ? { ok: false, error: 'ESHUTDOWN' } : { ok: true, error: '' };
    }
    const local: LocalEndpoint = { family, port };
    socket.on('message', (msg, rinfo) => {
      this.count(this.traffic.in.allocation, msg.length);
      this.opts.onPacket(local, remoteFrom(rinfo), msg, 'allocation');
    });
    socket.on('error', (e: NodeJS.ErrnoException) => this.error('receive', e, { family, port }));
    this.allocations.set(key, socket);
    return { ok: true, error: '' };
  }

  /** Closes one allocation port; false if it was not open. */
  closePort(family: Family, port: number): boolean {
    const key = portKey(family, port);
    const socket = this.allocations.get(key);
    if (!socket) return false;
    this.allocations.delete(key);
    safeClose(socket);
    return true;
  }

  /** Closes every allocation port (the relay went away); returns how many. */
  closeAllocationPorts(): number {
    const n = this.allocations.size;
    for (const s of this.allocations.values()) safeClose(s);
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
      socket = list.length === 1 ? list[0]!.socket : this.replyVia.get(`${to.address}|${to.port}`) ?? list[0]!.socket;
    } else socket = this.allocations.get(portKey(from.family, from.port));
    if (!socket) {
      this.error('send', { code: 'no-socket', message: 'no socket for this local port' }, { family: from.family, port: from.port });
      return false;
    }
    this.count(this.traffic.out[kind], data.byteLength);
    try {
      // A completion callback costs a closure and a tick per datagram (~10% of
      // the sidecar's CPU per relayed packet), and node:dgram reports kernel
      // send errors only through it. So sample: one send in SEND_CHECK_EVERY
      // carries it, and once an error shows up every send does for a while.
      if (this.checkAllSends > 0 || ++this.sendSeq % SEND_CHECK_EVERY === 0) {
        if (this.checkAllSends > 0) this.checkAllSends--;
        socket.send(data, to.port, to.address, (err) => {
          if (!err) return;
          this.checkAllSends = SEND_CHECK_AFTER_ERROR;
          this.error('send', err, { port: from.port, to: `${to.address}:${to.port}` });
        });
      } else socket.send(data, to.port, to.address);
    } catch (e) {
      // Synchronous throws (a socket closed meanwhile, a bad address) are as non-fatal as async ones.
      this.error('send', e as NodeJS.ErrnoException, { port: from.port, to: `${to.address}:${to.port}` });
      return false;
    }
    return true;
  }

  stats(): SocketStats {
    const first = [...this.listen.values()].flat()[0];
    return {
      in: { listen: { ...this.traffic.in.listen }, allocation: { ...this.traffic.in.allocation } },
      out: { listen: { ...this.traffic.out.listen }, allocation: { ...this.traffic.out.allocation } },
      errors: { ...this.errors },
      allocationPorts: this.allocations.size,
      buffers: first ? this.buffersOf(first.socket) : { recv: 0, send: 0 },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...[...this.listen.values()].flat().map((l) => l.socket), ...this.allocations.values()];
    this.listen.clear();
    this.allocations.clear();
    this.replyVia.clear();
    await Promise.all(all.map((s) => new Promise<void>((r) => safeClose(s, r))));
  }

  private isListenPort(from: LocalEndpoint): boolean {
    // listenPort 0 (tests): the bound port is only known per socket.
    return this.opts.listenPort === 0 && (this.listen.get(from.family) ?? []).some((l) => l.local.port === from.port);
  }

  private allocationAddress(family: Family): string {
    const configured = family === 4 ? this.opts.allocationBind?.v4 : this.opts.allocationBind?.v6;
    return configured ?? this.opts.listenAddresses.find((a) => (isIP(a) === 6 ? 6 : 4) === family) ?? WILDCARD[family];
  }

  private count(t: Traffic, bytes: number): void {
    t.packets++;
    t.bytes += bytes;
  }

  private rememberReply(remote: TransportAddress, socket: Socket): void {
    // Bounded: a scan from many sources only costs a fallback to the first socket.
    if (this.replyVia.size >= 65536) this.replyVia.clear();
    this.replyVia.set(`${remote.address}|${remote.port}`, socket);
  }

  private error(op: 'send' | 'receive', e: { code?: string; message: string }, fields: Record<string, unknown>): void {
    const kind = `${op}:${e.code ?? 'error'}`;
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
    const log = this.opts.logger;
    if (!log) return;
    const now = Date.now();
    const last = this.lastLogged.get(kind);
    if (last && now - last.at < (this.opts.errorLogIntervalMs ?? 10_000)) {
      last.suppressed++;
      return;
    }
    log.warn({ ...fields, kind, err: e.message, suppressed: last?.suppressed ?? 0 }, `udp ${op} error (not fatal)`);
    this.lastLogged.set(kind, { at: now, suppressed: 0 });
  }

  private bind(family: Family, address: string, port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: family === 4 ? 'udp4' : 'udp6', ipv6Only: family === 6, reuseAddr: false, lookup: literalLookup });
      const onError = (e: Error) => {
        safeClose(socket);
        reject(e);
      };
      socket.once('error', onError);
      socket.bind({ port, address, exclusive: true }, () => {
        socket.off('error', onError);
        try {
          socket.setRecvBufferSize(this.bufferBytes);
          socket.setSendBufferSize(this.bufferBytes);
        } catch (e) {
          this.opts.logger?.debug({ err: (e as Error).message }, 'could not raise socket buffers');
        }
        resolve(socket);
      });
    });
  }

  private buffersOf(socket: Socket): { recv: number; send: number } {
    try {
      return { recv: socket.getRecvBufferSize(), send: socket.getSendBufferSize() };
    } catch {
      return { recv: 0, send: 0 };
    }
  }
}

function safeClose(s: Socket, done?: () => void): void {
  try {
    s.close(done);
  } catch {
    done?.();
  }
}
