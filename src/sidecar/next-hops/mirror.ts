// The next-hop mirror: keeps the program's tp_routes and tp_neigh equal to
// what the kernel's own tables say (plan.ts decides, kernel-view.ts holds
// the kernel's side), so the fast path relays from the first packet on a
// host that does not forward, and no frame from the LAN can steer it.
//
// - Start: join the rtnetlink groups (routes, rules, links, addresses,
//   neighbours), then dump each table; notifications that race the dumps
//   arrive after them and are applied again (idempotent).
// - Every pollMs (100 ms): read what the kernel announced (non-blocking),
//   apply it, and write what changed: routes and every need when a route
//   or rule changed, one neighbour's entry when it changed. Entries the
//   program may have cached are dropped from its cache at once, so a new
//   gateway MAC or route is used within a poll interval (and within the
//   cache's TTL even if that failed): well under a second.
// - Needed next hops the kernel has not resolved are asked for (RTM_NEWNEIGH
//   with NTF_USE: the kernel sends the ARP request / Neighbor Solicitation
//   itself); stale ones are asked to be confirmed (unicast probes). Until
//   an entry is usable the program passes the packets: never a guessed MAC.
// - A lost notification (ENOBUFS) or a read error leads to a full resync,
//   so does a link going up or down or an address going (IPv4 removes the
//   routes that used them without a notification), at most once a second,
//   and one happens every resyncMs anyway.
// Bindings are followed through the router's binding observer: each end
// that is on-link on an XDP interface is a needed next hop while bound.
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Family } from '../../shared/endpoint.ts';
import { RtnetlinkSocket, NetlinkError } from '../../net/rtnetlink/socket.ts';
import { neighbourUseRequest } from '../../net/rtnetlink/codec.ts';
import { AF_UNSPEC, RTM, RTNLGRP } from '../../net/rtnetlink/layout.ts';
import { addressBytes } from '../../shared/cidr.ts';
import type { Neighbour, Route } from '../bpf/abi.ts';
import type { BindingObserver, ChannelBinding } from '../bpf/router.ts';
import { KernelView, neighbourKey } from './kernel-view.ts';
import { endpointNeed, gatewayNeeds, neighbourAnswer, ownMac, routeTable, type Need, type RouteTable } from './plan.ts';

/** The program's next-hop maps, as XdpRouter offers them. */
export interface NextHopMaps {
  routes(): Route[];
  putRoute(r: Route): void;
  deleteRoute(r: Pick<Route, 'prefix' | 'prefixLength'>): boolean;
  neighbours(): Neighbour[];
  putNeighbour(n: Neighbour): void;
  deleteNeighbour(n: Pick<Neighbour, 'address' | 'ifindex'>): boolean;
  forgetCachedNextHops(): void;
  maxEntries(map: string): number;
}

export interface MirrorOptions {
  maps: NextHopMaps;
  /** ifindexes the program is attached to. */
  interfaces: readonly number[];
  log: Logger;
  pollMs?: number;
  resyncMs?: number;
}

export interface MirrorStats {
  interfaces: number[];
  routes: number;
  /** Next hops the program needs, and how many of them it has. */
  needed: number;
  resolved: number;
  /** Resolution or confirmation requests sent to the kernel. */
  requests: number;
  resyncs: number;
  problems: string[];
}

const GROUPS = [RTNLGRP.LINK, RTNLGRP.NEIGH, RTNLGRP.IPV4_IFADDR, RTNLGRP.IPV6_IFADDR, RTNLGRP.IPV4_ROUTE, RTNLGRP.IPV6_ROUTE, RTNLGRP.IPV4_RULE, RTNLGRP.IPV6_RULE];
/** Asking again for an unresolved next hop backs off from 1 s to 30 s; a stale one is asked to be confirmed every 5 s at most. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;
const CONFIRM_EVERY_MS = 5000;
const RESYNC_SOON_MS = 1000;
/** Requests per poll at most (a flood of new on-link ends is spread over polls). */
const REQUESTS_PER_POLL = 256;

const routeKey = (r: Pick<Route, 'prefix' | 'prefixLength'>) => `${r.prefix}/${r.prefixLength}`;
const needKeyOf = (n: Need) => neighbourKey(n.family, n.address, n.ifindex);
const bindingKey = (b: ChannelBinding) => `${b.client.address}|${b.client.port}|${b.channel}`;
const sameRoute = (a: Route, b: Route) => a.kind === b.kind && a.ifindex === b.ifindex && a.gateway === b.gateway && a.mtu === b.mtu;
const familyOf = (address: string): Family => (isIP(address) === 4 ? 4 : 6);

