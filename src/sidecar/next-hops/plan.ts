// What the program's next-hop maps should hold, decided from the kernel's
// tables alone (pure functions, no I/O):
// - the routes of the main table, one per prefix as the kernel would choose
//   it (lowest metric, live paths), in the form tp_routes holds; none of a
//   family whose routing rules are not the default ones (the main table is
//   then not what the kernel consults), none at all when they do not fit;
// - the next hops the program needs on its interfaces: every route's
//   gateway there, and the ends of bindings that are on-link there;
// - for each, whether the kernel's neighbour entry is usable (a valid
//   state and a unicast Ethernet address), stale (usable, to be confirmed)
//   or missing (the kernel is asked to resolve it).
import { isIP } from 'node:net';
import { addressBytes } from '../../shared/cidr.ts';
import type { Family } from '../../shared/endpoint.ts';
import { isLinkLocalV6 } from '../../shared/endpoint.ts';
import type { KernelLink, KernelNeighbour, KernelRoute, KernelRule } from '../../net/rtnetlink/codec.ts';
import { ARPHRD_ETHER, FR_ACT_TO_TBL, NUD, NUD_VALID, RT_TABLE, RTM_F_CLONED, RTN, RTNH_F } from '../../net/rtnetlink/layout.ts';
import { macText, type Route } from '../bpf/abi.ts';

/** The rules a host has unless someone added more: local, main, default (IPv6 has no default-table rule). */
const DEFAULT_RULES: Record<Family, readonly string[]> = {
  4: [`0|${RT_TABLE.LOCAL}`, `32766|${RT_TABLE.MAIN}`, `32767|${RT_TABLE.DEFAULT}`],
  6: [`0|${RT_TABLE.LOCAL}`, `32766|${RT_TABLE.MAIN}`],
};

/** Families whose rules are exactly the defaults (so a main-table lookup is the kernel's answer). */
export function plainRoutingFamilies(rules: Iterable<KernelRule>): Set<Family> {
  const have: Record<Family, string[]> = { 4: [], 6: [] };
  for (const r of rules) have[r.family].push(r.action === FR_ACT_TO_TBL ? `${r.priority}|${r.table}` : `${r.priority}|action ${r.action}`);
  const same = (f: Family) => have[f].length === DEFAULT_RULES[f].length && DEFAULT_RULES[f].every((x) => have[f].includes(x));
  return new Set(([4, 6] as const).filter(same));
}

const dead = RTNH_F.DEAD | RTNH_F.LINKDOWN;

/** The route as tp_routes holds it: out of the first live path (on a watched interface if one is), or 'stack'. */
function toMirrored(r: KernelRoute, watched: ReadonlySet<number>): Route {
  const base = { prefix: r.dst, prefixLength: r.dstLen, mtu: Math.min(r.mtu, 0xffff) };
  const stack: Route = { ...base, kind: 'stack', ifindex: 0, mtu: 0 };
  if (r.type !== RTN.UNICAST || r.nhid !== undefined) return stack;
  // A single path's flags (RTNH_F_*) ride in rtm_flags.
  const live = r.nextHops.filter((p) => ((p.flags | (r.nextHops.length === 1 ? r.flags : 0)) & dead) === 0);
  const path = live.find((p) => watched.has(p.ifindex)) ?? live[0];
  if (!path) return stack;
  return { ...base, kind: 'unicast', ifindex: path.ifindex, gateway: path.gateway?.address };
}

export interface RouteTable {
  readonly routes: readonly Route[];
  /** Why some routes are not mirrored (policy routing, too many). */
  readonly problems: readonly string[];
  /** The route the kernel would choose for an address (longest prefix). */
  lookup(address: string): Route | undefined;
}

/**
 * The main table as the program should see it: per prefix the route the
 * kernel prefers (lowest metric among live, non-cached, TOS-less routes).
 */
export function routeTable(
  kernel: Iterable<KernelRoute>,
  rules: Iterable<KernelRule>,
  watched: ReadonlySet<number>,
  capacity: number,
  plain: ReadonlySet<Family> = plainRoutingFamilies(rules),
): RouteTable {
  const problems: string[] = [];
  for (const f of [4, 6] as const) {
    if (!plain.has(f)) problems.push(`IPv${f} has routing rules besides the default ones: its routes are not mirrored (the stack relays IPv${f} outputs unless the interface forwards)`);
  }
  const best = new Map<string, KernelRoute>();
  for (const r of kernel) {
    if (!plain.has(r.family) || r.tos !== 0 || r.flags & RTM_F_CLONED) continue;
    const key = `${r.family}|${r.dst}/${r.dstLen}`;
    const have = best.get(key);
    if (!have || r.priority < have.priority) best.set(key, r);
  }
  let routes = [...best.values()].map((r) => toMirrored(r, watched));
  if (routes.length > capacity) {
    problems.push(`the main table has ${routes.length} routes, more than the ${capacity} the program's map holds: none is mirrored (a missing one could send to the wrong next hop)`);
    routes = [];
  }
  return { routes, problems, lookup: lpm(routes) };
}

