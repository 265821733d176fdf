// The sidecar's metrics: one MeterProvider with a Prometheus reader (served
// on the admin port, always) and, when a collector is configured, an OTLP
// gRPC exporter. Every instrument is declared once, in instruments.ts.
//
// Kernel, relay and link counters arrive as cumulative snapshots; they are
// folded through CumulativeAccumulator (a restart of the source counts from
// zero, never twice) and read by observable instruments at collection time.
// Attributes are low-cardinality by construction: datapath, direction,
// family, reason, method/code, map and flag names; never users or addresses.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { diag, DiagLogLevel } from '@opentelemetry/api';
import { MeterProvider, PeriodicExportingMetricReader, type MetricReader } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { createRequire } from 'node:module';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { Logger } from 'pino';
import type { ServerStats } from '../shared/stats.ts';
import { SOCKET_KINDS } from '../shared/endpoint.ts';
import { gcDeltas, watchGc, type GcTotals, type GcType } from '../shared/gc.ts';
import {
  CumulativeAccumulator,
  KERNEL_DIAG_KIND_NAMES,
  KERNEL_PATH_NAMES,
  KERNEL_REASON_NAMES,
  LabelCap,
  pathAttributes,
  reasonAttributes,
  responseAttributes,
  toNumber,
} from './counters.ts';
import { createInstruments, observeAll, type AttributesOf } from './instruments.ts';
import { startKernelCounterPoll, type KernelCounters, type KernelPoll, type KernelReader } from './kernel-poll.ts';

type Flow = { packets: number; bytes: number };
type Relayed = { toPeer: Flow; toClient: Flow };

/** The relay's TCP/TLS connections (the COUNTERS frame's `streams`). */
export interface StreamCounterStats {
  open: Record<string, number>;
  accepted: Record<string, number>;
  /** `transport:reason` -> count. */
  closed: Record<string, number>;
  writeDropped: Record<string, number>;
}

/**
 * The relay's counters; `relayedByFamily`, when the relay sends it, adds the
 * output family to userspace series, and `byTransport` the client transport.
 */
export type RelayStats = ServerStats & { relayedByFamily?: { ipv4?: Relayed; ipv6?: Relayed }; logs?: { rateLimited?: number }; streams?: StreamCounterStats; gc?: GcTotals };

const STREAM_TRANSPORTS = ['tcp', 'tls'] as const;
/** The sidecar's UDP socket kinds (sidecar/sockets.ts), the values of turnpike.socket.dropped's `socket`. */

export interface LinkStats {
  /** Frames waiting to be written to the relay now. */
  queueDepth: number;
  /** Frames dropped because the queue was full (cumulative for the current connection). */
  droppedFrames: number;
}

/**
 * Per map: current entries and capacity (max_entries); for maps the sidecar
 * writes, whether a write found it full since it last had room, and the
 * writes refused so far (cumulative for the process).
 */
export type MapStats = Record<string, { entries: number; capacity: number; full?: boolean; refusedWrites?: number }>;

export interface DiagEvent {
  /** 'drop' | 'misconfig' or enum tp_diag_kind. */
  kind: string | number;
  /** Reason name (`drop_adjust_head`) or enum tp_reason index. */
  reason: string | number;
  /** The failing helper's return code (negative errno). */
  ret?: number;
  /** Path name or enum tp_path index (TP_PATH_MAX when none). */
  path?: string | number;
  cpu?: number;
}

export interface MetricsOptions {
  version: string;
  instanceId: string;
  /** OTLP gRPC collector URL (`http://host:4317`); undefined: no export. */
  otlpEndpoint?: string;
  exportIntervalMs?: number;
  /** Module logger for metric and export problems ('metrics'). */
  log: Logger;
  /** Module logger for kernel diagnostics ('bpf'). */
  bpfLog?: Logger;
  /** The sidecar's own session lines suppressed by the per-source budget (cumulative). */
  linesRateLimited?: () => number;
}

