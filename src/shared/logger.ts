// pino loggers with one child per module under two runtime filters
// ("info,bpf=debug,link=trace": a default level plus per-module levels), the
// local one (printed) and the stream one (sent to Sentry), and the per-source
// budget for lines remote parties can cause.
// This module only depends on pino (and pino-pretty for a TTY), so the relay
// can use it without pulling any telemetry SDK.
import pino, { type Logger, type LevelWithSilent, type DestinationStream } from 'pino';
import pretty from 'pino-pretty';

const LEVELS: readonly LevelWithSilent[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export interface LogFilter {
  readonly defaultLevel: LevelWithSilent;
  readonly modules: Readonly<Record<string, LevelWithSilent>>;
}

/** Parses `info,bpf=debug,link=trace`; throws with the offending part. */
export function parseLogFilter(text: string): LogFilter {
  let defaultLevel: LevelWithSilent = 'info';
  const modules: Record<string, LevelWithSilent> = {};
  const parts = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new Error('empty log filter');
  for (const part of parts) {
    const eq = part.indexOf('=');
    const name = eq < 0 ? undefined : part.slice(0, eq).trim();
    const level = (eq < 0 ? part : part.slice(eq + 1)).trim().toLowerCase() as LevelWithSilent;
    if (!LEVELS.includes(level)) throw new Error(`unknown level "${level}" in "${part}" (use ${LEVELS.join(', ')})`);
    if (name === undefined) defaultLevel = level;
    else if (!/^[a-z0-9_.-]+$/i.test(name)) throw new Error(`bad module name in "${part}"`);
    else modules[name] = level;
  }
  return { defaultLevel, modules };
}

/**
 * Applies filter text to the current filter, as POST /log does: text with a
 * bare level (`info,bpf=debug`) replaces the whole filter; text naming only
 * modules (`link=trace`) changes those modules and leaves the rest as is.
 * Throws like parseLogFilter.
 */
export function applyLogFilterText(current: LogFilter, text: string): LogFilter {
  const next = parseLogFilter(text);
  const hasDefault = text.split(',').some((p) => p.trim() !== '' && !p.includes('='));
  return hasDefault ? next : { defaultLevel: current.defaultLevel, modules: { ...current.modules, ...next.modules } };
}

export function formatLogFilter(f: LogFilter): string {
  return [f.defaultLevel, ...Object.entries(f.modules).map(([m, l]) => `${m}=${l}`)].join(',');
}

/** pino's numeric level for a label (silent = Infinity). */
export function levelValue(level: LevelWithSilent): number {
  return level === 'silent' ? Infinity : pino.levels.values[level] ?? 30;
}

/** The level label for one of pino's numbers (10..60), 'info' when unknown. */
export function levelLabel(value: number): pino.Level {
  return (pino.levels.labels[value] as pino.Level | undefined) ?? 'info';
}

export function moduleLevel(f: LogFilter, module: string | undefined): LevelWithSilent {
  return (module !== undefined ? f.modules[module] : undefined) ?? f.defaultLevel;
}

/** Whether a line of `level` from `module` passes the filter. */
export function filterAllows(f: LogFilter, module: string | undefined, level: pino.Level | number): boolean {
  const v = typeof level === 'number' ? level : levelValue(level);
  return v >= levelValue(moduleLevel(f, module));
}

/** The lower (more verbose) of two levels. */
export function lowerLevel(a: LevelWithSilent, b: LevelWithSilent): LevelWithSilent {
  return levelValue(a) <= levelValue(b) ? a : b;
}

const LEVEL_RE = /"level":(\d+)/;
const MODULE_RE = /"module":"([^"\\]*)"/;

function metaOf(line: string): { level: number; module: string | undefined } {
  const l = LEVEL_RE.exec(line);
  const level = l ? Number(l[1]) : 30;
  return { level: level >= 0 && level <= 255 ? level : 30, module: MODULE_RE.exec(line)?.[1] };
}

/** pino's numeric level and the `module` binding of one serialized line (30 / 'relay' when absent). */
export function lineMeta(line: string): { level: number; module: string } {
  const m = metaOf(line);
  return { level: m.level, module: m.module ?? 'relay' };
}

/**
 * How many lines a remote party (a TURN client, by source address) may cause
 * per second: lines a client can trigger at will (its requests, refusals,
 * bindings) take from its budget and are suppressed, and counted, beyond it.
 * One-second windows; the table is emptied at each window and holds at most
 * maxSources addresses, past which new addresses share one budget, so a
 * spray of sources costs neither memory nor more than one extra budget.
 */
export class LineBudget {
  #window = -1;
  readonly #taken = new Map<string, number>();
  #suppressed = 0;

