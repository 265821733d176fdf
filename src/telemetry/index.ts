// The sidecar's telemetry agent in one call: identity, metrics (Prometheus
// always, OTLP when configured), PostHog flags, Sentry (errors always when a
// DSN is set; logs while `stream-logs` is on), and the entry point for relay
// log lines arriving over the link. Nothing here touches the network unless
// its setting is present.
import { hostname } from 'node:os';
import type { Config } from '../config/schema.ts';
import { loadIdentity, type Identity } from './identity.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { createFlags, type Flags, type FlagState } from './flags.ts';
import type { SentryHandle, SentryOptions } from './sentry.ts';
import { parseLogFilter, type LogFilter, type LogHub } from '../shared/logger.ts';
import type { Logger } from 'pino';
import { parseRelayLine } from './relay-log.ts';
import type { StreamGateOptions } from './stream-gate.ts';

/** Flags this version evaluates. */
export const FLAGS = ['stream-logs'] as const;
export const STREAM_LOGS = 'stream-logs';

const DEFAULT_STREAM_FILTER = parseLogFilter('info');

/**
 * The stream filter a `stream-logs` payload names: a filter text as
 * TURNPIKE_LOG takes it (`debug`, `info,session=debug`), as a JSON string or
 * bare; no payload streams at info, and so does one that does not parse (with
 * a warning).
 */
export function streamFilterOf(payload: unknown, log: Logger): LogFilter {
  if (typeof payload !== 'string' || payload.trim() === '') {
    if (payload !== undefined && payload !== null) log.warn({ payload }, 'stream-logs payload is not a log filter text; streaming at info');
    return DEFAULT_STREAM_FILTER;
  }
  try {
    return parseLogFilter(payload);
  } catch (err) {
    log.warn({ payload, reason: (err as Error).message }, 'stream-logs payload is not a log filter; streaming at info');
    return DEFAULT_STREAM_FILTER;
  }
}

export type TelemetryConfig = Pick<
  Config,
  | 'posthogKey'
  | 'posthogHost'
  | 'posthogSecretKey'
  | 'flagsInterval'
  | 'flagOverrides'
  | 'sentryDsn'
  | 'sentryFlushMs'
  | 'environment'
  | 'pool'
  | 'otlpEndpoint'
  | 'metricsInterval'
>;

export interface TelemetryOptions {
  config: TelemetryConfig;
  version: string;
  stateDir: string;
  logHub: LogHub;
  /** Overrides for tests and tuning; production uses the config's seconds. */
  tuning?: {
    flagsIntervalMs?: number;
    flagRequestTimeoutMs?: number;
    exportIntervalMs?: number;
    streamGate?: StreamGateOptions;
    sentryTransport?: SentryOptions['transport'];
    sentryFlushMs?: number;
  };
}

export interface Telemetry {
  readonly identity: Identity;
  readonly metrics: Metrics;
  readonly flags: Flags;
  /** Present when a Sentry DSN is configured. */
  readonly sentry: SentryHandle | undefined;
  /** One relay log line (its pino JSON, as carried by a link frame): to stdout, and to Sentry like the sidecar's own. */
  relayLog(line: string): void;
  /** Flushes Sentry (2 s), stops flag polling, shuts the meter provider down. */
  shutdown(): Promise<void>;
}

export async function startTelemetry(opts: TelemetryOptions): Promise<Telemetry> {
  const { config, logHub } = opts;
  const log = logHub.get('telemetry');
  const relayFallbackLog = logHub.get('relay');
  const identity = loadIdentity(opts.stateDir);
  if (identity.created) log.info({ instanceId: identity.id }, 'created instance identity');

  const metrics = createMetrics({
    version: opts.version,
    instanceId: identity.id,
    otlpEndpoint: config.otlpEndpoint,
    exportIntervalMs: opts.tuning?.exportIntervalMs ?? config.metricsInterval * 1000,
    log: logHub.get('metrics'),
    bpfLog: logHub.get('bpf'),
    linesRateLimited: () => logHub.perSource.suppressed,
  });

  // @sentry/node is loaded only with a DSN: it costs seconds of start-up on a
  // busy host, which every sidecar restart would pay (issue 12).
  const sentry = config.sentryDsn
    ? (await import('./sentry.ts')).startSentry({
        dsn: config.sentryDsn,
        version: opts.version,
        environment: config.environment,
        serverName: hostname(),
        log,
        gate: opts.tuning?.streamGate,
        onDropped: (n) => metrics.onStreamDropped(n),
        transport: opts.tuning?.sentryTransport,
        flushIntervalMs: opts.tuning?.sentryFlushMs ?? config.sentryFlushMs,
      })
    : undefined;

  const flags = createFlags({
    names: FLAGS,
    posthogKey: config.posthogKey,
    posthogHost: config.posthogHost,
    posthogSecretKey: config.posthogSecretKey,
    intervalMs: opts.tuning?.flagsIntervalMs ?? config.flagsInterval * 1000,
    requestTimeoutMs: opts.tuning?.flagRequestTimeoutMs,
    distinctId: identity.id,
    version: opts.version,
    properties: { environment: config.environment, pool: config.pool },
    overrides: config.flagOverrides,
    log: logHub.get('flags'),
  });

  // The payload is the stream filter, independent of the local one: lines
  // the stream wants are made (here and, over the link, in the relay) even
  // where TURNPIKE_LOG would not print them, and only streamed.
  const applyStreaming = (s: FlagState) => {
    if (!sentry) return;
    const filter = s.on ? streamFilterOf(s.payload, log) : DEFAULT_STREAM_FILTER;
    sentry.setStreaming(s.on, filter);
    logHub.setStreamFilter(s.on ? filter : undefined);
  };
  for (const name of FLAGS) metrics.setFlag(name, flags.isEnabled(name));
  applyStreaming(flags.get(STREAM_LOGS));
  flags.onChange((name, s) => {
    metrics.setFlag(name, s.on);
    if (name === STREAM_LOGS) applyStreaming(s);
  });

  log.info(
    {
      instanceId: identity.id,
      posthog: flags.posthog ? (config.posthogSecretKey ? 'local-evaluation' : 'remote-evaluation') : 'off',
      sentry: sentry ? 'on' : 'off',
      otlp: metrics.otlpEnabled ? 'on' : 'off',
    },
    'telemetry started',
  );

  return {
    identity,
    metrics,
    flags,
    sentry,
    relayLog(line) {
      const text = line.endsWith('\n') ? line.slice(0, -1) : line;
      const entry = parseRelayLine(text);
      if (!entry.valid) {
        // Never copy raw relay bytes into our output as if they were a line of ours.
        relayFallbackLog.warn(entry.fields, entry.msg);
        return;
      }
      // The relay made it for either filter: printed if the local one wants it, streamed if the stream's does.
      if (logHub.localAllows(entry.module, entry.levelValue)) logHub.writeLine(text.includes('\n') ? JSON.stringify(JSON.parse(text)) : text);
      sentry?.relayLog(entry);
    },
    async shutdown() {
      await flags.close();
      await sentry?.close(2000);
      await metrics.shutdown();
    },
  };
}

export { startKernelCounterPoll } from './kernel-poll.ts';
export type { KernelCounters, KernelReader } from './kernel-poll.ts';
export type { Metrics, RelayStats, LinkStats, MapStats, DiagEvent } from './metrics.ts';
export type { Flags, FlagState } from './flags.ts';
export type { SentryHandle } from './sentry.ts';
