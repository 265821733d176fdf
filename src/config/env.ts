// The environment layer: one variable per configuration field, and the
// TURNPIKE_FLAG_* family of feature flag overrides. Empty variables count as
// unset.
import { FLAG_OVERRIDE_KEY, type Config, type ConfigLayer } from './schema.ts';

/**
 * Field -> environment variable; where a field has several, the first one set
 * wins. The first block is the contract in ARCHITECTURE.md. Every field has
 * one except flagOverrides, a family of variables (FLAG_ENV_PREFIX).
 */
export const ENV_NAMES: Readonly<Record<Exclude<keyof Config, 'flagOverrides'>, string | readonly string[]>> = {
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
  maxPeersPerRequest: 'TURNPIKE_MAX_PEERS_PER_REQUEST',
  maxPermissionsPerAllocation: 'TURNPIKE_MAX_PERMISSIONS_PER_ALLOCATION',
  maxChannelsPerAllocation: 'TURNPIKE_MAX_CHANNELS_PER_ALLOCATION',
  maxChannelsPerUser: 'TURNPIKE_MAX_CHANNELS_PER_USER',
  maxReservations: 'TURNPIKE_MAX_RESERVATIONS',
  maxReservationsPerUser: 'TURNPIKE_MAX_RESERVATIONS_PER_USER',
  unauthRatePerSecond: 'TURNPIKE_UNAUTH_RATE',
  authRatePerSecond: 'TURNPIKE_AUTH_RATE',
  rateLimitIpv6Prefix: 'TURNPIKE_RATE_LIMIT_IPV6_PREFIX',
  rateLimitSources: 'TURNPIKE_RATE_LIMIT_SOURCES',
  allowRelayedPeers: 'TURNPIKE_ALLOW_RELAYED_PEERS',
  nonceLifetime: 'TURNPIKE_NONCE_LIFETIME',
  software: 'TURNPIKE_SOFTWARE',
  tcp: 'TURNPIKE_TCP',
  tlsCert: 'TURNPIKE_TLS_CERT',
  tlsKey: 'TURNPIKE_TLS_KEY',
  tlsPort: 'TURNPIKE_TLS_PORT',
  streamMaxConnections: 'TURNPIKE_STREAM_MAX_CONNECTIONS',
  streamMaxConnectionsPerSource: 'TURNPIKE_STREAM_MAX_CONNECTIONS_PER_SOURCE',
  streamHandshakeTimeout: 'TURNPIKE_STREAM_HANDSHAKE_TIMEOUT',
  streamIdleTimeout: 'TURNPIKE_STREAM_IDLE_TIMEOUT',
  streamReadBuffer: 'TURNPIKE_STREAM_READ_BUFFER',
  streamWriteBuffer: 'TURNPIKE_STREAM_WRITE_BUFFER',
  mapCapacity: 'TURNPIKE_MAP_CAPACITY',
  keepPinned: 'TURNPIKE_KEEP_PINNED',
  perfPages: 'TURNPIKE_PERF_PAGES',
  mtu: 'TURNPIKE_MTU',
  relayUser: 'TURNPIKE_RELAY_USER',
  linkControlRate: 'TURNPIKE_LINK_CONTROL_RATE',
  relayGraceMs: 'TURNPIKE_RELAY_GRACE_MS',
  alternateServer: 'TURNPIKE_ALTERNATE_SERVER',
  drainDeadline: 'TURNPIKE_DRAIN_DEADLINE',
  restartLimit: 'TURNPIKE_RESTART_LIMIT',
  warmStandby: 'TURNPIKE_WARM_STANDBY',
  posthogSecretKey: 'TURNPIKE_POSTHOG_SECRET_KEY',
  environment: 'TURNPIKE_ENVIRONMENT',
  pool: 'TURNPIKE_POOL',
  sessionLogRate: 'TURNPIKE_SESSION_LOG_RATE',
  // the standard OTel variables: the metrics-specific one before the general one, as the OTel SDK reads them
  otlpEndpoint: ['OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT'],
  metricsInterval: 'TURNPIKE_METRICS_INTERVAL',
  // internal (README: internal and development variables)
  relayTransport: 'TURNPIKE_RELAY_TRANSPORT',
  resyncGraceMs: 'TURNPIKE_RESYNC_GRACE_MS',
  relayGid: 'TURNPIKE_RELAY_GID',
  relayUid: 'TURNPIKE_RELAY_UID',
  lifelineFd: 'TURNPIKE_LIFELINE_FD',
  awaitGo: 'TURNPIKE_AWAIT_GO',
  bpfObject: 'TURNPIKE_BPF_OBJECT',
  batchedIo: 'TURNPIKE_BATCHED_IO',
  udpGso: 'TURNPIKE_UDP_GSO',
  schedSliceUs: 'TURNPIKE_SCHED_SLICE_US',
  sentryFlushMs: 'TURNPIKE_SENTRY_FLUSH_MS',
  streamFds: 'TURNPIKE_STREAM_FDS',
};

/** `TURNPIKE_FLAG_<NAME>` and `TURNPIKE_FLAG_<NAME>_PAYLOAD` land in flagOverrides under `<NAME>` and `<NAME>_PAYLOAD`. */
export const FLAG_ENV_PREFIX = 'TURNPIKE_FLAG_';

/** A feature flag's key in flagOverrides: `stream-logs` -> `STREAM_LOGS` (its variable is FLAG_ENV_PREFIX + key). */
export const flagOverrideKey = (flag: string): string => flag.toUpperCase().replace(/[^A-Z0-9]/g, '_');

export function fromEnv(env: NodeJS.ProcessEnv): ConfigLayer {
  const raw: ConfigLayer['raw'] = {};
  const sources: ConfigLayer['sources'] = {};
  const set = (v: string | undefined) => v !== undefined && v !== '';
  for (const [field, names] of Object.entries(ENV_NAMES)) {
    const name = (typeof names === 'string' ? [names] : names).find((n) => set(env[n]));
    if (name === undefined) continue;
    raw[field] = env[name];
    sources[field] = `environment ${name}`;
  }
  // Only names flagOverrideKey can produce: TURNPIKE_FLAG_stream_logs names no flag.
  const overrides = Object.entries(env).filter(
    ([name, v]) => name.startsWith(FLAG_ENV_PREFIX) && FLAG_OVERRIDE_KEY.test(name.slice(FLAG_ENV_PREFIX.length)) && set(v),
  );
  if (overrides.length > 0) {
    raw.flagOverrides = Object.fromEntries(overrides.map(([name, v]) => [name.slice(FLAG_ENV_PREFIX.length), v]));
    sources.flagOverrides = `environment ${FLAG_ENV_PREFIX}*`;
  }
  return { raw, sources };
}
