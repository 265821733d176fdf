// The one command-line parser, for every entry point (node:util parseArgs): a
// flag per configuration field (--listen-port for listenPort), --config PATH,
// and the entry point's own flags. Values come as `--name VALUE` or
// `--name=VALUE`; a repeated flag keeps its last value. A line it cannot read
// is a ConfigError naming the flag and the reason; the values themselves are
// the schema's to check.
import { parseArgs } from 'node:util';
import type { z } from 'zod';
import { ENV_NAMES } from './env.ts';
import { ConfigError, type ConfigIssue } from './errors.ts';
import type { Config, ConfigLayer } from './schema.ts';

/** camelCase field -> --kebab-case flag */
export const flagName = (field: string): string => '--' + field.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/** A flag of one entry point, beside the configuration's. */
export interface EntryFlag {
  readonly type: 'string' | 'boolean';
  /** Makes the flag another name for this field's flag (the relay's --transport). */
  readonly field?: keyof Config;
  /** Checks and converts the value (undefined when the flag is absent); its message is the reason. */
  readonly schema?: z.ZodType;
}
export type EntryFlags = Readonly<Record<string, EntryFlag>>;

/** An entry point's own flags (aliases are configuration): the schema's output, else as given. */
export type EntryValues<F extends EntryFlags> = {
  -readonly [K in keyof F as F[K] extends { field: string } ? never : K]: F[K] extends { schema: infer S extends z.ZodType }
    ? z.output<S>
    : (F[K]['type'] extends 'boolean' ? boolean : string) | undefined;
};

export interface CommandLine<F extends EntryFlags> extends ConfigLayer {
  readonly configFile: string | undefined;
  readonly own: EntryValues<F>;
  /** The arguments that were configuration flags, as given (for another process). */
  readonly configArgv: string[];
}

interface Known {
  type: 'string' | 'boolean';
  /** The configuration field it sets; none for --config and own flags. */
  field?: string;
}

function knownFlags(entry: EntryFlags): Map<string, Known> {
  const known = new Map<string, Known>();
  for (const field of Object.keys(ENV_NAMES)) known.set(flagName(field).slice(2), { type: 'string', field });
  known.set('config', { type: 'string' });
  for (const [name, f] of Object.entries(entry)) known.set(name, { type: f.type, ...(f.field ? { field: f.field } : {}) });
  return known;
}

export function parseCommandLine<F extends EntryFlags = {}>(argv: readonly string[], entry: F = {} as F): CommandLine<F> {
  const known = knownFlags(entry);
  const { tokens } = parseArgs({
    args: [...argv],
    options: Object.fromEntries([...known].map(([name, k]) => [name, { type: k.type }])),
    // Unknown flags and missing values are reported below, naming the flag.
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const raw: ConfigLayer['raw'] = {};
  const sources: ConfigLayer['sources'] = {};
  const given: Record<string, string | boolean> = {};
  const configArgv: string[] = [];
  let configFile: string | undefined;
  // The first thing the line gets wrong: what follows it is often a consequence.
  const stop = (field: string, source: string, reason: string) => {
    throw ConfigError.of('invalid command line', [{ field, source, reason }]);
  };
  for (const t of tokens) {
    if (t.kind === 'option-terminator') continue;
    if (t.kind === 'positional') return stop(t.value, 'command line', 'unexpected argument (flags are --name VALUE)');
    const k = known.get(t.name);
    if (!k) return stop(t.rawName, 'command line', 'unknown flag');
    const field = k.field ?? t.name;
    const source = `flag ${t.rawName}`;
    if (k.type === 'string' && t.value === undefined) return stop(field, source, 'expects a value');
    // parseArgs takes the next argument as the value even when it is a flag.
    if (k.type === 'string' && !t.inlineValue && t.value!.startsWith('--')) {
      return stop(field, source, `expects a value, not the flag ${t.value} (a value starting with -- goes as ${t.rawName}=VALUE)`);
    }
    if (k.type === 'boolean' && t.inlineValue) return stop(field, source, 'takes no value');
    const value = t.value ?? true;
    if (k.field) {
      raw[k.field] = value;
      sources[k.field] = source;
    } else if (t.name === 'config') configFile = t.value;
    else given[t.name] = value;
    if (!(t.name in entry)) configArgv.push(...argv.slice(t.index, t.index + (t.value === undefined || t.inlineValue ? 1 : 2)));
  }
  const issues: ConfigIssue[] = [];
  const own: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(entry)) {
    if (f.field) continue;
    if (!f.schema) {
      own[name] = given[name];
      continue;
    }
    const r = f.schema.safeParse(given[name]);
    if (r.success) own[name] = r.data;
    else issues.push({ field: name, source: `flag --${name}`, reason: r.error.issues[0]?.message ?? 'invalid' });
  }
  if (issues.length > 0) throw ConfigError.of('invalid command line', issues);
  return { raw, sources, configFile, own: own as EntryValues<F>, configArgv };
}
