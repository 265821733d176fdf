// The one configuration schema. Every layer (defaults, file, environment, CLI)
// produces a raw object of this shape, with strings allowed wherever an
// operator would type a list or range; the schema parses and checks it.
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseCidr } from '../shared/cidr.ts';

const port = z.coerce.number().int().min(1, 'must be 1-65535').max(65535, 'must be 1-65535');
const positiveInt = z.coerce.number().int().positive();

const ip = (family: 4 | 6 | 0) =>
  z.string().trim().refine((s) => (family === 0 ? isIP(s) !== 0 : isIP(s) === family), {
    message: family === 0 ? 'not an IP address' : `not an IPv${family} address`,
  });

/** `a,b,c` or an array -> string[]; empty strings dropped. */
const list = <T extends z.ZodType>(item: T) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s.length > 0) : v),
    z.array(item),
  );

const cidr = z.string().trim().superRefine((s, ctx) => {
  try {
    parseCidr(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
  }
});

const user = z.preprocess(
  (v) => {
    if (typeof v !== 'string') return v;
    const i = v.indexOf(':');
    return i < 0 ? { username: v } : { username: v.slice(0, i), password: v.slice(i + 1) };
  },
  z.object({
    username: z.string().min(1, 'empty user name'),
    password: z.string({ error: 'expected user:password' }).min(1, 'empty password'),
  }),
);

const portRange = z
  .preprocess(
    (v) => {
      if (typeof v !== 'string') return v;
      const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(v);
      return m ? { min: m[1], max: m[2] } : v;
    },
    z.object({ min: port, max: port }, { error: 'expected LOW-HIGH, e.g. 49152-65535' }),
  )
  .refine((r) => r.min <= r.max, { message: 'LOW must not be above HIGH' });

const hostPort = z.string().trim().transform((s, ctx) => {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(s);
  const p = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || isIP(m[1]) === 0 || !(p >= 0 && p <= 65535)) {
    ctx.addIssue({ code: 'custom', message: 'expected HOST:PORT with an IP address, e.g. 127.0.0.1:9469' });
    return z.NEVER;
  }
  return { host: m[1], port: p };
});

