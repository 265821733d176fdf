// Standalone transport: the relay owns its UDP sockets (development, and hosts
// without the sidecar). One socket per listen address on the listen port, one
// per allocation port bound on demand. Socket errors are counted and logged,
// never fatal; the TURN logic lives entirely in the server behind the Driver.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { DataPlaneEvent, Family, LocalEndpoint, TransportAddress } from '../server/types.ts';
import { Driver, type DatapathPort } from './driver.ts';
import type { StartTransport } from './runner.ts';
import { ErrorCounter } from './error-log.ts';

export interface StandaloneOptions {
  readonly listenPort: number;
  /** e.g. ['0.0.0.0', '::']; IPv6 sockets are v6-only so both wildcards bind. */
  readonly listenAddresses: readonly string[];
  /** Where allocation ports bind per family (default: the family's wildcard). */
  readonly allocationBind?: { readonly v4?: string; readonly v6?: string };
  /** Socket send/receive buffer size requested from the kernel (it may clamp). */
  readonly bufferBytes?: number;
  readonly log?: Logger;
}

export interface TransportStats {
  received: { packets: number; bytes: number };
  sent: { packets: number; bytes: number };
  /** "send:EHOSTUNREACH", "receive:ENOBUFS", "bind:EADDRINUSE", "no-socket", ... */
  errors: Record<string, number>;
  openPorts: number;
}

const WILDCARD: Readonly<Record<Family, string>> = { 4: '0.0.0.0', 6: '::' };

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

const DEFAULT_BUFFER = 4 * 1024 * 1024;

const familyOf = (address: string): Family => (isIP(address) === 6 ? 6 : 4);
const portKey = (family: Family, port: number) => family * 65536 + port;

/**
 * The remote address as the server should see it. Sockets here are bound
 * v6-only, but a dual-stack socket would report IPv4 clients as
 * ::ffff:a.b.c.d, which must stay an IPv4 client, not become an IPv6 one.
 */
export function remoteOf(rinfo: Pick<RemoteInfo, 'address' | 'family' | 'port'>): TransportAddress {
  if (rinfo.family === 'IPv4') return { family: 4, address: rinfo.address, port: rinfo.port };
  const a = rinfo.address;
  if (a.length > 7 && a.charCodeAt(0) === 58 /* : */ && /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a)) {
    return { family: 4, address: a.slice(7), port: rinfo.port };
  }
  return { family: 6, address: a, port: rinfo.port };
}

interface ListenSocket {
  readonly socket: Socket;
  readonly address: string;
  readonly local: LocalEndpoint;
}

export class StandaloneTransport implements DatapathPort {
  private driver: Driver | undefined;
  private readonly listen = new Map<Family, ListenSocket[]>();
  private readonly allocations = new Map<number, Socket>();
  /** With several listen sockets in one family, replies leave from the one the client used. */
  private readonly replyVia = new Map<string, Socket>();
  private readonly errors: ErrorCounter;
  private readonly received = { packets: 0, bytes: 0 };
  private readonly sent = { packets: 0, bytes: 0 };
  private readonly bufferBytes: number;
  private closed = false;

  constructor(private readonly opts: StandaloneOptions) {
    this.errors = new ErrorCounter(opts.log);
    this.bufferBytes = opts.bufferBytes ?? DEFAULT_BUFFER;
  }

  attach(driver: Driver): void {
    this.driver = driver;
  }

