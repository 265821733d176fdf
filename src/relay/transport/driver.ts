// The glue between a sans-IO TurnServer and whatever carries its datagrams
// (the relay's own UDP sockets, or the sidecar link). A transport calls
// `datagram()` / `portOpened()` as things arrive; the driver feeds the
// server, drains every output into the transport's `DatapathPort`, and keeps
// one timer armed at the server's next deadline.
import type { Logger } from 'pino';
import type { DataPlaneEvent, Family, LocalEndpoint, Output, TransportAddress } from '../server/types.ts';
import { monotonicClock } from './clock.ts';

/** The server surface the driver needs (src/relay/server/types.ts boundary). */
export interface SansIoServer {
  handleDatagram(data: Uint8Array, local: LocalEndpoint, remote: TransportAddress, now: number): void;
  portOpened(token: number, ok: boolean, now: number): void;
  /** An allocation port the data plane lost (TurnServer deletes its allocation); optional for servers without ports. */
  portLost?(family: Family, port: number, now: number): void;
  /** A client's stream connection (local.connection) closed; optional for servers without streams. */
  connectionClosed?(local: LocalEndpoint, remote: TransportAddress, now: number): void;
  handleTimeout(now: number): void;
  nextDeadline(): number | undefined;
  pollOutput(): Output | undefined;
}

/** What a transport provides to carry the server's outputs. None of these may throw. */
export interface DatapathPort {
  send(from: LocalEndpoint, to: TransportAddress, data: Uint8Array): void;
  /** Bind an allocation port; the transport answers later with driver.portOpened(token, ok). */
  openPort(token: number, family: Family, port: number): void;
  closePort(family: Family, port: number): void;
  onEvent(ev: DataPlaneEvent): void;
}

export interface DriverOptions {
  /** The server's `now`: ms on a monotonic clock (default monotonicClock()); lifetimes and the timer run on it. */
  clock?: () => number;
  log?: Logger;
}

// setTimeout fires at once for delays above 2^31-1 ms; far deadlines are re-armed on wake-up.
const MAX_DELAY = 0x7fffffff;

export class Driver {
  private readonly clock: () => number;
  private timer: NodeJS.Timeout | undefined;
  private armedFor: number | undefined;
  private closed = false;

  constructor(
    private readonly server: SansIoServer,
    private readonly port: DatapathPort,
    private readonly opts: DriverOptions = {},
  ) {
    this.clock = opts.clock ?? monotonicClock();
  }

  /** A datagram arrived on the relay's `local` port from `remote`. */
  datagram(data: Uint8Array, local: LocalEndpoint, remote: TransportAddress): void {
    if (this.closed) return;
    // A Buffer's slice() is a view, a Uint8Array's is a copy; the codec relies on
    // copy semantics (it patches sliced headers), so hand it a plain view.
    const bytes = Buffer.isBuffer(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data;
    // Inline guard: no closure per datagram.
    try {
      this.server.handleDatagram(bytes, local, remote, this.clock());
    } catch (e) {
      this.opts.log?.error({ err: e, op: 'handleDatagram' }, 'server threw; input dropped');
    }
    this.drain();
  }

  /** The transport's answer to an open-port output. */
  portOpened(token: number, ok: boolean): void {
    if (this.closed) return;
    this.guard('portOpened', () => this.server.portOpened(token, ok, this.clock()));
    this.drain();
  }

  /** The data plane lost an allocation port (e.g. not reopened after a resync). */
  portLost(family: Family, port: number): void {
    if (this.closed) return;
    this.guard('portLost', () => this.server.portLost?.(family, port, this.clock()));
    this.drain();
  }

  /** A client's TCP/TLS connection closed: its allocation goes with it. */
  connectionClosed(local: LocalEndpoint, remote: TransportAddress): void {
    if (this.closed) return;
    this.guard('connectionClosed', () => this.server.connectionClosed?.(local, remote, this.clock()));
    this.drain();
  }

  /** Drain any outputs queued before the transport was ready (e.g. re-announcements). */
  kick(): void {
    if (!this.closed) this.drain();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private drain(): void {
    for (let out = this.server.pollOutput(); out !== undefined; out = this.server.pollOutput()) {
      switch (out.kind) {
        case 'send':
          this.port.send(out.from, out.to, out.data);
          break;
        case 'open-port':
          this.port.openPort(out.token, out.family, out.port);
          break;
        case 'close-port':
          this.port.closePort(out.family, out.port);
          break;
        case 'event':
          this.port.onEvent(out.event);
          break;
      }
    }
    this.rearm();
  }

  private rearm(): void {
    const deadline = this.server.nextDeadline();
    if (deadline === this.armedFor) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = deadline;
    if (deadline === undefined) return;
    const delay = Math.min(MAX_DELAY, Math.max(0, deadline - this.clock()));
    this.timer = setTimeout(() => this.onTimer(), delay);
    // The timer alone must not keep the process alive; sockets do.
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    this.armedFor = undefined;
    if (this.closed) return;
    this.guard('handleTimeout', () => this.server.handleTimeout(this.clock()));
    this.drain();
  }

  // The server is not supposed to throw; if it does, one datagram is lost, not the process.
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.opts.log?.error({ err: e, op: what }, 'server threw; input dropped');
    }
  }
}