/** Longest-prefix match over routes: one map per prefix length, longest first. */
function lpm(routes: readonly Route[]): RouteTable['lookup'] {
  const byLength = new Map<number, Map<string, Route>>();
  const keyOf = (bytes: Uint8Array, bits: number) => {
    let s = '';
    for (let i = 0; i < 16; i++) {
      const keep = Math.max(0, Math.min(8, bits - 8 * i));
      s += (bytes[i]! & ((0xff00 >> keep) & 0xff)).toString(16).padStart(2, '0');
    }
    return s;
  };
  const bitsOf = (r: Route) => (isIP(r.prefix) === 4 ? 96 : 0) + r.prefixLength;
  for (const r of routes) {
    // A family's routes never cover the other's: the family leads the key.
    const bits = bitsOf(r) + (isIP(r.prefix) === 4 ? 1000 : 0);
    const m = byLength.get(bits) ?? new Map<string, Route>();
    m.set(keyOf(addressBytes(r.prefix), bitsOf(r)), r);
    byLength.set(bits, m);
  }
  const lengths = [...byLength.keys()].sort((a, b) => b - a);
  return (address) => {
    const v4 = isIP(address) === 4;
    const bytes = addressBytes(address);
    for (const bits of lengths) {
      if (v4 !== bits >= 1000) continue;
      const r = byLength.get(bits)!.get(keyOf(bytes, bits % 1000));
      if (r) return r;
    }
    return undefined;
  };
}

/** A next hop the program needs: an address on one of its interfaces. */
export interface Need {
  readonly family: Family;
  readonly address: string;
  readonly ifindex: number;
}

const familyOf = (address: string): Family => (isIP(address) === 4 ? 4 : 6);

/** Gateways of the routes that leave by a watched interface. */
export function gatewayNeeds(table: RouteTable, watched: ReadonlySet<number>): Need[] {
  return table.routes.flatMap((r) =>
    r.kind === 'unicast' && r.gateway !== undefined && watched.has(r.ifindex) ? [{ family: familyOf(r.gateway), address: r.gateway, ifindex: r.ifindex }] : [],
  );
}

/**
 * The next hop a binding's end needs itself: the end, when its route is
 * on-link on a watched interface (behind a gateway, the gateway is needed
 * already). Not for the host's own addresses nor IPv6 link-local ones
 * (a binding does not say on which link those are).
 */
export function endpointNeed(table: RouteTable, address: string, watched: ReadonlySet<number>, isOwn: (f: Family, a: string) => boolean): Need | undefined {
  const family = familyOf(address);
  if (isOwn(family, address) || (family === 6 && isLinkLocalV6(address))) return undefined;
  const r = table.lookup(address);
  if (!r || r.kind !== 'unicast' || r.gateway !== undefined || !watched.has(r.ifindex)) return undefined;
  return { family, address, ifindex: r.ifindex };
}

/** A unicast, non-zero Ethernet address (the group bit is bit 0 of the first byte). */
function unicastMac(b: Uint8Array | undefined): string | undefined {
  if (!b || b.length !== 6 || b[0]! & 1 || b.every((x) => x === 0)) return undefined;
  return macText(b);
}

/** The interface's own Ethernet address, when it is an Ethernet interface. */
export function ownMac(link: KernelLink | undefined): string | undefined {
  return link && link.type === ARPHRD_ETHER ? unicastMac(link.address) : undefined;
}

export type NeighbourAnswer =
  | { readonly state: 'usable'; readonly mac: string }
  /** Usable, but the kernel has not confirmed it lately: ask it to. */
  | { readonly state: 'stale'; readonly mac: string }
  | { readonly state: 'missing' };

/** What the kernel's entry (if any) offers: the address it would send to itself, or nothing. */
export function neighbourAnswer(n: KernelNeighbour | undefined): NeighbourAnswer {
  const mac = n && n.state & NUD_VALID ? unicastMac(n.lladdr) : undefined;
  if (!mac) return { state: 'missing' };
  return n!.state & NUD.STALE ? { state: 'stale', mac } : { state: 'usable', mac };
}

/** An interface a default route leaves by, per family (the kernel's preferred default route of each). */
export interface DefaultRouteInterface {
  readonly family: Family;
  readonly ifindex: number;
  readonly name: string;
}

/**
 * The interfaces of the default routes (main table, lowest metric, a path
 * that is not dead; one whose link is down counts), IPv4's first; interfaces that are not Ethernet (tunnels,
 * WireGuard: no Ethernet header for the program to rewrite) or not found
 * are left out, each with the reason.
 */
export function defaultRouteInterfaces(kernel: Iterable<KernelRoute>, links: ReadonlyMap<number, KernelLink>): { found: DefaultRouteInterface[]; skipped: string[] } {
  // A link that is down now (no carrier yet at boot) is still the one to attach to.
  const up = (flags: number) => flags & ~RTNH_F.LINKDOWN;
  const table = routeTable(
    [...kernel].filter((r) => r.dstLen === 0).map((r) => ({ ...r, flags: up(r.flags), nextHops: r.nextHops.map((p) => ({ ...p, flags: up(p.flags) })) })),
    [],
    new Set(),
    Infinity,
    new Set([4, 6]),
  );
  const found: DefaultRouteInterface[] = [];
  const skipped: string[] = [];
  for (const family of [4, 6] as const) {
    const r = table.lookup(family === 4 ? '0.0.0.0' : '::');
    if (!r || r.kind !== 'unicast') continue;
    const link = links.get(r.ifindex);
    if (!link) skipped.push(`the IPv${family} default route's interface (index ${r.ifindex}) is gone`);
    else if (!ownMac(link)) skipped.push(`${link.name}, the IPv${family} default route's interface, is not an Ethernet interface`);
    else found.push({ family, ifindex: r.ifindex, name: link.name });
  }
  return { found, skipped };
}