export interface Metrics {
  /** Polls kernel counters through `read` every `intervalMs` (default 1 s); replaces a previous reader. */
  setKernelReader(read: KernelReader, intervalMs?: number): KernelPoll;
  /** One snapshot of kernel counters (what the poll calls). */
  onKernelCounters(c: KernelCounters): void;
  /** The kernel counters were recreated (program reloaded): the next snapshot counts from zero. */
  kernelReset(): void;
  onRelayStats(s: RelayStats): void;
  /**
   * The sidecar's userspace fast path (datapath "sidecar"): cumulative
   * counts by kernel path name, of what neither the kernel nor the relay relayed.
   */
  onSidecarRelayed(paths: Record<string, { packets: number; bytes: number }>): void;
  /** The relay went away: its gauges go to 0 and its next counters count from zero. */
  relayDisconnected(): void;
  onLinkStats(s: LinkStats): void;
  /** Datagrams the kernel dropped at the sidecar's UDP sockets, cumulative, by socket kind (listen, allocation). */
  onSocketDrops(dropped: Record<string, number>): void;
  onMapStats(s: MapStats): void;
  /** `n` perf events were lost (libbpf's lost callback count). */
  onPerfLost(n: number | bigint, cpu?: number): void;
  onDiagEvent(e: DiagEvent): void;
  setFlag(name: string, on: boolean): void;
  /** Which datapath relays (turnpike.datapath): 'xdp' with its attach mode, or 'userspace'. */
  setDatapath(datapath: 'xdp' | 'userspace', mode?: string): void;
  /** Log lines not streamed because of the streaming bound. */
  onStreamDropped(n: number): void;
  /** One security refusal (sidecar/security.ts rules: a fixed, small set). */
  onSecurityRefusal(rule: string): void;
  /** GET /metrics in Prometheus text format. */
  prometheus(req: IncomingMessage, res: ServerResponse): void;
  readonly otlpEnabled: boolean;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

const LOST_WARN_WINDOW_MS = 1000;

// The OTLP exporter (gRPC) is loaded only when an endpoint is set: it costs
// hundreds of ms of start-up, which every sidecar restart would pay (issue 12).
const requireLazily = createRequire(import.meta.url);
const loadOtlpExporter = () =>
  (requireLazily('@opentelemetry/exporter-metrics-otlp-grpc') as typeof import('@opentelemetry/exporter-metrics-otlp-grpc')).OTLPMetricExporter;

export function createMetrics(opts: MetricsOptions): Metrics {
  const log = opts.log;
  const bpfLog = opts.bpfLog ?? log;
  // OTel reports export failures only through its diag channel.
  diag.setLogger(
    {
      error: (m, ...a) => log.warn({ detail: a.map(String).join(' ') }, `otel: ${m}`),
      warn: (m, ...a) => log.warn({ detail: a.map(String).join(' ') }, `otel: ${m}`),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );

  const prom = new PrometheusExporter({ preventServerStart: true });
  const readers: MetricReader[] = [prom];
  const endpoint = opts.otlpEndpoint;
  if (endpoint) {
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: new (loadOtlpExporter())({ url: endpoint }),
        exportIntervalMillis: opts.exportIntervalMs ?? 15_000,
        exportTimeoutMillis: Math.min(opts.exportIntervalMs ?? 15_000, 5_000),
      }),
    );
  }
  const provider = new MeterProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: 'turnpike-sidecar',
      [ATTR_SERVICE_VERSION]: opts.version,
      'service.instance.id': opts.instanceId,
      'host.name': hostname(),
    }),
    readers,
  });
  const meter = provider.getMeter('turnpike-sidecar', opts.version);

  const acc = new CumulativeAccumulator();
  const reasonCap = new LabelCap(64);
  const responseCap = new LabelCap(128);
  const relayDropCap = new LabelCap(64);
  const relayRefusedCap = new LabelCap(32);
  const streamClosedCap = new LabelCap(64);
  const mapCap = new LabelCap(32);
  const flagCap = new LabelCap(32);

  let relay: RelayStats | undefined;
  let link: LinkStats = { queueDepth: 0, droppedFrames: 0 };
  let maps: MapStats = {};
  const flags = new Map<string, boolean>();
  let datapath: AttributesOf<'datapath'> | undefined;

  // Accumulator keys: k/ kernel, s/ sidecar fast path, r/ relay, l/ link, u/ the sidecar's UDP sockets. `|` separates parts.
  const inst = createInstruments(meter);

  // GC pauses: the sidecar's as they happen, the relay's from the totals in its counters.
  const recordGc = (process: 'sidecar' | 'relay', type: GcType, seconds: number) => inst.gcDuration.record(seconds, { 'v8js.gc.type': type, process });
  const stopGcWatch = watchGc((type, seconds) => recordGc('sidecar', type, seconds));
  let relayGc: GcTotals | undefined;
  observeAll(meter, inst, (observe) => {
    // Several kernel paths share one attribute set (chan_to_udp_44 and
    // chan_to_udp_64 are both to_peer/ipv4): sum them, since a second
    // observe() of the same attributes replaces the first.
    // The sidecar's userspace fast path counts by the kernel's path names, summed the same way.
    // Firezone's two names: eBPF is xdp; userspace is everything else (the sidecar's fast path and the relay).
    let xdpBytes = 0;
    let userspaceBytes = 0;
    for (const [prefix, datapath] of [['k/path|', 'xdp'], ['s/path|', 'sidecar']] as const) {
      const byAttrs = new Map<string, { what: string; attrs: AttributesOf<'bytes'>; total: number }>();
      for (const [key, total] of acc.entries(prefix)) {
        const [, name, what] = key.split('|') as [string, string, string];
        const a = pathAttributes(name);
        if (!a) continue;
        const id = `${what}|${a.direction}|${a.family}`;
        const cur = byAttrs.get(id);
        if (cur) cur.total += total;
        // The fast paths relay only channels of UDP clients (a stream client's are never written to them).
        else byAttrs.set(id, { what, attrs: { datapath, ...a, transport: 'udp' }, total });
      }
      for (const { what, attrs, total } of byAttrs.values()) {
        observe(what === 'bytes' ? 'bytes' : 'packets', total, attrs);
        if (what === 'bytes' && datapath === 'xdp') xdpBytes += total;
        else if (what === 'bytes') userspaceBytes += total;
      }
    }
    for (const [key, total] of acc.entries('r/relayed|')) {
      const [, family, direction, what, transport] = key.split('|') as [string, string, string, string, string];
      const attrs: AttributesOf<'bytes'> = { datapath: 'userspace', direction };
      if (family !== 'any') attrs.family = family;
      if (transport !== '') attrs.transport = transport;
      observe(what === 'bytes' ? 'bytes' : 'packets', total, attrs);
      if (what === 'bytes') userspaceBytes += total;
    }
    observe('firezoneEbpfBytes', xdpBytes);
    observe('firezoneUserspaceBytes', userspaceBytes);
    for (const [key, total] of acc.entries('k/reason|')) {
      const r = reasonAttributes(key.slice('k/reason|'.length));
      if (r) observe(r.verdict === 'pass' ? 'xdpPass' : 'xdpDrop', total, { reason: reasonCap.label(r.reason) });
    }
    for (const [key, total] of acc.entries('r/responses|')) {
      const { method, code } = responseAttributes(key.slice('r/responses|'.length));
      observe('responses', total, { method, code });
    }
    for (const [prefix, instrument] of [['r/dropped|', 'relayDropped'], ['r/refused|', 'relayRefused']] as const) {
      for (const [key, total] of acc.entries(prefix)) observe(instrument, total, { reason: key.slice(prefix.length) });
    }
    if (relay?.byTransport) for (const [transport, t] of Object.entries(relay.byTransport)) observe('allocations', t.allocations, { transport });
    else observe('allocations', relay?.allocations ?? 0);
    for (const [key, total] of acc.entries('r/errors|')) observe('responseErrors', total, { transport: key.slice('r/errors|'.length) });
    for (const t of STREAM_TRANSPORTS) {
      if (!relay?.streams) break;
      observe('streamActive', relay.streams.open[t] ?? 0, { transport: t });
    }
    for (const [key, total] of acc.entries('r/stream-accepted|')) observe('streamAccepted', total, { transport: key.slice('r/stream-accepted|'.length) });
    for (const [key, total] of acc.entries('r/stream-write-dropped|')) observe('streamWriteDropped', total, { transport: key.slice('r/stream-write-dropped|'.length) });
    for (const [key, total] of acc.entries('r/stream-closed|')) {
      const [transport, reason = 'other'] = key.slice('r/stream-closed|'.length).split(':') as [string, string | undefined];
      observe('streamClosed', total, { transport, reason });
    }
    observe('permissions', relay?.permissions ?? 0);
    observe('channels', relay?.channels ?? 0);
    observe('reservations', relay?.reservations ?? 0);
    observe('linkQueue', link.queueDepth);
    observe('linkDropped', acc.get('l/dropped'));
    for (const [key, total] of acc.entries('u/dropped|')) observe('socketDropped', total, { socket: key.slice('u/dropped|'.length) });
    for (const [map, s] of Object.entries(maps)) {
      observe('mapEntries', s.entries, { map });
      observe('mapCapacity', s.capacity, { map });
      if (s.refusedWrites !== undefined) observe('mapRefused', s.refusedWrites, { map });
    }
    for (const [flag, on] of flags) observe('flagState', on ? 1 : 0, { flag });
    if (datapath) observe('datapath', 1, datapath);
    observe('logRateLimited', acc.get('r/logs-rate-limited'), { process: 'relay' });
    observe('logRateLimited', opts.linesRateLimited?.() ?? 0, { process: 'sidecar' });
  });

  // --- perf lost: counted at once, warned at most once per window ----------
  let lostPending = 0;
  let lostTimer: NodeJS.Timeout | undefined;
  const warnLost = () => {
    lostTimer = undefined;
    if (lostPending === 0) return;
    bpfLog.warn({ lost: lostPending }, 'kernel diagnostic events lost (perf buffer full)');
    lostPending = 0;
    lostTimer = setTimeout(warnLost, LOST_WARN_WINDOW_MS);
    lostTimer.unref();
  };

  let poll: KernelPoll | undefined;

  const onKernelCounters = (c: KernelCounters) => {
    for (const [name, v] of Object.entries(c.paths ?? {})) {
      if (!pathAttributes(name)) continue;
      acc.observe(`k/path|${name}|packets`, toNumber(v.packets));
      acc.observe(`k/path|${name}|bytes`, toNumber(v.bytes));
    }
    for (const [name, v] of Object.entries(c.reasons ?? {})) {
      if (reasonAttributes(name)) acc.observe(`k/reason|${name}`, toNumber(v));
    }
  };

  return {
    otlpEnabled: endpoint !== undefined,
    setKernelReader(read, intervalMs) {
      poll?.stop();
      poll = startKernelCounterPoll(read, onKernelCounters, { intervalMs: intervalMs ?? 1000, log: bpfLog });
      return poll;
    },
    onKernelCounters,
    kernelReset: () => acc.reset('k/'),
    onRelayStats(s) {
      relay = s;
      // Finest split the relay sends: family and transport, family, or neither.
      const flows: [string, string, Relayed | undefined][] = s.byTransport
        ? Object.entries(s.byTransport).flatMap(([t, v]) => [['ipv4', t, v.relayedByFamily.ipv4], ['ipv6', t, v.relayedByFamily.ipv6]] as [string, string, Relayed][])
        : s.relayedByFamily
          ? [['ipv4', '', s.relayedByFamily.ipv4], ['ipv6', '', s.relayedByFamily.ipv6]]
          : [['any', '', s.relayed]];
      for (const [family, transport, r] of flows) {
        if (!r) continue;
        for (const [dir, f] of [['to_peer', r.toPeer], ['to_client', r.toClient]] as const) {
          acc.observe(`r/relayed|${family}|${dir}|packets|${transport}`, f.packets);
          acc.observe(`r/relayed|${family}|${dir}|bytes|${transport}`, f.bytes);
        }
      }
      for (const [t, v] of Object.entries(s.byTransport ?? {})) acc.observe(`r/errors|${t}`, v.errors);
      if (s.streams) {
        for (const t of STREAM_TRANSPORTS) {
          acc.observe(`r/stream-accepted|${t}`, s.streams.accepted[t] ?? 0);
          acc.observe(`r/stream-write-dropped|${t}`, s.streams.writeDropped[t] ?? 0);
        }
        for (const [k, v] of Object.entries(s.streams.closed)) if (/^(tcp|tls):[a-z-]+$/.test(k)) acc.observe(`r/stream-closed|${streamClosedCap.label(k)}`, v);
      }
      for (const [k, v] of Object.entries(s.responses ?? {})) acc.observe(`r/responses|${responseCap.label(k)}`, v);
      for (const [k, v] of Object.entries(s.dropped ?? {})) acc.observe(`r/dropped|${relayDropCap.label(k)}`, v);
      for (const [k, v] of Object.entries(s.refused ?? {})) acc.observe(`r/refused|${relayRefusedCap.label(k)}`, v);
      if (s.logs?.rateLimited !== undefined) acc.observe('r/logs-rate-limited', s.logs.rateLimited);
      if (s.gc) {
        for (const d of gcDeltas(relayGc, s.gc)) for (let i = 0; i < d.n; i++) recordGc('relay', d.type, d.seconds);
        relayGc = structuredClone(s.gc);
      }
    },
    onSidecarRelayed(paths) {
      for (const [name, v] of Object.entries(paths)) {
        if (!pathAttributes(name) || v.packets === 0) continue;
        acc.observe(`s/path|${name}|packets`, v.packets);
        acc.observe(`s/path|${name}|bytes`, v.bytes);
      }
    },
    relayDisconnected() {
      relay = undefined;
      relayGc = undefined;
      acc.reset('r/');
    },
    onLinkStats(s) {
      link = s;
      acc.observe('l/dropped', s.droppedFrames);
    },
    onSocketDrops(dropped) {
      for (const kind of SOCKET_KINDS) acc.observe(`u/dropped|${kind}`, dropped[kind] ?? 0);
    },
    setDatapath(d, mode) {
      datapath = mode === undefined ? { datapath: d } : { datapath: d, mode };
    },
    onMapStats(s) {
      const next: MapStats = {};
      for (const [m, v] of Object.entries(s)) next[mapCap.label(m)] = v;
      maps = next;
    },
    onPerfLost(n, cpu) {
      const count = toNumber(n);
      if (!(count > 0)) return;
      inst.perfLost.add(count);
      if (lostTimer === undefined) {
        bpfLog.warn({ lost: count, cpu }, 'kernel diagnostic events lost (perf buffer full)');
        lostTimer = setTimeout(warnLost, LOST_WARN_WINDOW_MS);
        lostTimer.unref();
      } else {
        lostPending += count;
      }
    },
    onDiagEvent(e) {
      const kind = typeof e.kind === 'number' ? KERNEL_DIAG_KIND_NAMES[e.kind] ?? `kind_${e.kind}` : e.kind;
      const reason = typeof e.reason === 'number' ? KERNEL_REASON_NAMES[e.reason] ?? `reason_${e.reason}` : e.reason;
      const path = typeof e.path === 'number' ? KERNEL_PATH_NAMES[e.path] : e.path;
      inst.diagEvents.add(1, { kind: reasonCap.label(kind), reason: reasonCap.label(reasonAttributes(reason)?.reason ?? reason) });
      bpfLog.warn({ kind, reason, ret: e.ret, path, cpu: e.cpu }, kind === 'drop' ? `xdp dropped a frame: ${reason}` : `xdp diagnostic: ${kind} ${reason}`);
    },
    setFlag(name, on) {
      flags.set(flagCap.label(name), on);
    },
    onStreamDropped(n) {
      if (n > 0) inst.streamDropped.add(n);
    },
    onSecurityRefusal(rule) {
      inst.securityRefusals.add(1, { rule });
    },
    prometheus(req, res) {
      prom.getMetricsRequestHandler(req, res);
    },
    forceFlush: () => provider.forceFlush(),
    async shutdown() {
      poll?.stop();
      stopGcWatch();
      if (lostTimer) clearTimeout(lostTimer);
      await provider.shutdown().catch((err: unknown) => log.warn({ err }, 'metrics shutdown failed'));
    },
  };
}

export type { KernelCounters, KernelReader };
