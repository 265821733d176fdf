// Configuration loading: defaults < file (--config PATH or TURNPIKE_CONFIG)
// < environment (env.ts) < command line (args.ts), checked by the one schema.
// A bad value stops start-up with an error that names the field, where it
// came from, and why.
import { readFileSync } from 'node:fs';
import { parseCommandLine, type EntryFlags, type EntryValues } from './args.ts';
import { fromEnv } from './env.ts';
import { ConfigError } from './errors.ts';
import { configSchema, type Config, type RawConfig } from './schema.ts';

export { ConfigError, type ConfigIssue } from './errors.ts';
export { ENV_NAMES } from './env.ts';

export interface LoadOptions<F extends EntryFlags = {}> {
  argv?: readonly string[]; // without node and script
  env?: NodeJS.ProcessEnv;
  /** Extra defaults a process applies before the layers (e.g. a computed state dir). */
  defaults?: RawConfig;
  /** The entry point's own flags, beside the configuration's (args.ts). */
  flags?: F;
}

export interface Loaded<F extends EntryFlags = {}> {
  config: Config;
  configFile: string | undefined;
  /** Field -> where its value came from, for the start-up log. */
  sources: Record<string, string>;
  /** The entry point's own flags. */
  flags: EntryValues<F>;
  /** The arguments that were configuration flags, as given. */
  configArgv: string[];
}

function fromFile(path: string): RawConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`config file ${path}: ${(e as NodeJS.ErrnoException).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${path}: not valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path}: expected a JSON object`);
  }
  const { $schema: _ignored, ...rest } = parsed as Record<string, unknown>;
  return rest;
}

export function loadConfig<F extends EntryFlags = {}>(opts: LoadOptions<F> = {}): Loaded<F> {
  const env = opts.env ?? process.env;
  const cli = parseCommandLine(opts.argv ?? process.argv.slice(2), opts.flags ?? ({} as F));
  const configFile = cli.configFile ?? (env.TURNPIKE_CONFIG || undefined);
  const file = configFile ? fromFile(configFile) : {};
  const envLayer = fromEnv(env);
  const sources: Record<string, string> = {};
  for (const k of Object.keys(file)) sources[k] = `config file ${configFile}`;
  Object.assign(sources, envLayer.sources, cli.sources);
  const raw = { ...opts.defaults, ...file, ...envLayer.raw, ...cli.raw };

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issues = result.error.issues.map((i) => {
      const field = i.path.length > 0 ? i.path.join('.') : '(config)';
      const top = String(i.path[0] ?? '');
      const source = sources[top] ?? (top in (opts.defaults ?? {}) ? 'default' : 'config');
      const reason = i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message;
      return { field, source, reason };
    });
    throw ConfigError.of('invalid configuration', issues);
  }
  return { config: result.data, configFile, sources, flags: cli.own, configArgv: cli.configArgv };
}
