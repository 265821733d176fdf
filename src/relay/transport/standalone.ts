// Standalone transport: the relay owns its UDP sockets (development, and hosts
// without the sidecar). One socket per listen address on the listen port, one
// per allocation port bound on demand. Socket errors are counted and logged,
// never fatal; the TURN logic lives entirely in the server behind the Driver.
// TURN over TCP (on the listen port) and TLS (on its own port) listen on the
// same addresses (stream-listener.ts); their messages reach the same Driver
// with the connection in their LocalEndpoint, and a closed connection ends
// its allocation.
import type { Socket } from 'node:dgram';
import type { Logger } from 'pino';
import type { DataPlaneEvent, Family, LocalEndpoint, TransportAddress } from '../server/types.ts';
import { Driver, type DatapathPort } from './driver.ts';
import type { StartTransport } from './runner.ts';
import { ErrorCounter } from '../../net/error-log.ts';
import { chooseRelayAddresses, describeRelayAddresses } from '../../net/relay-address.ts';
import { ReplyRoutes, bindUdp, closeQuietly, remoteOf } from '../../net/udp.ts';
import { WILDCARD, familyOf, portKey } from '../../shared/endpoint.ts';
import type { Config } from '../../config/schema.ts';
import type { StreamStats } from './stream-connections.ts';
import { StreamServers, streamOptions, streamSockets, type StreamOptions } from './streams.ts';

export { streamOptions, type StreamOptions } from './streams.ts';

export interface StandaloneOptions {
  readonly listenPort: number;
  /** e.g. ['0.0.0.0', '::']; IPv6 sockets are v6-only so both wildcards bind. */
  readonly listenAddresses: readonly string[];
  /** Where allocation ports bind per family (default: the family's wildcard). */
  readonly allocationBind?: { readonly v4?: string; readonly v6?: string };
  /** Socket send/receive buffer size requested from the kernel (it may clamp). */
  readonly bufferBytes?: number;
  readonly log?: Logger;
  /** TURN over TCP and TLS; absent: UDP only. */
  readonly streams?: StreamOptions;
}

export interface TransportStats {
  received: { packets: number; bytes: number };
  sent: { packets: number; bytes: number };
  /** "send:EHOSTUNREACH", "receive:ENOBUFS", "bind:EADDRINUSE", "no-socket", ... */
  errors: Record<string, number>;
  openPorts: number;
  /** TCP/TLS connections (when streams are on). */
  streams?: StreamStats;
  tls?: { reloads: number; reloadFailures: number };
}

const DEFAULT_BUFFER = 4 * 1024 * 1024;

interface ListenSocket {
  readonly socket: Socket;
  readonly address: string;
  readonly local: LocalEndpoint;
}

export class StandaloneTransport implements DatapathPort {
  private driver: Driver | undefined;
  private readonly listen = new Map<Family, ListenSocket[]>();
  private readonly allocations = new Map<number, Socket>();
  private readonly replyVia = new ReplyRoutes();
  private readonly errors: ErrorCounter;
  private readonly received = { packets: 0, bytes: 0 };
  private readonly sent = { packets: 0, bytes: 0 };
  private readonly bufferBytes: number;
  private readonly streams: StreamServers | undefined;
  private closed = false;

  constructor(private readonly opts: StandaloneOptions) {
    this.errors = new ErrorCounter(opts.log);
    this.bufferBytes = opts.bufferBytes ?? DEFAULT_BUFFER;
    if (opts.streams) {
      this.streams = new StreamServers(
        opts.streams,
        {
          message: (data, local, remote) => {
            this.received.packets++;
            this.received.bytes += data.byteLength;
            this.driver?.datagram(data, local, remote);
          },
          closed: (local, remote) => this.driver?.connectionClosed(local, remote),
        },
        opts.log,
      );
    }
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
          if (multi()) this.replyVia.remember(remote, socket);
          this.deliver(msg, entry.local, remote);
        });
        socket.on('error', (e: NodeJS.ErrnoException) => this.socketError('receive', e, { port: this.opts.listenPort, address }));
      }
      await this.listenStreams();
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  private async listenStreams(): Promise<void> {
    if (this.opts.streams) await this.streams?.listen(streamSockets(this.opts.streams, this.opts.listenAddresses, this.opts.listenPort));
  }

  /** TCP and TLS listeners actually bound. */
  boundStreams(): { transport: 'tcp' | 'tls'; address: string; port: number; family: Family }[] {
    return this.streams?.bound() ?? [];
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
    if (from.connection !== undefined) return this.sendStream(from.connection, data);
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

  /** To a TCP/TLS client: its connection, if still open (a closed one's allocation is going away). */
  private sendStream(connection: number, data: Uint8Array): void {
    if (!this.streams?.send(connection, data)) return this.errors.count('no-connection');
    this.sent.packets++;
    this.sent.bytes += data.byteLength;
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
        this.errors.count(`bind:${e.code ?? 'error'}`);
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
    closeQuietly(socket);
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
      ...this.streams?.stats(),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.streams?.close();
    const all = [...[...this.listen.values()].flat().map((l) => l.socket), ...this.allocations.values()];
    this.listen.clear();
    this.allocations.clear();
    this.replyVia.clear();
    await Promise.all(all.map((s) => new Promise<void>((resolve) => closeQuietly(s, resolve))));
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
      return this.replyVia.get(to) ?? list[0]!.socket;
    }
    return this.allocations.get(portKey(from.family, from.port));
  }

  private socketError(op: 'send' | 'receive', e: NodeJS.ErrnoException, fields: Record<string, unknown>): void {
    this.errors.record(`${op}:${e.code ?? 'error'}`, { ...fields, err: e.message }, `socket ${op} error (not fatal)`);
  }

  private bind(family: Family, address: string, port: number): Promise<Socket> {
    return bindUdp(family, address, port, this.bufferBytes, this.opts.log);
  }
}

/** Runs a TurnServer behind the relay's own UDP sockets (see runner.ts). */
export const startStandaloneTransport: StartTransport = async ({ config, buildServer, logs }) => {
  const log = logs.get('transport');
  const relay = await chooseRelayAddresses(config, logs.get('relay'));
  const server = buildServer({ v4: relay.v4.address, v6: relay.v6.address });
  const transport = new StandaloneTransport({
    listenPort: config.listenPort,
    listenAddresses: config.listenAddresses,
    log,
    streams: streamOptions(config),
  });
  const driver = new Driver(server, transport, { log });
  transport.attach(driver);
  await transport.listenAll();
  driver.kick();
  return {
    server,
    describe: () => ({
      transport: 'standalone',
      listen: transport.boundAddresses().map((a) => hostPort(a)),
      streams: transport.boundStreams().map((a) => `${a.transport}:${hostPort(a)}`),
      relayAddresses: describeRelayAddresses(relay),
    }),
    stats: () => ({ ...transport.stats() }),
    close: async () => {
      driver.close();
      await transport.close();
    },
  };
};

const hostPort = (a: { address: string; port: number; family: Family }): string => (a.family === 6 ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
