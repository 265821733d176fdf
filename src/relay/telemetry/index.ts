// The relay's telemetry path when it runs behind the sidecar. The relay has no
// telemetry SDK and no egress; instead:
//   - its pino lines go over the link as LOG frames (LinkLogDestination);
//   - its counters go over the link as COUNTERS frames (startCountersSender);
//   - the sidecar's log filters come back as LOG_FILTER frames and are applied
//     to the relay's module loggers at once: the local filter (POST /log on
//     the sidecar's admin port governs the relay's modules, `server`,
//     `transport`, ... too) and, while `stream-logs` streams, the stream
//     filter, so the relay makes the lines Sentry wants even where stdout
//     does not (the sidecar routes each line by the same two filters).
import type { ServerStats } from '../../shared/stats.ts';
import { formatLogFilter, parseLogFilter, type LogHub } from '../../shared/logger.ts';
import { LinkLogDestination, type LogLink } from './link-log.ts';
import { addGc, watchGc, type GcTotals } from '../../shared/gc.ts';
import { startCountersSender, type CountersLink } from './counters.ts';

export { LinkLogDestination, lineMeta, type LinkLogStats, type LogLink } from './link-log.ts';
export { startCountersSender, type CountersSender, type CountersLink } from './counters.ts';

/** The relay's stdout as createLogHub opens it (pretty on a terminal): LinkLogDestination's fallback. */
export { stdoutDestination } from '../../shared/logger.ts';

/** The link as the relay's telemetry needs it (SidecarTransport implements it). */
export interface TelemetryLink extends LogLink, CountersLink {
  on(event: 'open', listener: () => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  on(event: 'log-filter', listener: (filter: string, stream: string | undefined) => void): unknown;
}

export interface RelayTelemetryOptions {
  link: TelemetryLink;
  server: { stats(): ServerStats };
  logs: LogHub;
  /** The hub's destination when it is a LinkLogDestination (cmd/relay.ts makes one for the sidecar transport). */
  destination?: LinkLogDestination | undefined;
  /** More counters to send alongside the server's (e.g. the transport's stats). */
  extra?: () => Record<string, unknown>;
  countersIntervalMs?: number;
}

export interface RelayTelemetry {
  /** Sends the last counters and stops forwarding (later lines go to stdout). */
  close(): void;
}

export function startRelayTelemetry(opts: RelayTelemetryOptions): RelayTelemetry {
  const { link, logs } = opts;
  const log = logs.get('relay');
  opts.destination?.attach(link);

  // The relay's GC pauses reach the sidecar's v8js.gc.duration as totals in the counters (shared/gc.ts).
  const gc: GcTotals = {};
  const stopGcWatch = watchGc((type, seconds) => addGc(gc, type, seconds));

  const counters = startCountersSender({
    link,
    intervalMs: opts.countersIntervalMs,
    onInvalid: (reason) => log.error({ reason }, 'counters snapshot does not match the link schema; not sent'),
    collect: () => ({
      ...opts.server.stats(),
      ...(opts.extra?.() ?? {}),
      ...(opts.destination ? { logs: { ...opts.destination.stats(), rateLimited: logs.perSource.suppressed } } : {}),
      gc,
    }),
  });
  link.on('open', () => counters.sendNow());

  const applyLocal = (text: string) => {
    const next = parse(text, 'log filter from the sidecar does not parse; keeping the current one');
    if (next === undefined) return;
    const before = formatLogFilter(logs.filter());
    const after = formatLogFilter(next);
    if (before === after) return;
    logs.setFilter(next);
    log.info({ filter: after, previous: before }, 'log filter set by the sidecar');
  };
  const applyStream = (text: string | undefined) => {
    const next = text === undefined ? undefined : parse(text, 'stream filter from the sidecar does not parse; not streaming');
    const current = logs.streamFilter();
    const before = current && formatLogFilter(current);
    const after = next && formatLogFilter(next);
    if (before === after) return;
    logs.setStreamFilter(next);
    log.info({ stream: after ?? 'off', previous: before ?? 'off' }, 'stream filter set by the sidecar');
  };
  const parse = (text: string, problem: string) => {
    try {
      return parseLogFilter(text);
    } catch (err) {
      log.warn({ filter: text, reason: (err as Error).message }, problem);
      return undefined;
    }
  };

  link.on('log-filter', (text, streamText) => {
    applyLocal(text);
    applyStream(streamText);
  });
  // With no sidecar nothing reads the stream: stop making lines for it.
  link.on('close', () => logs.streamFilter() !== undefined && logs.setStreamFilter(undefined));

  return {
    close() {
      counters.sendNow();
      counters.stop();
      stopGcWatch();
      opts.destination?.attach(undefined);
    },
  };
}
