// The relay's TURN-over-TCP/TLS side, whichever transport carries its UDP:
// the stream listeners (stream-listener.ts) on their addresses or on listening
// sockets handed down (stream-sockets.ts), the admission books they share,
// the TLS certificate they serve, and the way back to a connection. Messages
// reach the Driver like datagrams, with the connection in their LocalEndpoint;
// a closed connection ends its allocation.
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.ts';
import type { Family, LocalEndpoint, TransportAddress } from '../../shared/endpoint.ts';
import type { DataPlaneEvent } from '../server/types.ts';
import type { DatapathPort } from './driver.ts';
import { StreamConnections, type StreamCaps, type StreamStats, type StreamTransport } from './stream-connections.ts';
import { StreamListener, type StreamLimits } from './stream-listener.ts';
import { TlsContextSource, type TlsFiles } from './tls-context.ts';

export interface StreamOptions {
  /** TCP on the listen port. */
  readonly tcp: boolean;
  /** TLS on `port` with the certificate in `files` (reloaded when they change). */
  readonly tls?: { readonly port: number; readonly files: TlsFiles };
  readonly caps: StreamCaps;
  readonly limits: StreamLimits;
}

/** The stream settings of a configuration. */
export function streamOptions(config: Config): StreamOptions {
  return {
    tcp: config.tcp,
    ...(config.tlsCert !== undefined && config.tlsKey !== undefined ? { tls: { port: config.tlsPort, files: { cert: config.tlsCert, key: config.tlsKey } } } : {}),
    caps: { maxConnections: config.streamMaxConnections, maxConnectionsPerSource: config.streamMaxConnectionsPerSource },
    limits: {
      handshakeTimeoutMs: config.streamHandshakeTimeout * 1000,
      idleTimeoutMs: config.streamIdleTimeout * 1000,
      readBufferBytes: config.streamReadBuffer,
      writeBufferBytes: config.streamWriteBuffer,
    },
  };
}

/** One listening socket to serve: bound here, or `fd`, already listening, inherited. */
export interface StreamSocket {
  readonly transport: StreamTransport;
  readonly address: string;
  readonly port: number;
  readonly fd?: number;
}

/** The sockets `options` asks for on each listen address, for a process that binds its own. */
export function streamSockets(options: StreamOptions, listenAddresses: readonly string[], listenPort: number): StreamSocket[] {
  const out: StreamSocket[] = [];
  for (const address of listenAddresses) {
    if (options.tcp) out.push({ transport: 'tcp', address, port: listenPort });
    if (options.tls) out.push({ transport: 'tls', address, port: options.tls.port });
  }
  return out;
}

export interface StreamSink {
  message(data: Uint8Array, local: LocalEndpoint, remote: TransportAddress): void;
  closed(local: LocalEndpoint, remote: TransportAddress): void;
}

export class StreamServers {
  readonly #listeners: StreamListener[] = [];
  readonly #connections: StreamConnections;
  #tls: TlsContextSource | undefined;

  constructor(
    private readonly options: StreamOptions,
    private readonly sink: StreamSink,
    private readonly log?: Logger,
  ) {
    this.#connections = new StreamConnections(options.caps);
  }

  /** Listens on every socket; rejects on the first that cannot (the caller closes). */
  async listen(sockets: readonly StreamSocket[]): Promise<void> {
    const tlsFiles = this.options.tls?.files;
    if (!tlsFiles && sockets.some((s) => s.transport === 'tls')) throw new Error('a TLS listening socket was handed to this relay but no certificate is set (TURNPIKE_TLS_CERT and TURNPIKE_TLS_KEY)');
    if (tlsFiles && !this.#tls && sockets.some((s) => s.transport === 'tls')) this.#tls = new TlsContextSource(tlsFiles, this.log).watch();
    const tls = this.#tls;
    for (const s of sockets) {
      const listener = new StreamListener({
        transport: s.transport,
        address: s.address,
        port: s.port,
        limits: this.options.limits,
        connections: this.#connections,
        ...(tls ? { secureContext: () => tls.current } : {}),
        log: this.log,
        onMessage: (data, local, remote) => this.sink.message(data, local, remote),
        onClose: (local, remote) => this.sink.closed(local, remote),
      });
      this.#listeners.push(listener);
      await listener.listen(s.fd);
    }
  }

  /** To a TCP/TLS client: its connection, if still open (a closed one's allocation is going away). False when it is not. */
  send(connection: number, data: Uint8Array): boolean {
    for (const l of this.#listeners) {
      const c = l.connection(connection);
      if (c === undefined) continue;
      c.write(data);
      return true;
    }
    return false;
  }

  /** Listeners actually bound. */
  bound(): { transport: StreamTransport; address: string; port: number; family: Family }[] {
    return this.#listeners.map((l) => ({ transport: l.transport, ...l.address() }));
  }

  stats(): { streams: StreamStats; tls?: { reloads: number; reloadFailures: number } } {
    return { streams: this.#connections.stats(), ...(this.#tls ? { tls: this.#tls.stats() } : {}) };
  }

  async close(): Promise<void> {
    this.#tls?.close();
    await Promise.all(this.#listeners.splice(0).map((l) => l.close()));
  }
}

/**
 * `port` with sends to stream clients (a LocalEndpoint with a connection)
 * taken to their connection: the link's sidecar never sees a stream client's
 * traffic, only the peer leg's datagrams.
 */
export function routeStreams(port: DatapathPort, streams: StreamServers, onMissing: () => void): DatapathPort {
  return {
    send(from: LocalEndpoint, to: TransportAddress, data: Uint8Array): void {
      if (from.connection === undefined) port.send(from, to, data);
      else if (!streams.send(from.connection, data)) onMissing();
    },
    openPort: (token: number, family: Family, p: number) => port.openPort(token, family, p),
    closePort: (family: Family, p: number) => port.closePort(family, p),
    onEvent: (ev: DataPlaneEvent) => port.onEvent(ev),
  };
}
