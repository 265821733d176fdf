// What the kernel's tables hold, as far as the next-hop mirror needs it:
// the main routing table, the routing rules, links, local addresses and the
// neighbour entries on the interfaces the program runs on. Filled from
// rtnetlink dumps and kept current by its notifications; apply() says
// which part a message changed so the mirror redoes only that.
import type { Family } from '../../shared/endpoint.ts';
import {
  decodeAddress,
  decodeLink,
  decodeNeighbour,
  decodeRoute,
  decodeRule,
  type KernelLink,
  type KernelNeighbour,
  type KernelRoute,
  type KernelRule,
  type NlMessage,
} from '../../net/rtnetlink/codec.ts';
import { AF_UNSPEC, IFF_LOWER_UP, IFF_UP, NTF, RT_TABLE, RTM } from '../../net/rtnetlink/layout.ts';
import { RtnetlinkSocket } from '../../net/rtnetlink/socket.ts';

export const neighbourKey = (family: Family, address: string, ifindex: number) => `${family}|${address}|${ifindex}`;
const routeKey = (r: KernelRoute) => `${r.family}|${r.dst}/${r.dstLen}|${r.tos}|${r.priority}|${r.type}`;
const ruleKey = (r: KernelRule) => `${r.family}|${r.priority}|${r.table}|${r.action}`;

/** What one message changed. */
export type Change =
  | { readonly kind: 'routes' }
  | { readonly kind: 'rules' }
  /** stateChanged: it went up or down (or away), when IPv4 flushes its routes without a word. */
  | { readonly kind: 'link'; readonly index: number; readonly stateChanged: boolean }
  | { readonly kind: 'addresses'; readonly removed: boolean }
  | { readonly kind: 'neighbour'; readonly key: string }
  | undefined;

export class KernelView {
  readonly routes = new Map<string, KernelRoute>();
  readonly rules = new Map<string, KernelRule>();
  readonly links = new Map<number, KernelLink>();
  /** The host's own addresses, `family|address`. */
  readonly addresses = new Set<string>();
  /** Neighbour entries on watched interfaces, by neighbourKey. */
  readonly neighbours = new Map<string, KernelNeighbour>();

  /** @param watched whether neighbour entries of an interface are kept */
  constructor(private readonly watched: (ifindex: number) => boolean) {}

  /** Starts over from dumps (each a list of the kind's messages). */
  load(dumps: { routes: NlMessage[]; rules: NlMessage[]; links: NlMessage[]; addresses: NlMessage[]; neighbours: NlMessage[] }): void {
    this.routes.clear();
    this.rules.clear();
    this.links.clear();
    this.addresses.clear();
    this.neighbours.clear();
    for (const m of [...dumps.routes, ...dumps.rules, ...dumps.links, ...dumps.addresses, ...dumps.neighbours]) this.apply(m);
  }

  apply(m: NlMessage): Change {
    switch (m.type) {
      case RTM.NEWROUTE:
      case RTM.DELROUTE: {
        const r = decodeRoute(m);
        if (!r || r.table !== RT_TABLE.MAIN) return undefined;
        if (m.type === RTM.NEWROUTE) this.routes.set(routeKey(r), r);
        else if (!this.routes.delete(routeKey(r))) return undefined;
        return { kind: 'routes' };
      }
      case RTM.NEWRULE:
      case RTM.DELRULE: {
        const r = decodeRule(m);
        if (!r) return undefined;
        if (m.type === RTM.NEWRULE) this.rules.set(ruleKey(r), r);
        else this.rules.delete(ruleKey(r));
        return { kind: 'rules' };
      }
      case RTM.NEWLINK:
      case RTM.DELLINK: {
        const l = decodeLink(m);
        if (!l) return undefined;
        const before = this.links.get(l.index);
        if (m.type === RTM.NEWLINK) this.links.set(l.index, l);
        else this.links.delete(l.index);
        const state = (x: KernelLink | undefined) => (x ? x.flags & (IFF_UP | IFF_LOWER_UP) : -1);
        return { kind: 'link', index: l.index, stateChanged: state(before) !== state(this.links.get(l.index)) };
      }
      case RTM.NEWADDR:
      case RTM.DELADDR: {
        const a = decodeAddress(m);
        if (!a) return undefined;
        const key = `${a.family}|${a.address}`;
        if (m.type === RTM.NEWADDR) this.addresses.add(key);
        else this.addresses.delete(key);
        return { kind: 'addresses', removed: m.type === RTM.DELADDR };
      }
      case RTM.NEWNEIGH:
      case RTM.DELNEIGH: {
        const n = decodeNeighbour(m);
        if (!n || n.flags & NTF.PROXY || !this.watched(n.ifindex)) return undefined;
        const key = neighbourKey(n.family, n.address, n.ifindex);
        if (m.type === RTM.NEWNEIGH) this.neighbours.set(key, n);
        else this.neighbours.delete(key);
        return { kind: 'neighbour', key };
      }
      default:
        return undefined;
    }
  }

  isOwnAddress(family: Family, address: string): boolean {
    return this.addresses.has(`${family}|${address}`);
  }
}

/** One dump of the routes and links (to choose interfaces before anything runs). */
export function kernelRoutesAndLinks(): { routes: KernelRoute[]; links: Map<number, KernelLink> } {
  const s = RtnetlinkSocket.open();
  try {
    const routes = s.dump(RTM.GETROUTE, AF_UNSPEC).flatMap((m) => decodeRoute(m) ?? []).filter((r) => r.table === RT_TABLE.MAIN);
    const links = new Map(s.dump(RTM.GETLINK, AF_UNSPEC).flatMap((m) => decodeLink(m) ?? []).map((l) => [l.index, l] as const));
    return { routes, links };
  } finally {
    s.close();
  }
}
