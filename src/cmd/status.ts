#!/usr/bin/env node
// turnpike status: the sidecar's GET /status as a terminal view, for people on
// the host. The admin address comes from the same configuration as the
// sidecar's (file, environment, flags: --config, TURNPIKE_ADMIN, --admin).
//   turnpike status [--json] [--watch] [--interval SECONDS] [config flags]
// /status holds cumulative counters only, so the relayed rates are the
// difference between two reads `--interval` apart (one second by default):
// a single view takes that long, and --watch shows the rates since the last
// refresh. --json prints the /status document with a `rates` field added (one
// line per refresh with --watch).
import { realpathSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { EntryFlags } from '../config/args.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { isWildcard } from '../shared/endpoint.ts';

const USAGE = `usage: turnpike status [--json] [--watch] [--interval SECONDS] [--admin HOST:PORT] [--config PATH]
  Shows the sidecar's GET /status: datapath, relay link, allocations, kernel
  maps, relayed packets per second by datapath, drops and refusals by reason,
  security refusals by rule.
  --json      the /status document with a "rates" field (one line per refresh with --watch)
  --watch     refresh every interval until interrupted
  --interval  seconds between the two reads a rate needs, and between refreshes (default 1)
  The admin address is the sidecar's: TURNPIKE_ADMIN, --admin or the config file (default 127.0.0.1:9469).
`;

const intervalReason = 'must be a number of seconds from 0.1 to 3600';
const STATUS_FLAGS = {
  json: { type: 'boolean' },
  watch: { type: 'boolean' },
  interval: { type: 'string', schema: z.coerce.number({ error: intervalReason }).min(0.1, intervalReason).max(3600, intervalReason).default(1) },
  help: { type: 'boolean' },
} as const satisfies EntryFlags;

/** The parts of GET /status read here (bigints arrive as decimal strings). */
export interface StatusDoc {
  version?: string;
  instanceId?: string;
  mode?: string;
  interface?: string | null;
  ebpf?: { requested?: string; attachMode?: string; reason?: string; relayV4?: string; relayV6?: string };
  maps?: Record<string, { entries: number; capacity: number; full?: boolean; refusedWrites?: number }>;
  kernel?: { paths: { path: string; packets: number | string; bytes: number | string }[]; reasons: Record<string, number | string> } | null;
  sockets?: { allocationPorts?: number; errors?: Record<string, number>; kernelDropped?: Record<string, number> };
  relay?: { relayConnected?: boolean; resyncs?: number; droppedNoRelay?: number; droppedBackpressure?: number };
  relayCounters?: {
    allocations?: number;
    permissions?: number;
    channels?: number;
    reservations?: number;
    relayed?: { toPeer: { packets: number; bytes: number }; toClient: { packets: number; bytes: number } };
    dropped?: Record<string, number>;
    refused?: Record<string, number>;
  } | null;
  link?: { queueFrames?: number } | null;
  flags?: Record<string, boolean>;
  /** Security refusals by rule (link peer, relay guard, admin token and host), where the sidecar reports them. */
  security?: Record<string, number>;
}

type Flow = { packets: number; bytes: number };
const DATAPATHS = ['xdp', 'userspace'] as const;
type Datapath = (typeof DATAPATHS)[number];

/** What a rate is computed from: cumulative counters at one moment. */
export interface Sample {
  readonly atMs: number;
  readonly relayed: Record<Datapath, Flow>;
  /** Drop and refusal counters by `source:reason` (kernel:bounds, relay:no-permission, socket:listen, refused:allocations-per-user, security:admin-token). */
  readonly events: Record<string, number>;
}

export interface Rates {
  readonly seconds: number;
  readonly relayed: Record<Datapath, { packetsPerSecond: number; bitsPerSecond: number }>;
  /** Growth of each drop and refusal counter over the interval (only those that grew). */
  readonly events: Record<string, number>;
}

const KERNEL_DROP_PREFIX = 'drop_';

export function sampleOf(doc: StatusDoc, atMs: number): Sample {
  const xdp: Flow = { packets: 0, bytes: 0 };
  for (const p of doc.kernel?.paths ?? []) {
    xdp.packets += Number(p.packets);
    xdp.bytes += Number(p.bytes);
  }
  const r = doc.relayCounters?.relayed;
  const userspace: Flow = r ? { packets: r.toPeer.packets + r.toClient.packets, bytes: r.toPeer.bytes + r.toClient.bytes } : { packets: 0, bytes: 0 };
  const events: Record<string, number> = {};
  for (const [name, v] of Object.entries(doc.kernel?.reasons ?? {})) {
    if (name.startsWith(KERNEL_DROP_PREFIX)) events[`kernel:${name.slice(KERNEL_DROP_PREFIX.length)}`] = Number(v);
  }
  for (const [name, v] of Object.entries(doc.relayCounters?.dropped ?? {})) events[`relay:${name}`] = v;
  for (const [name, v] of Object.entries(doc.sockets?.kernelDropped ?? {})) events[`socket:${name}`] = v;
  for (const [name, v] of Object.entries(doc.relayCounters?.refused ?? {})) events[`refused:${name}`] = v;
  for (const [name, v] of Object.entries(doc.security ?? {})) events[`security:${name}`] = v;
  return { atMs, relayed: { xdp, userspace }, events };
}

/** Growth from a to b; a counter that went down was restarted (relay restart, program reload) and counts from zero. */
const growth = (a: number, b: number) => (b >= a ? b - a : b);

export function ratesBetween(a: Sample, b: Sample): Rates {
  const seconds = Math.max(1e-3, (b.atMs - a.atMs) / 1000);
  const per = (d: Datapath) => ({
    packetsPerSecond: growth(a.relayed[d].packets, b.relayed[d].packets) / seconds,
    bitsPerSecond: (8 * growth(a.relayed[d].bytes, b.relayed[d].bytes)) / seconds,
  });
  const events: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.events)) {
    const g = growth(a.events[k] ?? 0, v);
    if (g > 0) events[k] = g;
  }
  return { seconds, relayed: { xdp: per('xdp'), userspace: per('userspace') }, events };
}

