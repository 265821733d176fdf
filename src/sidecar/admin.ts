// The admin HTTP server (loopback by default): liveness, readiness, status,
// Prometheus metrics and the runtime log filter. It must never take the
// sidecar down: every handler is guarded, request bodies are bounded, and
// malformed requests get a 4xx.
//
// Who may do what:
//   /healthz, /readyz, /metrics   open (probes and scrapers, by any name)
//   GET /status, GET /log         read-only, no token (no secrets in them),
//                                 but only under an expected Host header
//   anything state-changing       Host header as above AND `Authorization:
//   (POST /log, future ones)      Bearer <token>`, the token from the state
//                                 directory's admin-token file (0600, root's)
// The Host check stops DNS rebinding (a page whose name now points at
// 127.0.0.1 sends its own name as Host) and the token stops cross-site
// requests from a browser on the host (they cannot read the file).
import type { FastPathStats } from './fastpath.ts';
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { applyLogFilterText, formatLogFilter, type LogHub } from '../shared/logger.ts';
import { readOrCreateSecret } from '../shared/secret-file.ts';
import type { SecurityEvents, SecurityRefusal, SecurityRule } from './security.ts';
import type { LinkStats } from '../link/index.ts';
import type { MapStats } from '../telemetry/index.ts';
import type { EbpfState } from './ebpf.ts';
import type { SocketStats } from './sockets.ts';
import type { RelayBridgeStats } from './sockets/relay-bridge.ts';

export interface Readiness {
  ready: boolean;
  /** Why not ready (e.g. "relay not connected", "eBPF required but not loaded"). */
  reasons: string[];
  /** Which datapath relays: 'xdp' or 'userspace'. */
  datapath?: string;
}

export interface AdminOptions {
  host: string;
  port: number;
  logHub: LogHub;
  /** Serves GET /metrics (Prometheus text); 404 when absent. */
  metrics?: { prometheus(req: IncomingMessage, res: ServerResponse): void };
  ready: () => Readiness | Promise<Readiness>;
  /** The GET /status document, built at each request (the sidecar's: statusDocument). */
  status: () => unknown;
  /** Largest accepted request body (default 4 KiB). */
  maxBodyBytes?: number;
  /** The bearer token state-changing requests must carry (ensureAdminToken); without one they are all refused. */
  token?: string;
  /** Where refusals are reported (logged on `log` otherwise). */
  security?: SecurityEvents;
  log?: Logger;
  /** POST /drain: starts a graceful drain (src/sidecar/drain.ts); 404 when absent. */
  drain?: () => void;
}

/** The admin token's file in the state directory. */
export const ADMIN_TOKEN_FILE = 'admin-token';

/** The admin token in `<stateDir>/admin-token` (0600), created at start if missing. */
export function ensureAdminToken(stateDir: string): { token: string; file: string; created: boolean } {
  const file = join(stateDir, ADMIN_TOKEN_FILE);
  const { secret, created } = readOrCreateSecret(file, 32);
  return { token: secret, file, created };
}

/** Endpoints anyone who reaches the port may call, under any Host (probes, scrapers). */
const OPEN_PATHS = new Set(['/healthz', '/readyz', '/metrics']);
const isStateChanging = (method: string | undefined) => method !== 'GET' && method !== 'HEAD';

/** The host part of a Host header (`[::1]:9469` -> `[::1]`), lower case. */
function hostOf(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.indexOf(':');
  return colon === h.lastIndexOf(':') && colon >= 0 ? h.slice(0, colon) : h;
}

/**
 * Host headers the protected endpoints accept: localhost, 127.0.0.1, [::1]
 * and the configured admin address; when that is a wildcard (every address
 * answers), any IP literal too, since DNS rebinding needs a name.
 */
export function hostAllowed(header: string | undefined, adminHost: string): boolean {
  if (!header) return false;
  const host = hostOf(header);
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  if (host === 'localhost' || bare === '127.0.0.1' || bare === '::1' || bare === adminHost.toLowerCase()) return true;
  return (adminHost === '0.0.0.0' || adminHost === '::') && isIP(bare) !== 0;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Whether an Authorization header carries `token` (compared in constant time). */
export function bearerMatches(header: string | undefined, token: string | undefined): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return token !== undefined && m !== null && timingSafeEqual(digest(m[1]!), digest(token));
}

