// One established link socket, either side: handshake, frame I/O through the
// bounded writer, keepalive, counters. Owners (LinkServer, LinkClient) decide
// what to do with frames and when to reconnect; nothing here throws on peer
// input: a bad frame closes the connection with a logged reason.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { PROTOCOL_VERSION, type Frame, type RejectReason, type RelayedAddresses, type Role } from './protocol.ts';
import { FrameReader } from './reader.ts';
import { FrameWriter, type WriterStats } from './writer.ts';

export interface Hello {
  version: number;
  role: Role;
  pid: number;
  software: string;
  /** The sidecar's relayed addresses (in its HELLO; a relay's HELLO has none). */
  relayAddresses?: RelayedAddresses;
}

export interface LinkConnectionOptions {
  role: Role;
  /** This side's software version, sent in HELLO. */
  software: string;
  /** The sidecar's relayed addresses, sent in its HELLO. */
  relayAddresses?: RelayedAddresses | undefined;
  logger: Logger;
  /** Protocol version to announce (tests use another to provoke a mismatch). */
  version?: number;
  handshakeTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  keepaliveTimeoutMs?: number;
  maxQueueBytes?: number;
  controlReserveBytes?: number;
}

/** Why a connection ended. */
export interface LinkCloseInfo {
  reason: string;
  /** Set when either side rejected the handshake (then do not reconnect quickly). */
  rejected?: RejectReason;
  /** True when the peer closed or rejected, false when this side did. */
  byPeer: boolean;
}

export interface LinkStats extends WriterStats {
  framesIn: number;
  bytesIn: number;
  readerBufferedBytes: number;
}

type Events = {
  open: [peer: Hello];
  frame: [frame: Frame];
  close: [info: LinkCloseInfo];
};

export class LinkConnection extends EventEmitter<Events> {
  state: 'handshake' | 'open' | 'closed' = 'handshake';
  peer: Hello | null = null;
  closeInfo: LinkCloseInfo | null = null;
  /** Server side: may refuse a peer whose hello was fine (e.g. a second relay). */
  admit: ((peer: Hello) => { code: RejectReason; reason: string } | null) | null = null;
  private readonly reader: FrameReader;
  private readonly writer: FrameWriter;
  private readonly log: Logger;
  private readonly version: number;
  private framesIn = 0;
  private bytesIn = 0;
  private lastRx = Date.now();
  private nonce = 0;
  private timers: NodeJS.Timeout[] = [];