// ---- rendering ---------------------------------------------------------------

const count = (n: number) => Math.round(n).toLocaleString('en-US');
function bits(bps: number): string {
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
  let v = bps;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
const percent = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-');

/** `name total (+growth)` for every non-zero counter of a source, largest first; `none` without any. */
function eventList(sample: Sample, rates: Rates | undefined, source: string): string {
  const items = Object.entries(sample.events)
    .filter(([k, v]) => k.startsWith(`${source}:`) && v > 0)
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${k.slice(source.length + 1)} ${count(v)}${rates?.events[k] ? ` (+${count(rates.events[k]!)})` : ''}`);
  return items.length > 0 ? items.join(', ') : 'none';
}

export function renderStatus(doc: StatusDoc, sample: Sample, rates: Rates | undefined, admin: string): string {
  const row = (label: string, text: string) => `${label.padEnd(12)} ${text}`;
  const lines: string[] = [];
  lines.push(`turnpike-sidecar ${doc.version ?? '?'} at ${admin}${doc.instanceId ? ` (instance ${doc.instanceId})` : ''}`);

  const e = doc.ebpf ?? {};
  const relayed = `relayed addresses ${e.relayV4 ?? '-'} / ${e.relayV6 ?? '-'}`;
  lines.push(
    row(
      'datapath',
      doc.mode === 'xdp'
        ? `xdp on ${doc.interface ?? '?'} (${e.attachMode ?? '?'}), ${relayed}`
        : `userspace${e.reason ? ` (${e.reason})` : ''}${doc.interface ? ` on ${doc.interface}` : ''}`,
    ),
  );

  const rl = doc.relay ?? {};
  const link = rl.relayConnected
    ? `connected, resyncs ${rl.resyncs ?? 0}, link queue ${doc.link?.queueFrames ?? 0} frames`
    : 'NOT CONNECTED (the sidecar relays nothing new until turnpike-relay connects)';
  const lost = (rl.droppedNoRelay ?? 0) + (rl.droppedBackpressure ?? 0);
  lines.push(row('relay', `${link}${lost > 0 ? `, ${count(lost)} datagrams dropped on the way to it` : ''}`));

  const c = doc.relayCounters;
  lines.push(
    row(
      'state',
      c
        ? `allocations ${count(c.allocations ?? 0)}, permissions ${count(c.permissions ?? 0)}, channels ${count(c.channels ?? 0)}, reservations ${count(c.reservations ?? 0)}, ports ${count(doc.sockets?.allocationPorts ?? 0)}`
        : `no relay counters yet, ports ${count(doc.sockets?.allocationPorts ?? 0)}`,
    ),
  );

  const maps = Object.entries(doc.maps ?? {});
  lines.push(
    row(
      'kernel maps',
      maps.length === 0
        ? 'none (userspace datapath)'
        : maps
            .map(([name, m]) => `${name} ${count(m.entries)}/${count(m.capacity)} (${percent(m.entries, m.capacity)})${m.full ? ' FULL' : ''}${m.refusedWrites ? `, ${count(m.refusedWrites)} writes refused` : ''}`)
            .join('; '),
    ),
  );

  if (rates) {
    lines.push(row('relayed', `over the last ${rates.seconds.toFixed(1)} s`));
    const total = DATAPATHS.reduce((a, d) => a + rates.relayed[d].packetsPerSecond, 0);
    for (const d of DATAPATHS) {
      const r = rates.relayed[d];
      lines.push(row('', `${d.padEnd(10)} ${count(r.packetsPerSecond).padStart(10)} packets/s ${bits(r.bitsPerSecond).padStart(14)}  ${percent(r.packetsPerSecond, total).padStart(6)}`));
    }
  }
  lines.push(row('relayed', `in all: ${DATAPATHS.map((d) => `${d} ${count(sample.relayed[d].packets)} packets`).join(', ')}`));
  lines.push(row('drops', `kernel: ${eventList(sample, rates, 'kernel')}`));
  lines.push(row('', `relay: ${eventList(sample, rates, 'relay')}`));
  lines.push(row('', `sockets: ${eventList(sample, rates, 'socket')}`));
  lines.push(row('refusals', eventList(sample, rates, 'refused')));
  if (doc.security) lines.push(row('security', eventList(sample, rates, 'security')));
  const errors = Object.entries(doc.sockets?.errors ?? {}).filter(([, n]) => n > 0);
  if (errors.length > 0) lines.push(row('socket errs', errors.map(([k, n]) => `${k} ${count(n)}`).join(', ')));
  const flags = Object.entries(doc.flags ?? {});
  lines.push(row('flags', flags.length > 0 ? flags.map(([k, on]) => `${k} ${on ? 'on' : 'off'}`).join(', ') : 'none'));
  return lines.join('\n') + '\n';
}

// ---- the command ---------------------------------------------------------------

/** The admin server's URL: a wildcard bind is reached on loopback. */
export function adminUrl(admin: Config['admin']): string {
  const host = isWildcard(admin.host) ? (admin.host.includes(':') ? '::1' : '127.0.0.1') : admin.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${admin.port}`;
}

export class StatusError extends Error {
  readonly code = 'TURNPIKE_STATUS';
}

/** GET /status (node:http, not fetch: fetch refuses some ports an admin server may use). */
export function fetchStatus(base: string, timeoutMs = 3000): Promise<StatusDoc> {
  return new Promise((resolve, reject) => {
    const unreachable = (why: string) =>
      new StatusError(`cannot reach the sidecar's admin server at ${base} (${why}); is turnpike-sidecar running, and is this its admin address (TURNPIKE_ADMIN, --admin)?`);
    const req = httpGet(`${base}/status`, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('error', (e) => reject(unreachable(e.message)));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new StatusError(`${base}/status answered ${res.statusCode}: ${body.trim().slice(0, 200)}`));
        try {
          resolve(JSON.parse(body) as StatusDoc);
        } catch {
          reject(new StatusError(`${base}/status did not answer JSON; is this the sidecar's admin address?`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => reject(unreachable(e.code ?? e.message)));
  });
}

export interface StatusIo {
  readonly env: NodeJS.ProcessEnv;
  /** The view (stdout). */
  write(text: string): void;
  /** Errors and usage (stderr). */
  error(text: string): void;
  /** Whether output goes to a terminal (--watch clears the screen between views). */
  readonly tty: boolean;
  /** Ends --watch (SIGINT in the command). */
  readonly signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

/** Runs `turnpike status ...` (argv without node and script); resolves with the exit code. */
export async function runStatus(argv: readonly string[], io: StatusIo): Promise<number> {
  const args = argv[0] === 'status' ? argv.slice(1) : argv;
  if (args[0] !== undefined && !args[0].startsWith('-')) {
    io.error(`turnpike: unknown command ${JSON.stringify(args[0])}\n${USAGE}`);
    return 2;
  }
  let loaded;
  try {
    loaded = loadConfig({ argv: args, env: io.env, flags: STATUS_FLAGS });
  } catch (e) {
    if (e instanceof ConfigError) {
      io.error(`turnpike status: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const { json, watch, interval, help } = loaded.flags;
  if (help) {
    io.write(USAGE);
    return 0;
  }
  const base = adminUrl(loaded.config.admin);
  const read = async () => {
    const doc = await fetchStatus(base);
    return { doc, sample: sampleOf(doc, Date.now()) };
  };
  // A read that fails ends a single view; --watch reports it and tries again
  // at the next refresh (the sidecar may be restarting).
  let last: Awaited<ReturnType<typeof read>> | undefined;
  for (;;) {
    try {
      const now = await read();
      if (last) {
        const rates = ratesBetween(last.sample, now.sample);
        if (json) io.write(JSON.stringify({ ...now.doc, rates }) + '\n');
        else io.write((watch && io.tty ? '\x1b[H\x1b[2J' : watch ? '\n' : '') + renderStatus(now.doc, now.sample, rates, base.slice('http://'.length)));
        if (!watch) return 0;
      }
      last = now;
    } catch (e) {
      if (!(e instanceof StatusError)) throw e;
      io.error(`turnpike status: ${e.message}\n`);
      if (!watch) return 1;
      last = undefined;
    }
    await sleep(interval * 1000, io.signal);
    if (io.signal?.aborted) return 0;
  }
}

async function main(): Promise<void> {
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  const code = await runStatus(process.argv.slice(2), {
    env: process.env,
    write: (t) => void process.stdout.write(t),
    error: (t) => void process.stderr.write(t),
    tty: process.stdout.isTTY === true,
    signal: stop.signal,
  });
  process.exitCode = code;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) await main();
