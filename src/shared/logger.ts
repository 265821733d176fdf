// pino loggers with one child per module and a runtime filter
// ("info,bpf=debug,link=trace"): a default level plus per-module levels.
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

export interface LogHub {
  readonly root: Logger;
  /** The child logger for a module; the same object on every call. */
  get(module: string): Logger;
  filter(): LogFilter;
  /** Applies a filter at once to every module logger (existing and future). */
  setFilter(f: LogFilter): void;
  /** Called after every setFilter (e.g. to forward the filter to the relay). */
  onChange(listener: (f: LogFilter) => void): () => void;
  /**
   * Writes an already-serialized JSON log line (one object, no newline), such
   * as a relay line arriving over the link, to the same output as the
   * module loggers (pretty-printed too when stdout is a TTY).
   */
  writeLine(line: string): void;
}

export interface LogHubOptions {
  filter?: string;
  name?: string;
  destination?: DestinationStream;
  /** Extra base fields (e.g. { process: 'relay' }). */
  base?: Record<string, unknown>;
}

/** Where logs go by default: stdout, pretty-printed on a terminal. */
export function stdoutDestination(): DestinationStream {
  // Pretty-printing runs in-process (not as a pino transport, which would be
  // a worker thread): synchronous, so lines interleave in order with relay lines.
  return process.stdout.isTTY === true ? pretty({ colorize: true, sync: true, destination: 1 }) : pino.destination({ dest: 1, sync: false });
}

export function createLogHub(opts: LogHubOptions = {}): LogHub {
  let current = parseLogFilter(opts.filter ?? 'info');
  const dest: DestinationStream = opts.destination ?? stdoutDestination();
  // The root stays at trace so every child may go as low as its filter says.
  const root = pino(
    { level: 'trace', name: opts.name, base: { pid: process.pid, ...opts.base }, timestamp: pino.stdTimeFunctions.isoTime },
    dest,
  );
  const children = new Map<string, Logger>();
  const listeners = new Set<(f: LogFilter) => void>();
  const levelFor = (m: string) => moduleLevel(current, m);
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
    filter: () => current,
    setFilter(f) {
      current = f;
      for (const [m, l] of children) l.level = levelFor(m);
      for (const fn of listeners) {
        try {
          fn(f);
        } catch (err) {
          root.warn({ err }, 'log filter listener failed');
        }
      }
    },
    onChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    writeLine(line) {
      dest.write(line.endsWith('\n') ? line : line + '\n');
    },
  };
}
