// The admission books of TURN-over-TCP/TLS connections, shared by every
// stream listener of a relay: a cap on connections in total and per source
// address, the ids connections are known by (LocalEndpoint.connection), and
// counts of why connections were refused or closed, per client transport.
// Pure bookkeeping: no sockets, no timers.
import type { ClientTransport } from '../../shared/endpoint.ts';

export type StreamTransport = Exclude<ClientTransport, 'udp'>;

/** Why a connection was refused or ended (low cardinality: a metric attribute). */
export type StreamCloseReason =
  | 'total-limit'
  | 'source-limit'
  | 'handshake-timeout'
  | 'frame-timeout'
  | 'idle-timeout'
  | 'garbage'
  | 'oversize'
  | 'tls-error'
  | 'socket-error'
  | 'peer-closed'
  | 'shutdown';

export interface StreamCaps {
  readonly maxConnections: number;
  readonly maxConnectionsPerSource: number;
}

export interface StreamStats {
  open: Record<StreamTransport, number>;
  accepted: Record<StreamTransport, number>;
  /** `tcp:garbage`, `tls:handshake-timeout`, ... */
  closed: Record<string, number>;
  /** Messages not written because the client does not read (its write buffer is full). */
  writeDropped: Record<StreamTransport, number>;
}

/** A connection id: its value in LocalEndpoint.connection. Ids wrap far beyond any open count. */
const ID_MAX = 0x7fffffff;

export class StreamConnections {
  readonly #perSource = new Map<string, number>();
  readonly #open = new Set<number>();
  #nextId = 1;
  readonly #stats: StreamStats = {
    open: { tcp: 0, tls: 0 },
    accepted: { tcp: 0, tls: 0 },
    closed: {},
    writeDropped: { tcp: 0, tls: 0 },
  };

  constructor(private readonly caps: StreamCaps) {}

  /** A new connection from `source`: its id, or why it is refused (counted). */
  admit(transport: StreamTransport, source: string): number | StreamCloseReason {
    let refused: StreamCloseReason | undefined;
    if (this.#open.size >= this.caps.maxConnections) refused = 'total-limit';
    else if ((this.#perSource.get(source) ?? 0) >= this.caps.maxConnectionsPerSource) refused = 'source-limit';
    if (refused !== undefined) {
      this.#count(transport, refused);
      return refused;
    }
    let id = this.#nextId;
    while (this.#open.has(id)) id = id >= ID_MAX ? 1 : id + 1;
    this.#nextId = id >= ID_MAX ? 1 : id + 1;
    this.#open.add(id);
    this.#perSource.set(source, (this.#perSource.get(source) ?? 0) + 1);
    this.#stats.open[transport]++;
    this.#stats.accepted[transport]++;
    return id;
  }

  /** The connection `id` from `source` ended for `reason`. */
  release(transport: StreamTransport, id: number, source: string, reason: StreamCloseReason): void {
    if (!this.#open.delete(id)) return;
    const n = (this.#perSource.get(source) ?? 1) - 1;
    if (n > 0) this.#perSource.set(source, n);
    else this.#perSource.delete(source);
    this.#stats.open[transport]--;
    this.#count(transport, reason);
  }

  writeDropped(transport: StreamTransport): void {
    this.#stats.writeDropped[transport]++;
  }

  get size(): number {
    return this.#open.size;
  }

  stats(): StreamStats {
    return {
      open: { ...this.#stats.open },
      accepted: { ...this.#stats.accepted },
      closed: { ...this.#stats.closed },
      writeDropped: { ...this.#stats.writeDropped },
    };
  }

  #count(transport: StreamTransport, reason: StreamCloseReason): void {
    const key = `${transport}:${reason}`;
    this.#stats.closed[key] = (this.#stats.closed[key] ?? 0) + 1;
  }
}