  constructor(
    readonly perSecond: number,
    readonly maxSources = 4096,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether `source` may log one more line now; false counts a suppressed line. */
  take(source: string): boolean {
    const w = Math.floor(this.now() / 1000);
    if (w !== this.#window) {
      this.#window = w;
      this.#taken.clear();
    }
    const key = this.#taken.has(source) || this.#taken.size < this.maxSources ? source : '';
    const n = (this.#taken.get(key) ?? 0) + 1;
    this.#taken.set(key, n);
    if (n <= this.perSecond) return true;
    this.#suppressed++;
    return false;
  }

  /** Lines suppressed since start (a cumulative counter). */
  get suppressed(): number {
    return this.#suppressed;
  }
}

/**
 * A destination that routes lines itself (the relay's link destination: while
 * the link is open every line goes to the sidecar, which applies both filters
 * there; while it is not, only the lines the local filter wants are printed).
 */
export interface RoutingDestination extends DestinationStream {
  /** `local`: whether the local filter wants this line (else it exists for the stream only). */
  writeRouted(line: string, local: boolean): void;
}

function routes(d: DestinationStream): d is RoutingDestination {
  return typeof (d as Partial<RoutingDestination>).writeRouted === 'function';
}

/**
 * One process's loggers under two independent filters: the local filter
 * (what is printed, TURNPIKE_LOG and POST /log) and the stream filter (what
 * goes to Sentry while `stream-logs` is on; none while off). A line is made
 * when either wants it: each module logger's pino level is the lower of the
 * two, so a level neither wants costs one comparison and no line is built.
 * A line made only for the stream is not printed.
 */
export interface LogHub {
  readonly root: Logger;
  /** The child logger for a module; the same object on every call. */
  get(module: string): Logger;
  /** The local filter. */
  filter(): LogFilter;
  /** Applies a local filter at once to every module logger (existing and future). */
  setFilter(f: LogFilter): void;
  /** The stream filter; undefined while nothing is streamed. */
  streamFilter(): LogFilter | undefined;
  /** Sets (undefined: clears) the stream filter; module loggers follow at once. */
  setStreamFilter(f: LogFilter | undefined): void;
  /** Whether the local filter prints a line of `level` from `module` (a relay line arriving over the link, say). */
  localAllows(module: string | undefined, level: number): boolean;
  /** Called after every change of either filter (e.g. to forward both to the relay). */
  onChange(listener: (f: LogFilter, stream: LogFilter | undefined) => void): () => void;
  /**
   * Writes an already-serialized JSON log line (one object, no newline), such
   * as a relay line arriving over the link, to the same output as the
   * module loggers (pretty-printed too when stdout is a TTY). The caller has
   * checked localAllows.
   */
  writeLine(line: string): void;
  /** The per-source budget of lines remote parties can trigger (see LineBudget). */
  readonly perSource: LineBudget;
}

export interface LogHubOptions {
  filter?: string;
  name?: string;
  destination?: DestinationStream;
  /** Extra base fields (e.g. { process: 'relay' }). */
  base?: Record<string, unknown>;
  /** Lines per second one source address may trigger (default 10). */
  perSourceRate?: number;
}

/** Both filters of a hub as text, as the LOG_FILTER frame carries them (`stream` absent while nothing is streamed). */
export function filterTexts(hub: Pick<LogHub, 'filter' | 'streamFilter'>): { filter: string; stream?: string } {
  const stream = hub.streamFilter();
  return stream ? { filter: formatLogFilter(hub.filter()), stream: formatLogFilter(stream) } : { filter: formatLogFilter(hub.filter()) };
}

/** Where logs go by default: stdout, pretty-printed on a terminal. */
export function stdoutDestination(): DestinationStream {
  // Pretty-printing runs in-process (not as a pino transport, which would be
  // a worker thread): synchronous, so lines interleave in order with relay lines.
  return process.stdout.isTTY === true ? pretty({ colorize: true, sync: true, destination: 1 }) : pino.destination({ dest: 1, sync: false });
}

export const DEFAULT_PER_SOURCE_RATE = 10;

export function createLogHub(opts: LogHubOptions = {}): LogHub {
  let local = parseLogFilter(opts.filter ?? 'info');
  let stream: LogFilter | undefined;
  const dest: DestinationStream = opts.destination ?? stdoutDestination();
  const routed = routes(dest) ? dest : undefined;
  const wantsLine = (line: string) => {
    const m = metaOf(line);
    return filterAllows(local, m.module, m.level);
  };
  // Every line the loggers make passes here. Without a stream filter each
  // line was made for the local filter, so no check is needed.
  const router: DestinationStream = {
    write(line: string) {
      const wanted = stream === undefined || wantsLine(line);
      if (routed) routed.writeRouted(line, wanted);
      else if (wanted) dest.write(line);
    },
  };
  // The root stays at trace so every child may go as low as its filters say.
  const root = pino(
    { level: 'trace', name: opts.name, base: { pid: process.pid, ...opts.base }, timestamp: pino.stdTimeFunctions.isoTime },
    router,
  );
  const children = new Map<string, Logger>();
  const listeners = new Set<(f: LogFilter, s: LogFilter | undefined) => void>();
  const levelFor = (m: string) => (stream ? lowerLevel(moduleLevel(local, m), moduleLevel(stream, m)) : moduleLevel(local, m));
  const changed = () => {
    for (const [m, l] of children) l.level = levelFor(m);
    for (const fn of listeners) {
      try {
        fn(local, stream);
      } catch (err) {
        root.warn({ err }, 'log filter listener failed');
      }
    }
  };
  return {
    root,
    get(module) {
      let l = children.get(module);
      if (!l) {
        l = root.child({ module });
        l.level = levelFor(module);
        children.set(module, l);
      }
      return l;
    },
    filter: () => local,
    setFilter(f) {
      local = f;
      changed();
    },
    streamFilter: () => stream,
    setStreamFilter(f) {
      stream = f;
      changed();
    },
    localAllows: (module, level) => filterAllows(local, module, level),
    onChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    writeLine(line) {
      dest.write(line.endsWith('\n') ? line : line + '\n');
    },
    perSource: new LineBudget(opts.perSourceRate ?? DEFAULT_PER_SOURCE_RATE),
  };
}
