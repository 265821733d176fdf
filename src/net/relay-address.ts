// Which address to announce as the relayed address when none is configured.
// The sidecar chooses (it has the host's network; the relay runs in a network
// namespace of its own with nothing but loopback) and names the result in its
// link HELLO; the standalone relay (development, its own sockets) chooses for
// itself. Kept below both in net/ so the one rule serves both.
import { createSocket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { familyOf, isLinkLocalV6, isWildcard, type Family } from '../shared/endpoint.ts';

/** The settings the choice reads (a Config satisfies it). */
export interface RelayAddressSettings {
  readonly publicIpv4?: string | undefined;
  readonly publicIpv6?: string | undefined;
  readonly listenAddresses: readonly string[];
}

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
  config: RelayAddressSettings,
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
  config: RelayAddressSettings,
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

/** The choice as the start-up lines show it: `ADDRESS (source)` or `unavailable` per family. */
export function describeRelayAddresses(r: RelayAddresses): { v4: string; v6: string } {
  const text = (c: RelayAddressChoice) => (c.address ? `${c.address} (${c.source})` : 'unavailable');
  return { v4: text(r.v4), v6: text(r.v6) };
}