export class NextHopMirror implements BindingObserver {
  readonly #maps: NextHopMaps;
  readonly #log: Logger;
  readonly #watched: ReadonlySet<number>;
  readonly #view: KernelView;
  readonly #listener: RtnetlinkSocket;
  readonly #requester: RtnetlinkSocket;
  readonly #timer: NodeJS.Timeout;
  readonly #resyncMs: number;
  #table: RouteTable = routeTable([], [], new Set(), 0);
  #lastResync = 0;
  #problems: string[] = [];
  #requests = 0;
  #resyncs = 0;
  #closed = false;
  #cacheStale = false;
  /** A link went up or down, or an address went: IPv4 drops the routes that used them without telling, so dump again (at most once a second). */
  #resyncSoon = false;

  /** What the maps hold (as this mirror wrote or found them). */
  readonly #routes = new Map<string, Route>();
  readonly #neighbours = new Map<string, Neighbour>();
  /** Needed next hops with the number of routes and binding ends that need them. */
  readonly #needs = new Map<string, { need: Need; refs: number }>();
  /** Binding ends: how many bindings name each, and the next hop it needs itself. */
  readonly #ends = new Map<string, { refs: number; need: string | undefined }>();
  readonly #bindings = new Map<string, readonly [string, string]>();
  /** When each unresolved or stale next hop may be asked for again, and the current back-off. */
  readonly #asked = new Map<string, { next: number; interval: number }>();

  private constructor(opts: MirrorOptions, listener: RtnetlinkSocket, requester: RtnetlinkSocket) {
    this.#maps = opts.maps;
    this.#log = opts.log;
    this.#watched = new Set(opts.interfaces);
    this.#view = new KernelView((i) => this.#watched.has(i));
    this.#listener = listener;
    this.#requester = requester;
    this.#resyncMs = opts.resyncMs ?? 60_000;
    for (const r of opts.maps.routes()) this.#routes.set(routeKey(r), r);
    for (const n of opts.maps.neighbours()) this.#neighbours.set(neighbourKey(familyOf(n.address), n.address, n.ifindex), n);
    this.#resync('start');
    this.#timer = setInterval(() => this.#poll(), opts.pollMs ?? 100);
    this.#timer.unref();
  }

  /** Opens the sockets and fills the maps from the kernel's tables (synchronously); throws when rtnetlink is unusable. */
  static start(opts: MirrorOptions): NextHopMirror {
    // Listen first, so no change between the dumps and the first poll is missed.
    const listener = RtnetlinkSocket.open({ groups: GROUPS, receiveBuffer: 8 << 20 });
    let requester: RtnetlinkSocket | undefined;
    try {
      requester = RtnetlinkSocket.open();
      return new NextHopMirror(opts, listener, requester);
    } catch (e) {
      listener.close();
      requester?.close();
      throw e;
    }
  }

  stats(): MirrorStats {
    let resolved = 0;
    for (const key of this.#needs.keys()) if (this.#neighbours.has(key)) resolved++;
    return {
      interfaces: [...this.#watched],
      routes: this.#routes.size,
      needed: this.#needs.size,
      resolved,
      requests: this.#requests,
      resyncs: this.#resyncs,
      problems: [...this.#problems],
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#listener.close();
    this.#requester.close();
  }

  // ---- bindings (BindingObserver) ----------------------------------------------

  put(b: ChannelBinding): void {
    const key = bindingKey(b);
    const ends = [b.client.address, b.peer.address] as const;
    const had = this.#bindings.get(key);
    if (had && had[0] === ends[0] && had[1] === ends[1]) return;
    this.#bindings.set(key, ends);
    this.#guard(() => {
      for (const e of ends) this.#addEnd(e);
      if (had) for (const e of had) this.#dropEnd(e);
      // A new on-link end is asked for now, not at the next poll: its first packets are due.
      this.#askDue();
      this.#flush();
    });
  }

  deleted(b: ChannelBinding): void {
    const key = bindingKey(b);
    const had = this.#bindings.get(key);
    if (!had) return;
    this.#bindings.delete(key);
    this.#guard(() => {
      for (const e of had) this.#dropEnd(e);
      this.#flush();
    });
  }

