// Defaults that serve on a fresh machine: which address to announce as the
// relayed address when none is configured, and which credentials to require
// when none are configured (a generated TURN REST secret kept in the state
// directory, never an open relay).
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { familyOf, isLinkLocalV6, isWildcard, type Family } from '../shared/endpoint.ts';

/** Documentation prefixes (RFC 5737 / RFC 3849): routable by the default route, never answered. */
const PROBE: Readonly<Record<Family, string>> = { 4: '192.0.2.1', 6: '2001:db8::1' };

export type RouteProbe =
  | { readonly ok: true; readonly address: string }
  | { readonly ok: false; readonly noRoute: boolean; readonly error: string };

/**
 * The source address the kernel would pick for traffic leaving by the default
 * route: `connect()` on a UDP socket selects a route and a source address
 * without sending anything.
 */
export function probeDefaultRoute(family: Family, target = PROBE[family]): Promise<RouteProbe> {
  return new Promise((resolve) => {
    const sock = createSocket({ type: family === 4 ? 'udp4' : 'udp6' });
    const done = (r: RouteProbe) => {
      try {
        sock.close();
      } catch {
        // already closed
      }
      resolve(r);
    };
    sock.on('error', (e: NodeJS.ErrnoException) =>
      done({ ok: false, noRoute: e.code === 'ENETUNREACH' || e.code === 'EHOSTUNREACH' || e.code === 'EADDRNOTAVAIL', error: e.code ?? e.message }),
    );
    sock.connect(9, target, () => {
      const address = sock.address().address;
      if (address === '0.0.0.0' || address === '::') done({ ok: false, noRoute: false, error: 'unspecified source address' });
      else done({ ok: true, address });
    });
  });
}

/** First non-internal, non-link-local interface address of a family. */
export function firstInterfaceAddress(family: Family, ifaces = networkInterfaces()): string | undefined {
  for (const list of Object.values(ifaces)) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (family === 4 && a.family === 'IPv4') return a.address;
      if (family === 6 && a.family === 'IPv6' && !isLinkLocalV6(a.address)) return a.address;
    }
  }
  return undefined;
}

export interface RelayAddressChoice {
  readonly address: string | undefined;
  /** How it was chosen, for the start-up log. */
  readonly source: 'configured' | 'listen-address' | 'default-route' | 'interface' | 'unavailable';
  readonly reason?: string;
}


/**
 * The relayed address announced for one family. Precedence: configured public
 * address > a specific (non-wildcard) listen address of the family > the
 * default route's source address > the first interface address (only when the
 * route probe failed for a reason other than "no route") > unavailable (the
 * server answers 440 for that family).
 */
export async function chooseRelayAddress(
  config: Pick<Config, 'publicIpv4' | 'publicIpv6' | 'listenAddresses'>,
  family: Family,
  probe: (f: Family) => Promise<RouteProbe> = probeDefaultRoute,
  ifaceAddress: (f: Family) => string | undefined = firstInterfaceAddress,
): Promise<RelayAddressChoice> {
  const configured = family === 4 ? config.publicIpv4 : config.publicIpv6;
  if (configured) return { address: configured, source: 'configured' };
  const specific = config.listenAddresses.find((a) => !isWildcard(a) && familyOf(a) === family);
  if (specific) return { address: specific, source: 'listen-address' };
  const r = await probe(family);
  if (r.ok) return { address: r.address, source: 'default-route' };
  if (r.noRoute) return { address: undefined, source: 'unavailable', reason: `no route (${r.error})` };
  const fallback = ifaceAddress(family);
  if (fallback) return { address: fallback, source: 'interface', reason: `route probe failed (${r.error})` };
  return { address: undefined, source: 'unavailable', reason: `route probe failed (${r.error}) and no interface address` };
}

export interface RelayAddresses {
  readonly v4: RelayAddressChoice;
  readonly v6: RelayAddressChoice;
}