export interface Admin {
  readonly server: Server;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The sidecar's state at one moment, as its parts report it. */
export interface SidecarStatus {
  version: string;
  instanceId: string;
  ebpf: EbpfState;
  /** Binding maps by name (userspace: none). */
  maps: MapStats;
  /** The XDP program's per-CPU counters, summed; null in userspace. */
  kernel: { paths: readonly { path: string; packets: bigint; bytes: bigint }[]; reasons: Record<string, bigint> } | null;
  sockets: SocketStats;
  relay: RelayBridgeStats;
  /** The relay's own counters as it last reported them; null while no relay is connected. */
  relayCounters: unknown;
  /** The connected relay's link, else null. */
  link: LinkStats | null;
  flags: Record<string, boolean>;
  /** Security refusals so far, by rule. */
  security: Partial<Record<SecurityRule, number>>;
  /** The sidecar's userspace fast path (bound channels the kernel did not relay), cumulative. */
  fastPath?: FastPathStats;
}

/**
 * The GET /status document. Its field names are read by operators and the
 * integration tests: add fields, never rename them.
 */
export function statusDocument(s: SidecarStatus) {
  return {
    version: s.version,
    instanceId: s.instanceId,
    mode: s.ebpf.datapath,
    ebpf: s.ebpf,
    interface: s.ebpf.interface ?? null,
    maps: s.maps,
    kernel: s.kernel,
    sockets: s.sockets,
    relay: s.relay,
    relayCounters: s.relayCounters,
    link: s.link,
    flags: s.flags,
    security: s.security,
    fastPath: s.fastPath ?? null,
  };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new HttpError(413, `body larger than ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, `body larger than ${limit} bytes`));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const ROUTES: Record<string, string[]> = {
  '/healthz': ['GET', 'HEAD'],
  '/readyz': ['GET', 'HEAD'],
  '/status': ['GET'],
  '/metrics': ['GET'],
  '/log': ['GET', 'POST'],
  '/drain': ['POST'],
};

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
}

const json = (res: ServerResponse, status: number, value: unknown) =>
  send(res, status, JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n', 'application/json');

export async function startAdmin(opts: AdminOptions): Promise<Admin> {
  const log = opts.log ?? opts.logHub.get('admin');
  const maxBody = opts.maxBodyBytes ?? 4096;

  const refuse = (req: IncomingMessage, r: SecurityRefusal, status: number): never => {
    const fields = { method: req.method, path: req.url?.slice(0, 200), remote: req.socket.remoteAddress };
    if (opts.security) opts.security.refuse(r, fields, 'warn');
    else log.warn({ ...fields, event: 'security', rule: r.rule, detail: r.detail }, `security: ${r.detail}`);
    throw new HttpError(status, r.detail);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://admin').pathname;
    const methods = ROUTES[path];
    if (!methods || (path === '/metrics' && !opts.metrics) || (path === '/drain' && !opts.drain)) throw new HttpError(404, 'not found');
    if (!methods.includes(req.method ?? '')) {
      res.setHeader('allow', methods.join(', '));
      throw new HttpError(405, 'method not allowed');
    }
    if (!OPEN_PATHS.has(path) && !hostAllowed(req.headers.host, opts.host)) {
      refuse(req, { rule: 'admin-host', detail: `admin request for host ${JSON.stringify((req.headers.host ?? '').slice(0, 100))} refused` }, 403);
    }
    if (isStateChanging(req.method) && !bearerMatches(req.headers.authorization, opts.token)) {
      res.setHeader('www-authenticate', 'Bearer');
      refuse(req, { rule: 'admin-token', detail: `${req.method} ${path} without the admin token (Authorization: Bearer, from the state directory's ${ADMIN_TOKEN_FILE})` }, 401);
    }
    switch (path) {
      case '/healthz':
        return send(res, 200, 'ok\n');
      case '/readyz': {
        let r: Readiness;
        try {
          r = await opts.ready();
        } catch (e) {
          r = { ready: false, reasons: [`readiness check failed: ${(e as Error).message}`] };
        }
        return json(res, r.ready ? 200 : 503, r);
      }
      case '/status':
        return json(res, 200, await opts.status());
      case '/metrics':
        return opts.metrics!.prometheus(req, res);
      case '/drain':
        opts.drain!();
        return json(res, 202, { draining: true });
      case '/log': {
        if (req.method === 'GET') return send(res, 200, formatLogFilter(opts.logHub.filter()) + '\n');
        const body = await readBody(req, maxBody);
        let text = body.trim();
        if ((req.headers['content-type'] ?? '').includes('json')) {
          try {
            const v = JSON.parse(body) as unknown;
            text = typeof v === 'string' ? v : String((v as { filter?: unknown })?.filter ?? '');
          } catch {
            throw new HttpError(400, 'body is not JSON');
          }
        }
        const before = opts.logHub.filter();
        let next;
        try {
          next = applyLogFilterText(before, text);
        } catch (e) {
          throw new HttpError(400, `bad log filter: ${(e as Error).message}`);
        }
        opts.logHub.setFilter(next);
        log.info({ from: formatLogFilter(before), to: formatLogFilter(next) }, 'log filter changed');
        return send(res, 200, formatLogFilter(next) + '\n');
      }
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) return send(res, err.status, err.message + '\n');
      log.warn({ err, url: req.url }, 'admin request failed');
      send(res, 500, 'internal error\n');
    });
  });
  // Slow or malformed clients: bounded time, a 400 on a bad request line, never a throw.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.maxHeadersCount = 50;
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.warn({ err }, 'admin server error'));
  const addr = server.address() as AddressInfo;
  log.info({ host: addr.address, port: addr.port }, 'admin HTTP listening');
  return {
    server,
    host: addr.address,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