  cleared(): void {
    const all = [...this.#bindings.values()];
    this.#bindings.clear();
    this.#guard(() => {
      for (const ends of all) for (const e of ends) this.#dropEnd(e);
      this.#flush();
    });
  }

  #addEnd(address: string): void {
    const end = this.#ends.get(address);
    if (end) {
      end.refs++;
      return;
    }
    const need = endpointNeed(this.#table, address, this.#watched, (f, a) => this.#view.isOwnAddress(f, a));
    const key = need && this.#addNeed(need);
    this.#ends.set(address, { refs: 1, need: key });
  }

  #dropEnd(address: string): void {
    const end = this.#ends.get(address);
    if (!end || --end.refs > 0) return;
    this.#ends.delete(address);
    if (end.need) this.#dropNeed(end.need);
  }

  #addNeed(need: Need): string {
    const key = needKeyOf(need);
    const have = this.#needs.get(key);
    if (have) have.refs++;
    else {
      this.#needs.set(key, { need, refs: 1 });
      this.#syncNeighbour(key);
    }
    return key;
  }

  #dropNeed(key: string): void {
    const have = this.#needs.get(key);
    if (!have || --have.refs > 0) return;
    this.#needs.delete(key);
    this.#asked.delete(key);
    this.#syncNeighbour(key);
  }

  // ---- the kernel's side -------------------------------------------------------

  #poll(): void {
    if (this.#closed) return;
    this.#guard(() => {
      if (Date.now() - this.#lastResync >= (this.#resyncSoon ? RESYNC_SOON_MS : this.#resyncMs)) {
        this.#resync(this.#resyncSoon ? 'a link or address went' : 'periodic');
      } else {
        let routesChanged = false;
        const links = new Set<number>();
        const neighbours = new Set<string>();
        for (let batch = this.#listener.receive(); batch; batch = this.#listener.receive()) {
          for (const m of batch) {
            const c = this.#view.apply(m);
            if (c?.kind === 'routes' || c?.kind === 'rules' || c?.kind === 'addresses') routesChanged = true;
            if ((c?.kind === 'link' && c.stateChanged) || (c?.kind === 'addresses' && c.removed)) this.#resyncSoon = true;
            if (c?.kind === 'link' && this.#watched.has(c.index)) links.add(c.index);
            else if (c?.kind === 'neighbour') neighbours.add(c.key);
          }
        }
        if (routesChanged) this.#recompute();
        else {
          for (const [key, { need }] of this.#needs) if (links.has(need.ifindex)) this.#syncNeighbour(key);
          for (const key of neighbours) this.#syncNeighbour(key);
        }
      }
      this.#askDue();
      this.#flush();
    });
  }

  /** Runs fn; a lost notification or an unreadable socket means a full resync, anything else is logged. */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (this.#closed) return;
      const lost = e instanceof NetlinkError;
      this.#log.warn({ reason: (e as Error).message }, lost ? 'next-hop mirror lost track of the kernel: resyncing' : 'next-hop mirror update failed');
      if (lost) {
        try {
          this.#resync('lost notifications');
        } catch (e2) {
          this.#log.warn({ reason: (e2 as Error).message }, 'next-hop mirror resync failed: trying again on the next poll');
          this.#lastResync = 0;
        }
      }
    }
  }

  #resync(why: string): void {
    // Drain what is queued: the dumps below supersede it.
    try {
      while (this.#listener.receive());
    } catch {
      // ENOBUFS: the dumps supersede it too
    }
    const dump = (type: number) => this.#requester.dump(type, AF_UNSPEC);
    this.#view.load({
      links: dump(RTM.GETLINK),
      addresses: dump(RTM.GETADDR),
      rules: dump(RTM.GETRULE),
      routes: dump(RTM.GETROUTE),
      neighbours: dump(RTM.GETNEIGH),
    });
    this.#lastResync = Date.now();
    this.#resyncSoon = false;
    this.#resyncs++;
    this.#recompute();
    this.#flush();
    this.#log.debug({ why, routes: this.#routes.size, needed: this.#needs.size }, 'next-hop mirror resynced with the kernel');
  }

  /** Routes changed (or everything did): rewrite tp_routes, then decide every need afresh. */
  #recompute(): void {
    this.#table = routeTable(this.#view.routes.values(), this.#view.rules.values(), this.#watched, this.#maps.maxEntries('tp_routes'));
    const problems = [...this.#table.problems];
    if (problems.join('\n') !== this.#problems.join('\n')) {
      for (const p of problems) if (!this.#problems.includes(p)) this.#log.warn({ problem: p }, 'next-hop mirror incomplete');
      this.#problems = problems;
    }
    this.#writeRoutes(this.#table.routes);

    const before = [...this.#needs.keys()];
    this.#needs.clear();
    for (const n of gatewayNeeds(this.#table, this.#watched)) this.#countNeed(n);
    for (const [address, end] of this.#ends) {
      const need = endpointNeed(this.#table, address, this.#watched, (f, a) => this.#view.isOwnAddress(f, a));
      end.need = need && needKeyOf(need);
      if (need) this.#countNeed(need);
    }
    for (const key of new Set([...before, ...this.#needs.keys(), ...this.#neighbours.keys()])) this.#syncNeighbour(key);
    for (const key of this.#asked.keys()) if (!this.#needs.has(key)) this.#asked.delete(key);
  }

  #countNeed(need: Need): void {
    const key = needKeyOf(need);
    const have = this.#needs.get(key);
    if (have) have.refs++;
    else this.#needs.set(key, { need, refs: 1 });
  }

  #writeRoutes(routes: readonly Route[]): void {
    const want = new Map(routes.map((r) => [routeKey(r), r]));
    // Most specific first: while the rest is being written, a destination finds no route (passed) rather than a wider one.
    const puts = [...want.values()].filter((r) => {
      const have = this.#routes.get(routeKey(r));
      return !have || !sameRoute(have, r);
    });
    puts.sort((a, b) => b.prefixLength - a.prefixLength);
    for (const r of puts) {
      if (this.#routes.has(routeKey(r))) this.#cacheStale = true;
      this.#maps.putRoute(r);
      this.#routes.set(routeKey(r), r);
    }
    for (const [key, r] of this.#routes) {
      if (want.has(key)) continue;
      this.#maps.deleteRoute(r);
      this.#routes.delete(key);
      this.#cacheStale = true;
    }
  }

  /** Writes, changes or removes the program's entry of one next hop so it says what the kernel's does. */
  #syncNeighbour(key: string): void {
    const need = this.#needs.get(key)?.need;
    const have = this.#neighbours.get(key);
    const answer = need ? neighbourAnswer(this.#view.neighbours.get(key)) : undefined;
    const own = need && ownMac(this.#view.links.get(need.ifindex));
    if (need && own && answer && answer.state !== 'missing') {
      const entry: Neighbour = { address: need.address, ifindex: need.ifindex, mac: answer.mac, ownMac: own };
      if (!have || have.mac !== entry.mac || have.ownMac !== entry.ownMac) {
        this.#maps.putNeighbour(entry);
        this.#neighbours.set(key, entry);
        if (have) this.#cacheStale = true;
      }
      if (answer.state === 'usable') this.#asked.delete(key);
      else if (!this.#asked.has(key)) this.#asked.set(key, { next: 0, interval: CONFIRM_EVERY_MS });
      return;
    }
    if (have) {
      this.#maps.deleteNeighbour(have);
      this.#neighbours.delete(key);
      this.#cacheStale = true;
    }
    // Unresolved (or not Ethernet: nothing to ask for): have the kernel resolve it.
    if (need && own && !this.#asked.has(key)) this.#asked.set(key, { next: 0, interval: RETRY_FIRST_MS });
  }

  /** Sends the resolution and confirmation requests that are due. */
  #askDue(): void {
    const now = Date.now();
    let sent = 0;
    for (const [key, a] of this.#asked) {
      if (a.next > now) continue;
      if (sent++ >= REQUESTS_PER_POLL) break;
      const need = this.#needs.get(key)?.need;
      if (!need) {
        this.#asked.delete(key);
        continue;
      }
      this.#ask(need);
      const stale = this.#neighbours.has(key);
      a.next = now + a.interval;
      if (!stale) a.interval = Math.min(a.interval * 2, RETRY_MAX_MS);
    }
  }

  #ask(need: Need): void {
    const bytes = addressBytes(need.address);
    const seq = this.#requester.nextSeq();
    const err = this.#requester.request(neighbourUseRequest(need.family, need.family === 4 ? bytes.subarray(12) : bytes, need.ifindex, seq), seq);
    this.#requests++;
    if (err < 0) this.#log.debug({ address: need.address, ifindex: need.ifindex, errno: -err }, 'the kernel refused to resolve a next hop');
  }

  /** Makes the program drop answers it cached from entries that changed or went. */
  #flush(): void {
    if (!this.#cacheStale) return;
    this.#cacheStale = false;
    this.#maps.forgetCachedNextHops();
  }
}