  constructor(readonly socket: Socket, private readonly opts: LinkConnectionOptions) {
    super();
    this.log = opts.logger;
    this.version = opts.version ?? PROTOCOL_VERSION;
    this.writer = new FrameWriter(socket, {
      maxQueueBytes: opts.maxQueueBytes,
      controlReserveBytes: opts.controlReserveBytes,
      onOverflow: (reason) => setImmediate(() => this.close(reason)),
    });
    this.reader = new FrameReader({
      onFrame: (f, n) => this.onFrame(f, n),
      onError: (reason) => this.protocolError(reason),
    });
    socket.on('data', (chunk: Buffer) => {
      this.lastRx = Date.now();
      this.reader.push(chunk);
    });
    socket.on('drain', () => this.writer.drained());
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (this.state !== 'closed') this.log.debug({ err: e.message, code: e.code }, 'link socket error');
    });
    socket.on('close', () => this.finish({ reason: 'peer closed the link', byPeer: true }));
    const hs = setTimeout(() => {
      if (this.state === 'handshake') this.close(`no handshake within ${this.opts.handshakeTimeoutMs ?? 5000} ms`);
    }, opts.handshakeTimeoutMs ?? 5000);
    hs.unref();
    this.timers.push(hs);
    this.writer.write({
      kind: 'hello',
      version: this.version,
      role: opts.role,
      pid: process.pid,
      software: opts.software,
      ...(opts.relayAddresses ? { relayAddresses: opts.relayAddresses } : {}),
    });
  }

  /** Queues a frame for the peer; false when it was dropped or the link is not open. */
  send(frame: Frame): boolean {
    if (this.state !== 'open') return false;
    return this.writer.write(frame);
  }

  /** Hands queued frames to the socket now instead of at the end of the turn. */
  flush(): void {
    this.writer.flush();
  }

  /** True while the socket has refused more data and frames queue here. */
  get isBackpressured(): boolean {
    return this.writer.isBlocked;
  }

  /** Resolves when the socket drains (or the link closes); at once when not backpressured. */
  waitWritable(): Promise<void> {
    if (!this.writer.isBlocked || this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.on('close', done);
    });
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    this.finish({ reason, byPeer: false });
    this.socket.destroy();
  }

  stats(): LinkStats {
    return { ...this.writer.stats(), framesIn: this.framesIn, bytesIn: this.bytesIn, readerBufferedBytes: this.reader.buffered };
  }

  private onFrame(f: Frame, wireBytes: number): void {
    this.framesIn++;
    this.bytesIn += wireBytes;
    if (this.state === 'closed') return;
    if (this.state === 'handshake') {
      if (f.kind === 'hello') return this.onHello(f);
      if (f.kind === 'reject') return this.onReject(f.code, f.reason);
      return this.protocolError(`${f.kind} frame before the handshake`);
    }
    switch (f.kind) {
      case 'ping':
        this.writer.write({ kind: 'pong', nonce: f.nonce });
        return;
      case 'pong':
        return;
      case 'hello':
        return this.protocolError('second hello');
      case 'reject':
        return this.onReject(f.code, f.reason);
      default:
        this.emit('frame', f);
    }
  }

  private onHello({ version, role, pid, software, relayAddresses }: Hello): void {
    const h: Hello = { version, role, pid, software, ...(relayAddresses ? { relayAddresses } : {}) };
    const me = this.opts.role;
    const want: Role = me === 'sidecar' ? 'relay' : 'sidecar';
    if (h.version !== this.version) {
      return this.reject(
        'version',
        `link protocol version mismatch: this ${me} (${this.opts.software}) speaks version ${this.version}, ` +
          `the ${h.role} (${h.software}, pid ${h.pid}) speaks version ${h.version}; upgrade both to the same release`,
      );
    }
    if (h.role !== want) return this.reject('role', `expected a ${want} on the link but a ${h.role} (pid ${h.pid}) connected`);
    const refused = this.admit?.(h);
    if (refused) return this.reject(refused.code, refused.reason);
    this.peer = h;
    this.state = 'open';
    this.startKeepalive();
    this.log.info({ peer: h.role, peerPid: h.pid, peerSoftware: h.software, version: h.version, ...(h.relayAddresses ? { relayAddresses: h.relayAddresses } : {}) }, 'link open');
    this.emit('open', h);
  }

  private reject(code: RejectReason, reason: string): void {
    this.log.error({ code }, reason);
    // Bypass `send` (not open yet); REJECT is control, so it is never dropped.
    this.writer.write({ kind: 'reject', code, reason });
    this.writer.flush();
    this.finish({ reason, rejected: code, byPeer: false });
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private onReject(code: RejectReason, reason: string): void {
    this.log.error({ code }, `link rejected by the peer: ${reason}`);
    this.finish({ reason, rejected: code, byPeer: true });
    this.socket.destroy();
  }

  private protocolError(reason: string): void {
    if (this.state === 'closed') return;
    this.log.error({ reason }, 'link protocol error, closing');
    this.close(`protocol error: ${reason}`);
  }

  private startKeepalive(): void {
    const interval = this.opts.keepaliveIntervalMs ?? 5000;
    const timeout = this.opts.keepaliveTimeoutMs ?? 15_000;
    const t = setInterval(() => {
      if (Date.now() - this.lastRx > timeout) {
        this.log.warn({ timeoutMs: timeout }, 'link keepalive timeout');
        this.close(`keepalive timeout: nothing heard for ${timeout} ms`);
        return;
      }
      this.writer.write({ kind: 'ping', nonce: (this.nonce = (this.nonce + 1) >>> 0) });
    }, interval);
    t.unref();
    this.timers.push(t);
  }

  private finish(info: LinkCloseInfo): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeInfo = info;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.reader.stop();
    // A pending REJECT must still leave: the writer is closed only after flush.
    this.writer.flush();
    this.writer.close();
    if (!info.rejected) this.log.info({ reason: info.reason, byPeer: info.byPeer }, 'link closed');
    this.emit('close', info);
  }
}
