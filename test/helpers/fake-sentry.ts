// An in-test Sentry ingest: POST /api/<project>/envelope/ with NDJSON
// envelopes (envelope header, then item header / item payload pairs), as
// @sentry/node 11 sends them. Log items and error events are unpacked for
// assertions; bodies over 32 kB arrive gzipped.
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface SentryLog {
  level: string;
  body: string;
  /** Attribute values without their type tags. */
  attributes: Record<string, unknown>;
}

export interface Envelope {
  header: Record<string, unknown>;
  items: { header: Record<string, any>; payload: any }[];
}

export interface FakeSentry {
  /** DSN pointing at this server (project 42). */
  readonly dsn: string;
  readonly envelopes: Envelope[];
  readonly requests: { total: number };
  logs(): SentryLog[];
  events(): Record<string, any>[];
  /** Resolves when `pred` holds on the logs received so far (checked on every envelope). */
  waitForLogs(pred: (logs: SentryLog[]) => boolean): Promise<SentryLog[]>;
  waitForEvent(pred: (e: Record<string, any>) => boolean): Promise<Record<string, any>>;
  close(): Promise<void>;
}

export function parseEnvelope(raw: Buffer): Envelope {
  let pos = 0;
  const line = (): string | undefined => {
    if (pos >= raw.length) return undefined;
    let end = raw.indexOf(0x0a, pos);
    if (end < 0) end = raw.length;
    const s = raw.subarray(pos, end).toString('utf8');
    pos = end + 1;
    return s;
  };
  const header = JSON.parse(line() ?? '{}');
  const items: Envelope['items'] = [];
  for (;;) {
    const h = line();
    if (h === undefined || h === '') break;
    const itemHeader = JSON.parse(h);
    let body: string;
    if (typeof itemHeader.length === 'number') {
      body = raw.subarray(pos, pos + itemHeader.length).toString('utf8');
      pos += itemHeader.length + 1;
    } else {
      body = line() ?? '';
    }
    let payload: unknown = body;
    try {
      payload = JSON.parse(body);
    } catch {
      /* attachments stay text */
    }
    items.push({ header: itemHeader, payload });
  }
  return { header, items };
}

export async function startFakeSentry(): Promise<FakeSentry> {
  const envelopes: Envelope[] = [];
  const requests = { total: 0 };
  const listeners = new Set<() => void>();
  const sockets = new Set<Socket>();

  const server: Server = createServer((req, res) => {
    requests.total++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || !/^\/api\/\d+\/envelope\/$/.test(new URL(req.url ?? '/', 'http://x').pathname)) {
        res.writeHead(404).end();
        return;
      }
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      try {
        envelopes.push(parseEnvelope(body));
      } catch {
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      for (const l of [...listeners]) l();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  const logs = (): SentryLog[] =>
    envelopes.flatMap((e) =>
      e.items
        .filter((i) => i.header.type === 'log')
        .flatMap((i) =>
          (i.payload.items ?? []).map((l: any) => ({
            level: l.level,
            body: l.body,
            attributes: Object.fromEntries(Object.entries(l.attributes ?? {}).map(([k, v]: [string, any]) => [k, v?.value])),
          })),
        ),
    );
  const events = () => envelopes.flatMap((e) => e.items.filter((i) => i.header.type === 'event').map((i) => i.payload));

  const waitUntil = <T>(get: () => T | undefined): Promise<T> =>
    new Promise((resolve) => {
      const check = () => {
        const v = get();
        if (v !== undefined) {
          listeners.delete(check);
          resolve(v);
        }
      };
      listeners.add(check);
      check();
    });

  return {
    dsn: `http://publickey@127.0.0.1:${port}/42`,
    envelopes,
    requests,
    logs,
    events,
    waitForLogs: (pred) => waitUntil(() => {
      const l = logs();
      return pred(l) ? l : undefined;
    }),
    waitForEvent: (pred) => waitUntil(() => events().find(pred)),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
