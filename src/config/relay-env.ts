// The relay's environment, built from its own settings only. The launcher
// hands the relay this and never its own process.env: Sentry, PostHog and
// OTLP settings (and whatever else the operator's shell holds) stay with the
// sidecar. Values are written in the form the environment layer reads back,
// and the result is read back to prove nothing was lost on the way.
import { ENV_NAMES, fromEnv } from './env.ts';
import { ConfigError } from './errors.ts';
import { configSchema, type Config } from './schema.ts';

/** What the relay process reads: its TURN server's settings, its log filter, where the link is, its lifeline and its stream sockets. */
export const RELAY_FIELDS = [
  'listenPort', 'listenAddresses', 'portRange', 'realm', 'users', 'restSecret', 'firezoneSecret', 'allowedPeers', 'deniedPeers',
  'allowRelayedPeers', 'defaultLifetime', 'maxLifetime', 'maxAllocations', 'maxAllocationsPerUser', 'unauthRatePerSecond',
  'authRatePerSecond', 'rateLimitIpv6Prefix', 'rateLimitSources', 'nonceLifetime', 'maxReservations', 'maxReservationsPerUser',
  'maxPeersPerRequest', 'maxPermissionsPerAllocation', 'maxChannelsPerAllocation', 'maxChannelsPerUser', 'sessionLogRate',
  'software', 'log', 'stateDir', 'socket', 'relayTransport', 'lifelineFd',
  // TURN over TCP and TLS: the relay parses both (certificate files it must be able to read), on sockets the launcher made
  'tcp', 'tlsCert', 'tlsKey', 'tlsPort', 'streamMaxConnections', 'streamMaxConnectionsPerSource', 'streamHandshakeTimeout',
  'streamIdleTimeout', 'streamReadBuffer', 'streamWriteBuffer', 'streamFds',
] as const satisfies readonly (keyof typeof ENV_NAMES)[];
export type RelayField = (typeof RELAY_FIELDS)[number];

/** One setting as environment text (lists comma-joined, `user:pass`, `LOW-HIGH`). */
function envText(value: unknown): string {
  if (Array.isArray(value)) return value.map(envText).join(',');
  if (typeof value === 'object' && value !== null) {
    if ('username' in value && 'password' in value) return `${String(value.username)}:${String(value.password)}`;
    if ('min' in value && 'max' in value) return `${String(value.min)}-${String(value.max)}`;
  }
  return String(value);
}

const nameOf = (field: RelayField): string => {
  const n = ENV_NAMES[field];
  return typeof n === 'string' ? n : n[0]!;
};

/**
 * The relay's whole environment for `config`. Throws ConfigError when a value
 * cannot travel as an environment variable (e.g. a static user's password
 * with a comma, which the list syntax would split).
 */
export function relayEnvironment(config: Config): Record<string, string> {
  const env: Record<string, string> = {};
  for (const field of RELAY_FIELDS) {
    const v = config[field];
    if (v !== undefined) env[nameOf(field)] = envText(v);
  }
  const back = configSchema.safeParse(fromEnv(env).raw);
  const lost = back.success
    ? RELAY_FIELDS.filter((f) => JSON.stringify(back.data[f]) !== JSON.stringify(config[f]))
    : [...new Set(back.error.issues.map((i) => String(i.path[0] ?? '(relay settings)')))];
  if (lost.length > 0) {
    throw ConfigError.of('cannot hand the relay its settings', lost.map((field) => ({ field, source: 'config', reason: 'does not survive the environment syntax (e.g. a comma inside a value)' })));
  }
  return env;
}
