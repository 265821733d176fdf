// One listening TCP socket serving TURN over TCP, or over TLS (RFC 8656
// §3.1): accepts connections within the shared caps (stream-connections.ts),
// runs TLS in this process when asked (node:tls on the accepted socket, with
// whatever certificate tls-context.ts holds at that moment), cuts each stream
// into messages (stream-framer.ts) and hands them on with the connection's
// LocalEndpoint; replies come back through write().
//
// Nothing a client does holds resources for long: a connection must finish
// its TLS handshake and send a whole first message within the handshake
// timeout, any message once started must complete within it too (slowloris),
// one with nothing at all for the idle timeout is closed, a connection never
// buffers more than one message of at most the read buffer size, and what we
// write to a client that does not read is dropped past the write buffer.
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { Family, LocalEndpoint, TransportAddress } from '../../shared/endpoint.ts';
import { familyOf } from '../../shared/endpoint.ts';
import { StreamFramer, padForStream } from './stream-framer.ts';
import type { StreamCloseReason, StreamConnections, StreamTransport } from './stream-connections.ts';

export interface StreamLimits {
  /** ms to finish the TLS handshake and the first message, and to complete any message once started. */
  readonly handshakeTimeoutMs: number;
  /** ms without a byte from the client before the connection closes. */
  readonly idleTimeoutMs: number;
  /** The largest message a client may send (its read buffer), bytes. */
  readonly readBufferBytes: number;
  /** Bytes queued to a client that does not read before further messages are dropped. */
  readonly writeBufferBytes: number;
}

export interface StreamListenerOptions {
  readonly transport: StreamTransport;
  readonly address: string;
  readonly port: number;
  readonly limits: StreamLimits;
  readonly connections: StreamConnections;
  /** The context for the next TLS handshake (tls only). */
  readonly secureContext?: () => SecureContext;
  readonly log?: Logger | undefined;
  onMessage(data: Uint8Array, local: LocalEndpoint, remote: TransportAddress): void;
  onClose(local: LocalEndpoint, remote: TransportAddress): void;
}

/** One accepted client connection. */
export class StreamConnection {
  #framer: StreamFramer;
  #progress: NodeJS.Timeout | undefined;
  #started = false; // a first whole message arrived
  #closing: StreamCloseReason | undefined;

