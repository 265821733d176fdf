// pino loggers with one child per module and a runtime filter
// ("info,bpf=debug,link=trace"): a default level plus per-module levels.
// This module only depends on pino, so the relay can use it without pulling
// any telemetry SDK.
import pino, { type Logger, type LevelWithSilent, type DestinationStream } from 'pino';

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

export function formatLogFilter(f: LogFilter): string {
  return [f.defaultLevel, ...Object.entries(f.modules).map(([m, l]) => `${m}=${l}`)].join(',');
}

export interface LogHub {
  readonly root: Logger;
  /** The child logger for a module; the same object on every call. */
  get(module: string): Logger;
  filter(): LogFilter;
  /** Applies a filter at once to every module logger (existing and future). */
  setFilter(f: LogFilter): void;
}

export interface LogHubOptions {
  filter?: string;
  name?: string;
  destination?: DestinationStream;
  /** Extra base fields (e.g. { process: 'relay' }). */
  base?: Record<string, unknown>;
}

export function createLogHub(opts: LogHubOptions = {}): LogHub {
  let current = parseLogFilter(opts.filter ?? 'info');
  const pretty = !opts.destination && process.stdout.isTTY === true;
  const dest =
    opts.destination ??
    (pretty
      ? // eslint-disable-next-line @typescript-eslint/no-require-imports
        pino.transport({ target: 'pino-pretty', options: { colorize: true, sync: true } })
      : pino.destination({ dest: 1, sync: false }));
  // The root stays at trace so every child may go as low as its filter says.
  const root = pino(
    { level: 'trace', name: opts.name, base: { pid: process.pid, ...opts.base }, timestamp: pino.stdTimeFunctions.isoTime },
    dest,
  );
  const children = new Map<string, Logger>();
  const levelFor = (m: string) => current.modules[m] ?? current.defaultLevel;
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
    },
  };
}
