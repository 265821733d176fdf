// Configuration loading: defaults < file (--config PATH or TURNPIKE_CONFIG)
// < environment < CLI flags. A bad value stops start-up with an error that
// names the field, where it came from, and why.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { configSchema, type Config, type RawConfig } from './schema.ts';

/** Field -> environment variable. The first block is the contract in ARCHITECTURE.md. */
export const ENV_NAMES: Readonly<Record<keyof Config, string>> = {
  listenPort: 'TURNPIKE_LISTEN_PORT',
  listenAddresses: 'TURNPIKE_LISTEN_ADDRESSES',
  publicIpv4: 'TURNPIKE_PUBLIC_IPV4',
  publicIpv6: 'TURNPIKE_PUBLIC_IPV6',
  portRange: 'TURNPIKE_PORT_RANGE',
  realm: 'TURNPIKE_REALM',
  users: 'TURNPIKE_USERS',
  restSecret: 'TURNPIKE_REST_SECRET',
  allowedPeers: 'TURNPIKE_ALLOWED_PEERS',
  deniedPeers: 'TURNPIKE_DENIED_PEERS',
  ebpf: 'TURNPIKE_EBPF',
  interface: 'TURNPIKE_INTERFACE',
  xdpMode: 'TURNPIKE_XDP_MODE',
  socket: 'TURNPIKE_SOCKET',
  stateDir: 'TURNPIKE_STATE_DIR',
  admin: 'TURNPIKE_ADMIN',
  log: 'TURNPIKE_LOG',
  posthogKey: 'TURNPIKE_POSTHOG_KEY',
  posthogHost: 'TURNPIKE_POSTHOG_HOST',
  flagsInterval: 'TURNPIKE_FLAGS_INTERVAL',
  sentryDsn: 'TURNPIKE_SENTRY_DSN',
  // additions, documented in the README
  firezoneSecret: 'TURNPIKE_FIREZONE_SECRET',
  defaultLifetime: 'TURNPIKE_DEFAULT_LIFETIME',
  maxLifetime: 'TURNPIKE_MAX_LIFETIME',
  maxAllocations: 'TURNPIKE_MAX_ALLOCATIONS',
  maxAllocationsPerUser: 'TURNPIKE_MAX_ALLOCATIONS_PER_USER',
  unauthRatePerSecond: 'TURNPIKE_UNAUTH_RATE',
  nonceLifetime: 'TURNPIKE_NONCE_LIFETIME',
  software: 'TURNPIKE_SOFTWARE',
  mapCapacity: 'TURNPIKE_MAP_CAPACITY',
  keepPinned: 'TURNPIKE_KEEP_PINNED',
  perfPages: 'TURNPIKE_PERF_PAGES',
  mtu: 'TURNPIKE_MTU',
  relayUser: 'TURNPIKE_RELAY_USER',
  posthogSecretKey: 'TURNPIKE_POSTHOG_SECRET_KEY',
  environment: 'TURNPIKE_ENVIRONMENT',
  otlpEndpoint: 'OTEL_EXPORTER_OTLP_ENDPOINT',
  metricsInterval: 'TURNPIKE_METRICS_INTERVAL',
  // internal (README: internal and development variables)
  relayTransport: 'TURNPIKE_RELAY_TRANSPORT',
  resyncGraceMs: 'TURNPIKE_RESYNC_GRACE_MS',
  relayGid: 'TURNPIKE_RELAY_GID',
  bpfObject: 'TURNPIKE_BPF_OBJECT',
  batchedIo: 'TURNPIKE_BATCHED_IO',
};

/** camelCase field -> --kebab-case flag */
export const flagName = (field: string): string => '--' + field.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

export class ConfigError extends Error {
  readonly code = 'TURNPIKE_CONFIG';
  constructor(
    message: string,
    readonly issues: readonly { field: string; source: string; reason: string }[] = [],
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  argv?: readonly string[]; // without node and script
  env?: NodeJS.ProcessEnv;
  /** Extra defaults a process applies before the layers (e.g. a computed state dir). */
  defaults?: RawConfig;
}

export interface Loaded {
  config: Config;
  configFile: string | undefined;
  /** Field -> where its value came from, for the start-up log. */
  sources: Record<string, string>;
}

function fromEnv(env: NodeJS.ProcessEnv): { raw: RawConfig; sources: Record<string, string> } {
  const raw: RawConfig = {};
  const sources: Record<string, string> = {};
  for (const [field, name] of Object.entries(ENV_NAMES)) {
    let v = env[name];
    if (field === 'otlpEndpoint') v = env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT ?? v;
    if (v !== undefined && v !== '') {
      raw[field] = v;
      sources[field] = `environment ${name}`;
    }
  }
  return { raw, sources };
}

function fromArgv(argv: readonly string[]): { raw: RawConfig; sources: Record<string, string>; configFile?: string } {
  const cmd = new Command('turnpike')
    .exitOverride()
    .allowExcessArguments(false)
    .configureOutput({ writeErr: () => {} })
    .option('--config <path>', 'configuration file (JSON)');
  for (const field of Object.keys(ENV_NAMES)) cmd.option(`${flagName(field)} <value>`);
  try {
    cmd.parse([...argv], { from: 'user' });
  } catch (e) {
    throw new ConfigError(`command line: ${(e as Error).message.replace(/^error: /, '')}`);
  }
  const opts = cmd.opts<Record<string, string>>();
  const raw: RawConfig = {};
  const sources: Record<string, string> = {};
  for (const field of Object.keys(ENV_NAMES)) {
    if (opts[field] !== undefined) {
      raw[field] = opts[field];
      sources[field] = `flag ${flagName(field)}`;
    }
  }
  return { raw, sources, configFile: opts.config };
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

export function loadConfig(opts: LoadOptions = {}): Loaded {
  const env = opts.env ?? process.env;
  const cli = fromArgv(opts.argv ?? process.argv.slice(2));
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
    const lines = issues.map((i) => `  ${i.field} (${i.source}): ${i.reason}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`, issues);
  }
  return { config: result.data, configFile, sources };
}
