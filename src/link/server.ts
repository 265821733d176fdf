// The sidecar's end of the link: listens on a Unix socket (mode 0660 by
// default, so only the owner and the relay's group may connect), checks who
// connected (the owner's `checkPeer`, e.g. the peer's uid by SO_PEERCRED:
// file modes alone let any member of the group in), accepts one relay at a
// time, and hands the open connection to its owner.
import { EventEmitter } from 'node:events';
import { chmod, chown, lstat, mkdir, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { LinkConnection, type Hello, type LinkCloseInfo, type LinkConnectionOptions } from './connection.ts';
import { encodeFrame } from './protocol.ts';

export interface LinkServerOptions extends Omit<LinkConnectionOptions, 'role'> {
  path: string;
  /** File mode of the socket; default 0o660. */
  mode?: number;
  /** Optional owner for the socket file (e.g. the relay's group). */
  uid?: number;
  gid?: number;
  /**
   * Decides from the connected socket whether its process may be the relay:
   * null admits it to the handshake, a reason refuses it (REJECT forbidden,
   * then 'refused'). Called once per connection, before any frame is read.
   */
  checkPeer?: (socket: Socket) => string | null;
}

type Events = {
  /** A relay completed the handshake. */
  open: [conn: LinkConnection, peer: Hello];
  /** The current relay's connection ended (after an 'open'). */
  close: [conn: LinkConnection, info: LinkCloseInfo];
  /** checkPeer refused a connection. */
  refused: [reason: string];
};

export class LinkServerError extends Error {
  constructor(readonly code: 'LINK_IN_USE' | 'LINK_LISTEN', message: string) {
    super(message);
  }
}

export class LinkServer extends EventEmitter<Events> {
  /** The relay connection that completed the handshake, if any. */
  current: LinkConnection | null = null;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly log: Logger;

  constructor(private readonly opts: LinkServerOptions) {
    super();
    this.log = opts.logger;
  }

  get path(): string {
    return this.opts.path;
  }

  /**
   * Listens on the path. A socket file left by a crashed sidecar is removed;
   * a live one fails with "another sidecar is listening on PATH".
   */
  async listen(): Promise<void> {
    const { path } = this.opts;
    await mkdir(dirname(path), { recursive: true });
    const server = createServer((s) => this.accept(s));
    server.on('error', (e) => this.log.error({ err: e.message }, 'link server error'));
    try {
      await listenOn(server, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw new LinkServerError('LINK_LISTEN', `cannot listen on ${path}: ${(e as Error).message}`);
      const isSocket = await lstat(path).then((st) => st.isSocket(), () => false);
      if (!isSocket) throw new LinkServerError('LINK_LISTEN', `cannot listen on ${path}: a file that is not a socket is in the way`);
      const probe = await probePath(path);
      if (probe === 'live') throw new LinkServerError('LINK_IN_USE', `another sidecar is listening on ${path}`);
      // Only a socket nobody accepts on is stale; never unlink something else.
      if (probe !== 'ECONNREFUSED') throw new LinkServerError('LINK_LISTEN', `cannot listen on ${path}: it exists and connecting to it failed with ${probe}`);
      this.log.warn({ path }, 'removing stale link socket left by an earlier run');
      await unlink(path).catch(() => {});
      await listenOn(server, path);
    }
    await chmod(path, this.opts.mode ?? 0o660);
    if (this.opts.uid !== undefined || this.opts.gid !== undefined) await chown(path, this.opts.uid ?? -1, this.opts.gid ?? -1);
    this.server = server;
    this.log.info({ path, mode: (this.opts.mode ?? 0o660).toString(8) }, 'link listening');
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    const refusal = this.opts.checkPeer?.(socket) ?? null;
    if (refusal !== null) return this.refuse(socket, refusal);
    const conn = new LinkConnection(socket, { ...this.opts, role: 'sidecar', logger: this.log });
    conn.admit = (peer) =>
      this.current && this.current.state === 'open'
        ? { code: 'busy', reason: `another relay (pid ${this.current.peer?.pid}) is already connected; refusing pid ${peer.pid}` }
        : null;
    conn.on('open', (peer) => {
      this.current = conn;
      this.emit('open', conn, peer);
    });
    conn.on('close', (info) => {
      if (this.current !== conn) return;
      this.current = null;
      this.emit('close', conn, info);
    });
  }

  /** REJECT forbidden before our HELLO: a refused process learns nothing but the refusal. */
  private refuse(socket: Socket, reason: string): void {
    socket.on('error', () => {});
    socket.end(encodeFrame({ kind: 'reject', code: 'forbidden', reason }));
    setTimeout(() => socket.destroy(), 1000).unref();
    this.emit('refused', reason);
  }

  /** Stops listening, closes connections and removes the socket file. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.current?.close('sidecar shutting down');
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
    await unlink(this.opts.path).catch(() => {});
  }
}

function listenOn(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onErr = (e: Error) => reject(e);
    server.once('error', onErr);
    server.listen(path, () => {
      server.off('error', onErr);
      resolve();
    });
  });
}

/** 'live' when something accepts connections on the path, else the connect error code. */
function probePath(path: string): Promise<string> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve('live');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}
