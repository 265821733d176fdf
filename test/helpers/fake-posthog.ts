// An in-test PostHog: node:http speaking the two flag endpoints posthog-node
// 5.70 uses: POST /flags/?v=2 (remote evaluation, v2 response format) and
// GET /flags/definitions (local evaluation with a secret key). Behaviour is
// switchable at runtime; every request is counted.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Mode = 'ok' | 'down' | 'slow' | 'garbage' | 'error';

export interface FlagSpec {
  enabled: boolean;
  /** Payload as PostHog stores it: any JSON value (sent JSON-encoded, as PostHog does). */
  payload?: unknown;
  /** Release condition (local evaluation only): PostHog property filters, e.g. [{ key: 'hostname', value: ['h1'], operator: 'exact', type: 'person' }]. */
  properties?: unknown[];
}

export interface FakePostHog {
  readonly host: string;
  readonly requests: { total: number; flags: number; definitions: number; other: number };
  /** Bodies of POST /flags requests, parsed. */
  readonly flagBodies: Record<string, unknown>[];
  setFlag(key: string, spec: FlagSpec): void;
  removeFlag(key: string): void;
  /** ok | down (connection refused) | slow (never answers within slowMs) | garbage (200, invalid JSON) | error (500). */
  setMode(mode: Mode): Promise<void>;
  close(): Promise<void>;
}

export async function startFakePostHog(opts: { slowMs?: number; port?: number } = {}): Promise<FakePostHog> {
  const slowMs = opts.slowMs ?? 30_000;
  const flags = new Map<string, FlagSpec>();
  const requests = { total: 0, flags: 0, definitions: 0, other: 0 };
  const flagBodies: Record<string, unknown>[] = [];
  let mode: Mode = 'ok';
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const flagsV2 = () => ({
    flags: Object.fromEntries(
      [...flags].map(([key, f], i) => [
        key,
        {
          key,
          enabled: f.enabled,
          variant: null,
          reason: { code: f.enabled ? 'condition_match' : 'no_condition_match', description: 'fake', condition_index: 0 },
          metadata: { id: i + 1, version: 1, payload: f.payload === undefined ? null : JSON.stringify(f.payload) },
        },
      ]),
    ),
    errorsWhileComputingFlags: false,
    requestId: `req-${requests.flags}`,
  });

  const definitions = () => ({
    flags: [...flags].map(([key, f], i) => ({
      id: i + 1,
      key,
      active: f.enabled,
      ensure_experience_continuity: false,
      filters: {
        groups: [{ properties: f.properties ?? [], rollout_percentage: 100 }],
        payloads: f.payload === undefined ? {} : { true: JSON.stringify(f.payload) },
      },
    })),
    group_type_mapping: {},
    cohorts: {},
  });

  const answer = (res: ServerResponse, body: unknown) => {
    if (mode === 'garbage') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"flags": {not json');
      return;
    }
    if (mode === 'error') {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error');
      return;
    }
    const send = () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (mode === 'slow') {
      const t = setTimeout(() => {
        timers.delete(t);
        if (!res.destroyed) send();
      }, slowMs);
      timers.add(t);
      return;
    }
    send();
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    requests.total++;
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST' && url.pathname === '/flags/') {
        requests.flags++;
        try {
          flagBodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          flagBodies.push({});
        }
        answer(res, flagsV2());
      } else if (req.method === 'GET' && url.pathname === '/flags/definitions') {
        requests.definitions++;
        if (!/^Bearer .+/.test(req.headers.authorization ?? '')) {
          res.writeHead(401).end('{"detail":"no key"}');
          return;
        }
        answer(res, definitions());
      } else {
        // /batch/ and anything else: accepted and counted, never expected.
        requests.other++;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      }
    });
  };

  let server: Server = createServer(handle);
  const track = (s: Server) => s.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
  track(server);
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  const stop = async () => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };

  return {
    host: `http://127.0.0.1:${port}`,
    requests,
    flagBodies,
    setFlag: (key, spec) => void flags.set(key, spec),
    removeFlag: (key) => void flags.delete(key),
    async setMode(next) {
      if (next === mode) return;
      if (next === 'down') {
        mode = next;
        await stop();
        return;
      }
      if (mode === 'down') {
        // Re-listen on the same port so clients configured with it reconnect.
        server = createServer(handle);
        track(server);
        await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
      }
      mode = next;
    },
    async close() {
      if (mode !== 'down') await stop();
    },
  };
}