export async function chooseRelayAddresses(
  config: Pick<Config, 'publicIpv4' | 'publicIpv6' | 'listenAddresses'>,
  log?: Logger,
): Promise<RelayAddresses> {
  const [v4, v6] = await Promise.all([chooseRelayAddress(config, 4), chooseRelayAddress(config, 6)]);
  for (const [family, c] of [[4, v4], [6, v6]] as const) {
    if (c.source === 'unavailable') {
      log?.warn({ family, reason: c.reason }, `no IPv${family} relay address: IPv${family} allocations are refused (440); set TURNPIKE_PUBLIC_IPV${family} to enable`);
    } else if (c.source === 'interface') {
      log?.warn({ family, address: c.address, reason: c.reason }, 'relay address taken from an interface; set TURNPIKE_PUBLIC_IPV' + family + ' if it is wrong');
    }
  }
  return { v4, v6 };
}

export const SECRET_FILE = 'rest-secret';

export interface CredentialSettlement {
  /** The REST secret read from or created in the state directory, when no credentials were configured. */
  readonly generatedSecret: string | undefined;
  readonly created: boolean;
  readonly secretFile: string | undefined;
}

export function hasConfiguredCredentials(config: Pick<Config, 'users' | 'restSecret' | 'firezoneSecret'>): boolean {
  return config.users.length > 0 || !!config.restSecret || !!config.firezoneSecret;
}

/**
 * With no users, REST secret or Firezone secret configured, require a REST
 * credential whose secret lives in `<stateDir>/rest-secret` (0600), created on
 * first start and reused afterwards. Throws only on file-system errors.
 */
export function ensureCredentials(
  config: Pick<Config, 'users' | 'restSecret' | 'firezoneSecret'> & Partial<Pick<Config, 'listenPort' | 'listenAddresses'>>,
  dir: string,
  log?: Logger,
  /** Where the plain how-to-connect hint goes (stderr by default; tests collect it). */
  hint: (text: string) => void = (t) => process.stderr.write(t),
): CredentialSettlement {
  if (hasConfiguredCredentials(config)) return { generatedSecret: undefined, created: false, secretFile: undefined };
  const file = join(dir, SECRET_FILE);
  let secret: string | undefined;
  try {
    secret = readFileSync(file, 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  // A truncated or hand-emptied file is replaced rather than accepted as a weak secret.
  if (secret !== undefined && secret.length >= 16) {
    chmodSync(file, 0o600);
    log?.info({ secretFile: file }, 'no credentials configured: using the TURN REST secret in the state directory');
    hint(credentialHint(file, hintHost(config), config.listenPort ?? 3478));
    return { generatedSecret: secret, created: false, secretFile: file };
  }
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  secret = randomBytes(32).toString('base64url');
  writeFileSync(file, secret + '\n', { mode: 0o600 });
  chmodSync(file, 0o600); // writeFileSync's mode applies only when it creates the file
  log?.warn({ secretFile: file }, 'no credentials configured: created a TURN REST secret (the relay is not open)');
  hint(credentialHint(file, hintHost(config), config.listenPort ?? 3478));
  return { generatedSecret: secret, created: true, secretFile: file };
}

function hintHost(config: Partial<Pick<Config, 'listenAddresses'>>): string {
  const specific = (config.listenAddresses ?? []).find((a) => !isWildcard(a));
  return specific ?? '127.0.0.1';
}

/** The plain hint printed at start-up when the generated secret is in use. */
export function credentialHint(secretFile: string, host: string, port: number): string {
  return [
    `turnpike: no credentials were configured, so clients need a TURN REST credential`,
    `  signed with the secret in ${secretFile}. Mint one with:`,
    `    npx tsx src/cmd/credential.ts --user alice --ttl 3600`,
    `  (or node dist/src/cmd/credential.js ...), then try the relay with coturn's client:`,
    `    turnutils_peer -p 3480 -L 127.0.0.1 &`,
    `    turnutils_uclient -p ${port} -W "$(cat ${secretFile})" -e 127.0.0.1 -r 3480 ${host}`,
    `  (loopback peers also need TURNPIKE_ALLOWED_PEERS=127.0.0.0/8)`,
    '',
  ].join('\n');
}