  constructor(
    readonly local: LocalEndpoint,
    readonly remote: TransportAddress,
    private readonly raw: Socket,
    private readonly stream: Socket,
    private readonly opts: StreamListenerOptions,
  ) {
    this.#framer = new StreamFramer(opts.limits.readBufferBytes);
    this.#armProgress('handshake-timeout');
    raw.setTimeout(opts.limits.idleTimeoutMs, () => this.close('idle-timeout'));
    raw.setNoDelay(true);
    // Not on the TLS socket as well (it takes over the raw one's handle): that cut
    // one-message-in-flight latency, but coturn's uclient then lost messages over TLS.
    stream.on('data', (chunk: Buffer) => this.#data(chunk));
    stream.on('end', () => this.close('peer-closed'));
    stream.on('error', (e: NodeJS.ErrnoException) => this.close(stream === raw ? 'socket-error' : tlsReason(e)));
    raw.on('error', () => this.close('socket-error'));
    raw.on('close', () => this.#closed());
  }

  /** Queue one message to the client; dropped (counted) when the client is not reading. */
  write(data: Uint8Array): void {
    if (this.#closing !== undefined || this.stream.destroyed) return;
    if (this.stream.writableLength > this.opts.limits.writeBufferBytes) {
      this.opts.connections.writeDropped(this.opts.transport);
      return;
    }
    this.stream.write(padForStream(data));
  }

  close(reason: StreamCloseReason): void {
    if (this.#closing !== undefined) return;
    this.#closing = reason;
    clearTimeout(this.#progress);
    this.opts.log?.debug({ transport: this.opts.transport, client: `${this.remote.address}:${this.remote.port}`, reason }, 'stream connection closed');
    this.stream.destroy();
    this.raw.destroy();
  }

  #data(chunk: Buffer): void {
    if (this.#closing !== undefined) return;
    const { frames, error } = this.#framer.push(chunk);
    for (const f of frames) {
      this.opts.onMessage(f, this.local, this.remote);
      if (this.#closing !== undefined) return;
    }
    if (frames.length > 0) this.#started = true;
    if (error !== undefined) return this.close(error);
    // Before the first message the handshake clock runs on; after it, only a message in progress is timed.
    if (!this.#started) return;
    if (this.#framer.buffered === 0) {
      clearTimeout(this.#progress);
      this.#progress = undefined;
    } else if (this.#progress === undefined) this.#armProgress('frame-timeout');
  }

  #armProgress(reason: StreamCloseReason): void {
    this.#progress = setTimeout(() => this.close(reason), this.opts.limits.handshakeTimeoutMs);
    this.#progress.unref();
  }

  #closed(): void {
    clearTimeout(this.#progress);
    const reason = this.#closing ?? 'peer-closed';
    this.#closing = reason;
    this.opts.connections.release(this.opts.transport, this.local.connection!, this.remote.address, reason);
    this.opts.onClose(this.local, this.remote);
  }
}

function tlsReason(e: NodeJS.ErrnoException): StreamCloseReason {
  return e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'socket-error' : 'tls-error';
}

export class StreamListener {
  readonly #server: Server;
  readonly #open = new Map<number, StreamConnection>();
  #family: Family;

  constructor(private readonly opts: StreamListenerOptions) {
    this.#family = familyOf(opts.address);
    // pauseOnConnect: not one byte is read from a connection we refuse.
    this.#server = createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.#accept(socket));
    this.#server.on('error', (e) => opts.log?.warn({ err: e.message, transport: opts.transport }, 'stream listener error (not fatal)'));
  }

  get transport(): StreamTransport {
    return this.opts.transport;
  }

  /** Binds; rejects when the address cannot be bound. `fd`: an inherited listening socket instead. */
  listen(fd?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const fail = (e: Error) => reject(e);
      this.#server.once('error', fail);
      const ready = () => {
        this.#server.off('error', fail);
        // An inherited socket's family is what it is bound to, whatever it was called.
        const a = this.#server.address();
        if (a !== null && typeof a !== 'string') this.#family = a.family === 'IPv6' ? 6 : 4;
        resolve();
      };
      if (fd !== undefined) this.#server.listen({ fd }, ready);
      else this.#server.listen({ host: this.opts.address, port: this.opts.port, ipv6Only: this.#family === 6, backlog: 511 }, ready);
    });
  }

  /** The bound address (port resolved when 0 was asked, for tests). */
  address(): { address: string; port: number; family: Family } {
    const a = this.#server.address();
    if (a === null || typeof a === 'string') return { address: this.opts.address, port: this.opts.port, family: this.#family };
    return { address: a.address, port: a.port, family: this.#family };
  }

  connection(id: number): StreamConnection | undefined {
    return this.#open.get(id);
  }

  async close(): Promise<void> {
    for (const c of [...this.#open.values()]) c.close('shutdown');
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(raw: Socket): void {
    const remote: TransportAddress | undefined =
      raw.remoteAddress === undefined || raw.remotePort === undefined
        ? undefined
        : { family: familyOf(raw.remoteAddress), address: raw.remoteAddress, port: raw.remotePort };
    if (remote === undefined) return void raw.destroy(); // already gone
    const id = this.opts.connections.admit(this.opts.transport, remote.address);
    if (typeof id !== 'number') {
      this.opts.log?.debug({ transport: this.opts.transport, client: `${remote.address}:${remote.port}`, reason: id }, 'stream connection refused');
      return void raw.destroy();
    }
    const local: LocalEndpoint = { family: this.#family, port: this.address().port, connection: id, transport: this.opts.transport };
    const stream = this.opts.transport === 'tls' ? new TLSSocket(raw, { isServer: true, secureContext: this.opts.secureContext!() }) : raw;
    const conn = new StreamConnection(local, remote, raw, stream, {
      ...this.opts,
      onClose: (l, r) => {
        this.#open.delete(id);
        this.opts.onClose(l, r);
      },
    });
    this.#open.set(id, conn);
    raw.resume();
  }
}