  /** Binds the listen sockets; rejects (and closes what was bound) if one cannot bind. */
  async listenAll(): Promise<void> {
    try {
      for (const address of this.opts.listenAddresses) {
        const family = familyOf(address);
        const socket = await this.bind(family, address, this.opts.listenPort);
        const entry: ListenSocket = { socket, address, local: { family, port: this.opts.listenPort } };
        const list = this.listen.get(family) ?? [];
        list.push(entry);
        this.listen.set(family, list);
        const multi = () => (this.listen.get(family)?.length ?? 0) > 1;
        socket.on('message', (msg, rinfo) => {
          const remote = remoteOf(rinfo);
          if (multi()) this.rememberReply(remote, socket);
          this.deliver(msg, entry.local, remote);
        });
        socket.on('error', (e: NodeJS.ErrnoException) => this.socketError('receive', e, { port: this.opts.listenPort, address }));
      }
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  /** The addresses actually bound (port resolved when listenPort was 0, for tests). */
  boundAddresses(): { address: string; port: number; family: Family }[] {
    const out: { address: string; port: number; family: Family }[] = [];
    for (const list of this.listen.values()) {
      for (const l of list) {
        const a = l.socket.address();
        out.push({ address: a.address, port: a.port, family: l.local.family });
      }
    }
    return out;
  }

  send(from: LocalEndpoint, to: TransportAddress, data: Uint8Array): void {
    const socket = this.socketFor(from, to);
    if (!socket) {
      this.errors.record('no-socket', { family: from.family, port: from.port }, 'no socket for a datagram the server sent; dropped');
      return;
    }
    this.sent.packets++;
    this.sent.bytes += data.byteLength;
    try {
      socket.send(data, to.port, to.address, (err) => {
        if (err) this.socketError('send', err, { port: from.port, peer: `${to.address}:${to.port}` });
      });
    } catch (e) {
      // Synchronous throws (a closed socket, a bad port) are as non-fatal as asynchronous ones.
      this.socketError('send', e as NodeJS.ErrnoException, { port: from.port, peer: `${to.address}:${to.port}` });
    }
  }

  openPort(token: number, family: Family, port: number): void {
    const address = (family === 4 ? this.opts.allocationBind?.v4 : this.opts.allocationBind?.v6) ?? WILDCARD[family];
    this.bind(family, address, port).then(
      (socket) => {
        if (this.closed) {
          socket.close();
          return;
        }
        const local: LocalEndpoint = { family, port };
        socket.on('message', (msg, rinfo) => this.deliver(msg, local, remoteOf(rinfo)));
        socket.on('error', (e: NodeJS.ErrnoException) => this.socketError('receive', e, { port }));
        this.allocations.set(portKey(family, port), socket);
        this.driver?.portOpened(token, true);
      },
      (e: NodeJS.ErrnoException) => {
        // EADDRINUSE is routine (another process holds the port): the server picks another.
        this.errors.counts[`bind:${e.code ?? 'error'}`] = (this.errors.counts[`bind:${e.code ?? 'error'}`] ?? 0) + 1;
        this.opts.log?.debug({ family, port, code: e.code }, 'allocation port bind failed');
        this.driver?.portOpened(token, false);
      },
    );
  }

  closePort(family: Family, port: number): void {
    const key = portKey(family, port);
    const socket = this.allocations.get(key);
    if (!socket) return;
    this.allocations.delete(key);
    try {
      socket.close();
    } catch {
      // already closed
    }
  }

  onEvent(ev: DataPlaneEvent): void {
    const log = this.opts.log;
    if (!log) return;
    switch (ev.type) {
      case 'allocation-port-opened':
      case 'allocation-port-closed':
        log.info({ client: `${ev.client.address}:${ev.client.port}`, family: ev.family, port: ev.port }, ev.type);
        break;
      default: {
        const b = ev.binding;
        log.debug(
          { client: `${b.client.address}:${b.client.port}`, peer: `${b.peer.address}:${b.peer.port}`, channel: b.channel, port: b.allocationPort },
          ev.type,
        );
      }
    }
  }

  stats(): TransportStats {
    return {
      received: { ...this.received },
      sent: { ...this.sent },
      errors: { ...this.errors.counts },
      openPorts: this.allocations.size,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...[...this.listen.values()].flat().map((l) => l.socket), ...this.allocations.values()];
    this.listen.clear();
    this.allocations.clear();
    this.replyVia.clear();
    await Promise.all(
      all.map(
        (s) =>
          new Promise<void>((resolve) => {
            try {
              s.close(() => resolve());
            } catch {
              resolve();
            }
          }),
      ),
    );
  }

  private deliver(msg: Buffer, local: LocalEndpoint, remote: TransportAddress): void {
    this.received.packets++;
    this.received.bytes += msg.byteLength;
    this.driver?.datagram(msg, local, remote);
  }

  private socketFor(from: LocalEndpoint, to: TransportAddress): Socket | undefined {
    if (from.port === this.opts.listenPort) {
      const list = this.listen.get(from.family);
      if (!list || list.length === 0) return undefined;
      if (list.length === 1) return list[0]!.socket;
      return this.replyVia.get(`${to.address}|${to.port}`) ?? list[0]!.socket;
    }
    return this.allocations.get(portKey(from.family, from.port));
  }

  private rememberReply(remote: TransportAddress, socket: Socket): void {
    // Bounded: a scan of many sources only costs a fallback to the first socket.
    if (this.replyVia.size >= 65536) this.replyVia.clear();
    this.replyVia.set(`${remote.address}|${remote.port}`, socket);
  }

  private socketError(op: 'send' | 'receive', e: NodeJS.ErrnoException, fields: Record<string, unknown>): void {
    this.errors.record(`${op}:${e.code ?? 'error'}`, { ...fields, err: e.message }, `socket ${op} error (not fatal)`);
  }

  private bind(family: Family, address: string, port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: family === 4 ? 'udp4' : 'udp6', ipv6Only: family === 6, reuseAddr: false, lookup: literalLookup });
      const onError = (e: Error) => {
        try {
          socket.close();
        } catch {
          // never bound
        }
        reject(e);
      };
      socket.once('error', onError);
      socket.bind({ port, address, exclusive: true }, () => {
        socket.off('error', onError);
        this.raiseBuffers(socket);
        resolve(socket);
      });
    });
  }

  private raiseBuffers(socket: Socket): void {
    try {
      socket.setRecvBufferSize(this.bufferBytes);
      socket.setSendBufferSize(this.bufferBytes);
    } catch (e) {
      // The kernel clamps to net.core.[rw]mem_max rather than failing; an error here is cosmetic.
      this.opts.log?.debug({ err: (e as Error).message }, 'could not raise socket buffers');
    }
  }
}

/** Runs a TurnServer behind the relay's own UDP sockets (see runner.ts). */
export const startStandaloneTransport: StartTransport = async ({ config, server, logs }) => {
  const log = logs.get('transport');
  const transport = new StandaloneTransport({
    listenPort: config.listenPort,
    listenAddresses: config.listenAddresses,
    log,
  });
  const driver = new Driver(server, transport, { log });
  transport.attach(driver);
  await transport.listenAll();
  driver.kick();
  return {
    describe: () => ({ transport: 'standalone', listen: transport.boundAddresses().map((a) => (a.family === 6 ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`)) }),
    stats: () => ({ ...transport.stats() }),
    close: async () => {
      driver.close();
      await transport.close();
    },
  };
};
