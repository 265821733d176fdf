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
import { startSentry, type SentryHandle, type SentryOptions } from './sentry.ts';
import { parseLogFilter, type LogHub } from '../shared/logger.ts';
import { parseRelayLine } from './relay-log.ts';
import type { StreamGateOptions } from './stream-gate.ts';

/** Flags this version evaluates. */
export const FLAGS = ['stream-logs'] as const;
export const STREAM_LOGS = 'stream-logs';

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
  });

  const sentry = config.sentryDsn
    ? startSentry({
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
    overrides: config.flagOverrides,
    log: logHub.get('flags'),
  });

  const applyStreaming = (s: FlagState) => {
    if (!sentry) return;
    let filter = parseLogFilter('info');
    if (s.on && typeof s.payload === 'string' && s.payload.trim() !== '') {
      try {
        filter = parseLogFilter(s.payload);
      } catch (err) {
        log.warn({ payload: s.payload, reason: (err as Error).message }, 'stream-logs payload is not a log filter; streaming at info');
      }
    }
    sentry.setStreaming(s.on, filter);
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
      } else {
        logHub.writeLine(text.includes('\n') ? JSON.stringify(JSON.parse(text)) : text);
      }
      if (entry.valid) sentry?.relayLog(entry);
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
