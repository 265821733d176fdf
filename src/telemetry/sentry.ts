// Sentry for the sidecar (and, through it, the relay): errors always when a
// DSN is set; log lines only while the `stream-logs` flag is on, filtered per
// module by the flag's payload and bounded by StreamGate. The payload is a
// filter of its own, not a narrowing of TURNPIKE_LOG: the log hub makes the
// lines it wants even where stdout does not print them (shared/logger.ts).
//
// The sidecar's own pino lines reach Sentry through pinoIntegration (pino's
// diagnostics channel, no extra destination). Relay lines arrive as link
// frames and are emitted with Sentry.logger.*. Both pass the same gate in
// beforeSendLog, the only runtime switch @sentry/node 11 has for logs.
import * as Sentry from '@sentry/node';
import type { Logger } from 'pino';
import type { RelayLogEntry } from './relay-log.ts';
import { StreamGate, type StreamGateOptions } from './stream-gate.ts';
import type { LogFilter } from '../shared/logger.ts';

export interface SentryOptions {
  dsn: string;
  version: string;
  environment: string;
  serverName: string;
  /** Module logger for Sentry's own problems ('telemetry'). */
  log: Logger;
  gate?: StreamGateOptions;
  /** Called for each line refused by the rate bound (for a metric). */
  onDropped?: (n: number) => void;
  /** Idle flush of buffered log lines (SDK default 5000 ms). */
  flushIntervalMs?: number;
  /** Test hook: wraps the SDK transport. */
  transport?: Sentry.NodeOptions['transport'];
}

export interface SentryHandle {
  /** Turns log streaming on (with a filter) or off; takes effect for the next line. */
  setStreaming(on: boolean, filter?: LogFilter): void;
  streaming(): { on: boolean; filter: LogFilter };
  /** A relay log line: streamed like the sidecar's own (same gate), and an error event when it carries an error. */
  relayLog(entry: RelayLogEntry): void;
  flush(timeoutMs?: number): Promise<boolean>;
  close(timeoutMs?: number): Promise<boolean>;
}

const SENTRY_LEVEL = { trace: 'trace', debug: 'debug', info: 'info', warn: 'warn', error: 'error', fatal: 'fatal' } as const;

export function startSentry(opts: SentryOptions): SentryHandle {
  const gate = new StreamGate(opts.gate);
  // Errors from relay lines have their own small budget: an error loop in
  // the relay must not flood Sentry either.
  const errorGate = new StreamGate({ ratePerSecond: 5, burst: 50 });
  errorGate.set(true, { defaultLevel: 'trace', modules: {} });

  // Dropped lines are counted at once (metric) and warned about once a second.
  const reportDropped = setInterval(() => {
    const n = gate.takeDropped();
    if (n > 0) opts.log.warn({ dropped: n }, 'log streaming over its rate bound; lines not sent to Sentry');
  }, 1000);
  reportDropped.unref();

  Sentry.init({
    dsn: opts.dsn,
    release: `turnpike@${opts.version}`,
    environment: opts.environment,
    serverName: opts.serverName,
    defaultIntegrations: false,
    integrations: [
      Sentry.pinoIntegration({ error: { levels: ['error', 'fatal'], handled: true } }),
      Sentry.onUncaughtExceptionIntegration(),
      Sentry.onUnhandledRejectionIntegration({ mode: 'warn' }),
    ],
    // Client reports would announce every gated-off line; nothing to gain.
    sendClientReports: false,
    beforeSendLog: (log) => {
      const module = typeof log.attributes?.module === 'string' ? log.attributes.module : undefined;
      const verdict = gate.check(module, log.level);
      if (verdict === 'over-rate') opts.onDropped?.(1);
      return verdict === 'send' ? log : null;
    },
    ...(opts.flushIntervalMs !== undefined ? { _flushInterval: opts.flushIntervalMs } : {}),
    ...(opts.transport ? { transport: opts.transport } : {}),
  });

  return {
    setStreaming(on, filter) {
      gate.set(on, filter);
    },
    streaming: () => gate.state(),
    relayLog(entry) {
      const attributes: Record<string, unknown> = { ...entry.fields, process: 'relay' };
      if (entry.module !== undefined) attributes.module = entry.module;
      if (entry.err) attributes.err = entry.err.message ?? '';
      Sentry.logger[SENTRY_LEVEL[entry.level]](entry.msg, attributes);
      if (entry.levelValue >= 50 && errorGate.check(undefined, 'error') === 'send') {
        const e = new Error(entry.err?.message ?? entry.msg);
        e.name = entry.err?.type ?? 'RelayError';
        if (entry.err?.stack) e.stack = entry.err.stack;
        Sentry.captureException(e, {
          level: entry.levelValue >= 60 ? 'fatal' : 'error',
          tags: { process: 'relay', ...(entry.module ? { module: entry.module } : {}) },
          contexts: { relay: { msg: entry.msg, ...entry.fields } },
        });
      }
    },
    flush: (ms = 2000) => Sentry.flush(ms),
    async close(ms = 2000) {
      clearInterval(reportDropped);
      const n = gate.takeDropped();
      if (n > 0) opts.log.warn({ dropped: n }, 'log streaming over its rate bound; lines not sent to Sentry');
      return Sentry.close(ms);
    },
  };
}
