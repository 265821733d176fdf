// The relay's end of the link: connects to the sidecar's socket and keeps
// reconnecting with capped, jittered exponential backoff while it is away.
// After a version or role mismatch it waits the
// long `rejectedRetryMs` instead, so a mismatched pair logs one clear error
// per interval rather than spinning. While it waits it also watches the
// socket's directory: a restarted sidecar's new socket is tried at once, not
// at the next backoff step (issue 12: the userspace path back within a second).
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { createConnection } from 'node:net';
import type { Logger } from 'pino';
import { LinkConnection, type Hello, type LinkCloseInfo, type LinkConnectionOptions } from './connection.ts';

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  /** 0..1: each delay is reduced by up to this fraction at random. */
  jitter?: number;
  /** Delay after the peer rejected the handshake. */
  rejectedRetryMs?: number;
}

export interface LinkClientOptions extends Omit<LinkConnectionOptions, 'role'> {
  path: string;
  backoff?: BackoffOptions;
}

type Events = {
  open: [conn: LinkConnection, peer: Hello];
  /** An open connection ended, or an attempt failed (then `opened` is false). */
  close: [info: LinkCloseInfo & { opened: boolean }];
};

/** Delay before reconnect attempt `attempt` (0-based). Pure, for tests. */
export function backoffDelay(attempt: number, b: BackoffOptions = {}, rand = Math.random): number {
  const initial = b.initialMs ?? 100;
  const max = b.maxMs ?? 5000;
  const jitter = b.jitter ?? 0.2;
  const base = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - jitter * rand()));
}

export class LinkClient extends EventEmitter<Events> {
  connection: LinkConnection | null = null;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private watcher: FSWatcher | null = null;
  private stopped = true;
  private readonly log: Logger;
  attempts = 0;

  constructor(private readonly opts: LinkClientOptions) {
    super();
    this.log = opts.logger;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  /** Closes the link and stops reconnecting. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.unwatch();
    this.connection?.close('relay shutting down');
    this.connection = null;
  }

  get isOpen(): boolean {
    return this.connection?.state === 'open';
  }

  private connect(): void {
    if (this.stopped) return;
    this.attempts++;
    const socket = createConnection(this.opts.path);
    let opened = false;
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      const conn = new LinkConnection(socket, { ...this.opts, role: 'relay', logger: this.log });
      this.connection = conn;
      conn.on('open', (peer) => {
        opened = true;
        this.attempt = 0;
        this.emit('open', conn, peer);
      });
      conn.on('close', (info) => {
        if (this.connection === conn) this.connection = null;
        this.emit('close', { ...info, opened });
        // A mismatched pair (or a relay running as the wrong user) will not fix itself soon: retry
        // slowly. 'busy' (an old relay still on the link, e.g. during a restart) clears quickly: normal backoff.
        const mismatch = info.rejected === 'version' || info.rejected === 'role' || info.rejected === 'forbidden';
        this.retry(mismatch ? this.opts.backoff?.rejectedRetryMs ?? 30_000 : undefined);
      });
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      if (connected) return; // the connection reports its own close
      const reason = `cannot connect to the sidecar at ${this.opts.path}: ${e.code ?? e.message}`;
      // The first failure is worth a warning; repeats while the sidecar is away are debug.
      if (this.attempt === 0) this.log.warn({ path: this.opts.path, code: e.code }, reason);
      else this.log.debug({ code: e.code, attempt: this.attempt }, reason);
      socket.destroy();
      this.emit('close', { reason, byPeer: false, opened: false });
      this.retry();
    });
  }

  private retry(fixedMs?: number): void {
    if (this.stopped || this.timer) return;
    const delay = fixedMs ?? backoffDelay(this.attempt++, this.opts.backoff);
    const now = () => {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.unwatch();
      this.connect();
    };
    this.timer = setTimeout(now, delay);
    // Not after a rejection: that peer is up and would only reject again.
    if (fixedMs === undefined) this.watchSocket(now);
  }

  /** Calls `now` when the socket file is (re)created; best effort (no inotify: the backoff alone). */
  private watchSocket(now: () => void): void {
    if (this.watcher) return;
    const name = basename(this.opts.path);
    try {
      this.watcher = watch(dirname(this.opts.path), { persistent: false }, (_event, file) => {
        if (file === name) now();
      });
      this.watcher.on('error', () => this.unwatch());
    } catch {
      this.watcher = null;
    }
  }

  private unwatch(): void {
    this.watcher?.close();
    this.watcher = null;
  }
}