/** A collector URL; a bare HOST:PORT gets http:// (the exporter wants a URL). */
const otlpUrl = z
  .string()
  .min(1)
  .transform((s) => (/^[a-z]+:\/\//i.test(s) ? s : `http://${s}`));

/** A key of flagOverrides: a flag's name in capitals, `-` as `_` (STREAM_LOGS). */
export const FLAG_OVERRIDE_KEY = /^[A-Z0-9_]+$/;

/** One inherited listening socket: `tcp:0.0.0.0:3478=4`, `tls:[::]:5349=5`. */
export const STREAM_FD = /^(tcp|tls):(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d+)=(\d+)$/;

const bool = z.preprocess((v) => (v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v), z.boolean());

export const configSchema = z
  .object({
    listenPort: port.default(3478),
    listenAddresses: list(ip(0)).default(['0.0.0.0', '::']),
    publicIpv4: ip(4).optional(),
    publicIpv6: ip(6).optional(),
    portRange: portRange.default({ min: 49152, max: 65535 }),
    realm: z.string().trim().min(1).default('turnpike'),
    users: list(user).default([]),
    restSecret: z.string().min(8, 'must be at least 8 characters').optional(),
    firezoneSecret: z.string().min(8, 'must be at least 8 characters').optional(),
    allowedPeers: list(cidr).default([]),
    deniedPeers: list(cidr).default([]),
    defaultLifetime: positiveInt.max(3600).default(600),
    maxLifetime: positiveInt.max(86400).default(3600),
    maxAllocations: positiveInt.default(100_000),
    maxAllocationsPerUser: positiveInt.default(100),
    // Limits on state per request, allocation and user (relay/server/limits.ts)
    maxPeersPerRequest: positiveInt.default(100),
    maxPermissionsPerAllocation: positiveInt.default(1_000),
    maxChannelsPerAllocation: positiveInt.default(1_000),
    maxChannelsPerUser: positiveInt.default(4_096),
    maxReservations: positiveInt.default(4_096),
    maxReservationsPerUser: positiveInt.default(50),
    unauthRatePerSecond: positiveInt.default(50),
    // A source (IPv4 address, IPv6 prefix) behind which one host runs many
    // allocations, or many users share a NAT, must stay well inside this.
    authRatePerSecond: positiveInt.default(200),
    rateLimitIpv6Prefix: z.coerce.number().int().min(1).max(128).default(64),
    rateLimitSources: positiveInt.max(8_388_608).default(65_536),
    /** Let allocations on this relay be each other's peers (two relay-only WebRTC clients on one server). */
    allowRelayedPeers: bool.default(false),
    nonceLifetime: positiveInt.default(3600),
    software: z.string().default('turnpike'),
    // TURN over TCP and TLS (RFC 8656 §3.1; relay/transport/stream-*.ts)
    /** TURN over TCP on the listen port. */
    tcp: bool.default(true),
    /** PEM certificate (chains accepted) and key: both set turn TLS on, on tlsPort. Reloaded when the files change. */
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    tlsPort: port.default(5349),
    streamMaxConnections: positiveInt.default(10_000),
    streamMaxConnectionsPerSource: positiveInt.default(100),
    /** Seconds to finish the TLS handshake and the first message, and to complete any message once started. */
    streamHandshakeTimeout: positiveInt.max(600).default(10),
    /** Seconds without a byte from a client before its connection (and allocation) closes. */
    streamIdleTimeout: positiveInt.default(600),
    /** The largest message a stream client may send, bytes (its read buffer); the default fits any STUN message or ChannelData. */
    streamReadBuffer: positiveInt.min(1024).max(1 << 20).default(65_556),
    /** Bytes queued to a client that does not read before further messages to it are dropped. */
    streamWriteBuffer: positiveInt.min(4096).default(1 << 20),

    ebpf: z.enum(['off', 'auto', 'required']).default('auto'),
    interface: z.string().trim().min(1).optional(),
    xdpMode: z.enum(['native', 'skb']).default('native'),
    mapCapacity: positiveInt.max(8_388_608).default(65_536),
    keepPinned: bool.default(false),
    perfPages: positiveInt.default(8),
    mtu: positiveInt.min(576).max(9000).default(1500),

    socket: z.string().min(1).optional(),
    stateDir: z.string().min(1).optional(),
    /** The relay's own system user (scripts/setup.sh creates turnpike-relay); the sidecar admits only it on the link. */
    relayUser: z.string().min(1).default('turnpike-relay'),
    /** Control frames per second the sidecar accepts from the relay (burst: two seconds' worth); beyond, the link is closed. */
    linkControlRate: positiveInt.default(20_000),
    /** How long the sidecar keeps a departed relay's ports, bindings and state for its return (0: cleared at once). */
    relayGraceMs: z.coerce.number().int().min(0).default(30_000),
    /** Where a draining relay sends new Allocates (300 Try Alternate with ALTERNATE-SERVER); unset: they get 508. */
    alternateServer: hostPort.optional(),
    /** Seconds a drain serves existing allocations before the sidecar stops; 0: SIGTERM stops at once (POST /drain then waits for the allocations to end). */
    drainDeadline: z.coerce.number().int().min(0).default(0),
    /** Restarts in a row of a child that ran under 30 s before the launcher gives up (exit 1). */
    restartLimit: z.coerce.number().int().min(0).default(5),
    /** `npm start` keeps a loaded, idle spare of each child, started in place of one that exits (restart without Node's start-up). */
    warmStandby: bool.default(true),
    admin: hostPort.default({ host: '127.0.0.1', port: 9469 }),
    log: z.string().default('info'),
    /** Session log lines (debug) one client address may cause per second; more are suppressed and counted. */
    sessionLogRate: positiveInt.default(10),

    posthogKey: z.string().min(1).optional(),
    posthogHost: z.url().optional(),
    posthogSecretKey: z.string().min(1).optional(),
    flagsInterval: positiveInt.default(60),
    /**
     * Feature flags forced on or off, whatever PostHog says: TURNPIKE_FLAG_<NAME>
     * and TURNPIKE_FLAG_<NAME>_PAYLOAD, keyed by what follows the prefix
     * (STREAM_LOGS, STREAM_LOGS_PAYLOAD). Values stay text: telemetry/flags.ts
     * reads them, and warns about and ignores one that is not a boolean (a bad
     * override must not stop the pair).
     */
    flagOverrides: z.record(z.string().regex(FLAG_OVERRIDE_KEY, 'expected NAME in capitals, as in TURNPIKE_FLAG_NAME'), z.string()).optional(),
    sentryDsn: z.url().optional(),
    environment: z.string().default('production'),
    /** Region or pool of this relay (e.g. eu-west-1a): a PostHog person property flags can target. */
    pool: z.string().trim().min(1).optional(),
    otlpEndpoint: otlpUrl.optional(),
    metricsInterval: positiveInt.default(15),

    // ---- internal: set by the launcher, tests and development, not by operators
    /** The relay's transport: standalone (own sockets) or sidecar (over the link). */
    relayTransport: z.enum(['standalone', 'sidecar'], { error: 'expected standalone or sidecar' }).default('standalone'),
    /** How long pinned bindings from an earlier sidecar wait for the relay's re-announce. */
    resyncGraceMs: positiveInt.default(15_000),
    /** Group that may connect to the link socket (the launcher's relay group). */
    relayGid: z.coerce.number().int().min(0).optional(),
    /** The relay's uid as the launcher resolved relayUser (the sidecar's link admits it); unset: resolved from relayUser. */
    relayUid: z.coerce.number().int().min(0).optional(),
    /** A pipe from the launcher (its fd in this process): when it closes, the launcher is gone and this child stops. */
    lifelineFd: z.coerce.number().int().min(3).optional(),
    /** A warm standby: load, then wait for the launcher's go on the lifeline before starting (src/cmd/lifeline.ts). */
    awaitGo: bool.default(false),
    /** A different XDP object (a debug build of bpf/turn_router.o). */
    bpfObject: z.string().min(1).optional(),
    /** sendmmsg/recvmmsg batching in the sidecar: auto (where koffi and the platform allow) or off. */
    batchedIo: z.enum(['auto', 'off']).default('auto'),
    /** UDP GSO (UDP_SEGMENT) for the sidecar's batched sends: auto (where the kernel has it) or off. */
    udpGso: z.enum(['auto', 'off']).default('auto'),
    /**
     * Scheduler slice the sidecar's event loop asks for, in µs (src/cmd/sched-slice.ts):
     * a short one lets it preempt sooner when a datagram wakes it; 0 keeps the kernel's default.
     */
    schedSliceUs: z.coerce
      .number()
      .int('must be a whole number of µs')
      .refine((v) => v === 0 || (v >= 100 && v <= 100_000), 'must be 0 (the kernel default) or 100-100000 µs')
      .default(100),
    /** Idle flush of log lines buffered for Sentry, in ms; unset: the SDK's (5000). */
    sentryFlushMs: positiveInt.optional(),
    /**
     * Listening TCP sockets the launcher made for the relay and passed down
     * as inherited descriptors: `TRANSPORT:HOST:PORT=FD` (tcp:0.0.0.0:3478=4,
     * tls:[::]:5349=5); relay/transport/stream-sockets.ts reads them.
     */
    streamFds: list(z.string().regex(STREAM_FD, 'expected tcp|tls:HOST:PORT=FD')).optional(),
  })
  .strict()
  .refine((c) => c.defaultLifetime <= c.maxLifetime, {
    path: ['defaultLifetime'],
    message: 'must not exceed maxLifetime',
  })
  .refine((c) => (c.tlsCert === undefined) === (c.tlsKey === undefined), {
    path: ['tlsCert'],
    message: 'TLS needs both a certificate and a key',
  })
  .refine((c) => c.listenPort < c.portRange.min || c.listenPort > c.portRange.max, {
    path: ['listenPort'],
    message: 'must lie outside portRange',
  });

export type Config = z.output<typeof configSchema>;
export type RawConfig = Record<string, unknown>;

/** One layer of raw values (file, environment, command line) and, per field, where its value came from. */
export interface ConfigLayer {
  raw: RawConfig;
  sources: Record<string, string>;
}
