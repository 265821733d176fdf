// Builds a TurnServer's options from the loaded Config: credential sources,
// peer policy, rate limiter, nonce key, randomness. Shared by every transport
// (standalone and sidecar) so the two run the same server.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { relaySelfOf } from '../shared/peer-policy.ts';
import { createCredentialChain, createFirezoneCredentials, createRestCredentials, createStaticCredentials, type CredentialSource } from './auth/index.ts';
import { createPeerPolicy, createRateLimiter } from './policy/index.ts';
import type { TurnServerOptions } from './server/options.ts';

export type ServerConfig = Pick<
  Config,
  | 'realm' | 'software' | 'listenPort' | 'listenAddresses' | 'portRange' | 'users' | 'restSecret' | 'firezoneSecret'
  | 'allowedPeers' | 'deniedPeers' | 'defaultLifetime' | 'maxLifetime' | 'maxAllocations'
  | 'maxAllocationsPerUser' | 'unauthRatePerSecond' | 'nonceLifetime'
  | 'authRatePerSecond' | 'rateLimitIpv6Prefix' | 'rateLimitSources'
  | 'maxReservations' | 'maxReservationsPerUser' | 'maxPeersPerRequest'
  | 'maxPermissionsPerAllocation' | 'maxChannelsPerAllocation' | 'maxChannelsPerUser'
> & Partial<Pick<Config, 'allowRelayedPeers'>>;

/** Labels of the configured credential sources, for the start-up log (no secrets). */
export function authSources(config: Pick<Config, 'users' | 'restSecret' | 'firezoneSecret'>): string[] {
  const out: string[] = [];
  if (config.users.length > 0) out.push(`static users (${config.users.length})`);
  if (config.restSecret) out.push('TURN REST secret');
  if (config.firezoneSecret) out.push('Firezone secret');
  return out;
}

export function buildCredentials(config: Pick<Config, 'users' | 'restSecret' | 'firezoneSecret'>): CredentialSource {
  const sources: CredentialSource[] = [];
  if (config.users.length > 0) sources.push(createStaticCredentials(config.users.map((u) => [u.username, u.password] as const)));
  if (config.restSecret) sources.push(createRestCredentials(config.restSecret));
  if (config.firezoneSecret) sources.push(createFirezoneCredentials(config.firezoneSecret));
  return createCredentialChain(sources);
}

/**
 * The relay's own transport addresses, which the peer policy refuses: the
 * listen port and the allocation port range on every listen address and
 * relayed address. A wildcard listen address stands for every address of its
 * family on this host (`interfaces`, os.networkInterfaces() by default).
 */
/** The relay's own transport addresses for the peer policy (see shared/peer-policy.ts relaySelfOf). */
export const relaySelf = relaySelfOf;

export interface BuildOptions {
  /** Relayed address per family; a missing family answers 440. */
  readonly relayAddresses: { readonly v4?: string | undefined; readonly v6?: string | undefined };
  readonly logger?: Logger;
  /** Nonce signing key; random per process by default (a restart costs clients one 438 round trip). */
  readonly nonceSecret?: Uint8Array;
  /**
   * Highest channel number accepted. Default 0x7FFF: RFC 5766 clients (coturn's
   * turnutils_uclient, several WebRTC stacks) pick channels in 0x4000-0x7FFF,
   * and refusing them with 400 breaks those clients; RFC 8656 narrowed it to 0x4FFF.
   */
  readonly maxChannel?: number;
  /** Session lines at debug (the `session` module's logger and the hub's per-source budget). */
  readonly sessionLog?: TurnServerOptions['sessionLog'];
}

/** A per-source limiter with a burst of two seconds' worth (a client's challenge round trip and retries, a start-up's allocations). */
function sourceLimiter(config: Pick<Config, 'rateLimitIpv6Prefix' | 'rateLimitSources'>, perSecond: number) {
  return createRateLimiter({ perSecond, burst: perSecond * 2, maxEntries: config.rateLimitSources, ipv6Prefix: config.rateLimitIpv6Prefix });
}

export function buildServerOptions(config: ServerConfig, opts: BuildOptions): TurnServerOptions {
  const relayAddresses: { v4?: string; v6?: string } = {};
  if (opts.relayAddresses.v4) relayAddresses.v4 = opts.relayAddresses.v4;
  if (opts.relayAddresses.v6) relayAddresses.v6 = opts.relayAddresses.v6;
  return {
    realm: config.realm,
    software: config.software,
    listenPort: config.listenPort,
    relayAddresses,
    portRange: config.portRange,
    defaultLifetime: config.defaultLifetime,
    maxLifetime: config.maxLifetime,
    maxAllocations: config.maxAllocations,
    maxAllocationsPerUser: config.maxAllocationsPerUser,
    maxReservations: config.maxReservations,
    maxReservationsPerUser: config.maxReservationsPerUser,
    maxPeersPerRequest: config.maxPeersPerRequest,
    maxPermissionsPerAllocation: config.maxPermissionsPerAllocation,
    maxChannelsPerAllocation: config.maxChannelsPerAllocation,
    maxChannelsPerUser: config.maxChannelsPerUser,
    credentials: buildCredentials(config),
    peerPolicy: createPeerPolicy({ allowed: config.allowedPeers, denied: config.deniedPeers, relay: relaySelf(config, opts.relayAddresses) }),
    rateLimits: {
      unauthenticated: sourceLimiter(config, config.unauthRatePerSecond),
      authenticated: sourceLimiter(config, config.authRatePerSecond),
    },
    // Credential expiries and nonces are unix times; the transports' `now` is monotonic.
    wallClock: Date.now,
    nonce: { secret: opts.nonceSecret ?? randomBytes(32), ttlSeconds: config.nonceLifetime },
    random: (n) => randomBytes(n),
    maxChannel: opts.maxChannel ?? 0x7fff,
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.sessionLog ? { sessionLog: opts.sessionLog } : {}),
  };
}
