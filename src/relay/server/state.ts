// The relay's state tables: allocations (by 5-tuple and by relayed port),
// their permissions and channels, port reservations, and the one timer heap
// that expires them all. No protocol parsing here: the server decides, this
// module keeps the tables consistent and emits the data-plane outputs that
// every change implies (so the kernel maps never lag the relay's own view).
//
// Rules (RFC 8656):
// - A permission is keyed by the peer's IP only; the port is ignored (§9).
//   Lifetime 300 s, refreshed by CreatePermission or ChannelBind (§9.2, §12.2).
// - A channel lives 600 s unless refreshed (§12). When it expires it is
//   unbound for the data plane at once, but the channel number and the peer
//   address stay held for 300 s more: during the hold neither may be bound
//   to anything else; rebinding the same pair revives it (§12.2).
// - Deleting an allocation unbinds its channels first, then closes its ports.
// - The data plane (kernel map) relays a channel without looking at
//   permissions, while this process relays only to a permitted peer IP. So a
//   channel is "live" (announced with channel-bound) exactly while it is
//   active AND its peer IP has a permission: a permission that lapses while
//   its channels are still bound unbinds them for the data plane, and
//   re-creating it (CreatePermission, or a ChannelBind to any port of that IP)
//   binds them again. The kernel never relays what userspace would refuse.
// - Per user (the quota key, Allocation.user) the tables count allocations,
//   channels (active and held: each may be announced, so they bound the
//   kernel bindings a user causes) and reservations; the server refuses
//   what would exceed a limit before changing anything here.
// - A reservation (EVEN-PORT R, §7.2) lives 30 s, and no longer than the
//   allocation that made it: deleting that allocation frees the reserved port.
import type { ChannelBinding, DataPlaneEvent, Family, LocalEndpoint, Output, TransportAddress } from './types.ts';
import { TimerHeap, type Timer } from './timer-heap.ts';
import { portKey, transportOf, type ClientTransport } from '../../shared/endpoint.ts';
export { portKey };
import { PortPool, type PortRange } from './port-pool.ts';
import { Tally } from './tally.ts';

export const PERMISSION_LIFETIME_MS = 300_000;
export const CHANNEL_LIFETIME_MS = 600_000;
export const CHANNEL_HOLD_MS = 300_000;
export const RESERVATION_LIFETIME_MS = 30_000;

export type Timed =
  | { readonly kind: 'allocation'; readonly allocation: Allocation }
  | { readonly kind: 'permission'; readonly permission: Permission }
  | { readonly kind: 'channel'; readonly channel: Channel }
  | { readonly kind: 'reservation'; readonly reservation: Reservation };

export interface RelayedPorts {
  v4?: number;
  v6?: number;
}

export interface Allocation {
  readonly fiveTuple: string;
  readonly client: TransportAddress;
  /** The listen endpoint the client talks to (responses and Data leave from it). */
  readonly local: LocalEndpoint;
  readonly username: string;
  /** The user the quotas count it against (CredentialSource.userOf). */
  readonly user: string;
  /** Long-term credential key the allocation was created with. */
  readonly key: Uint8Array;
  readonly ports: Readonly<RelayedPorts>;
  /** The relayed ports as output endpoints, built once (relayed packets leave from them). */
  readonly relayEndpoints: { readonly 4?: LocalEndpoint; readonly 6?: LocalEndpoint };
  expiresAt: number;
  readonly timer: Timer<Timed>;
  /** By peer IP text. */
  readonly permissions: Map<string, Permission>;
  readonly channelsByNumber: Map<number, Channel>;
  /** By peer IP text, then peer port (no string building per relayed packet). */
  readonly channelsByPeer: Map<string, Map<number, Channel>>;
  /** The Allocate transaction that created it and its encoded answer (replayed on retransmission). */
  readonly transactionKey: string;
  readonly response: Uint8Array;
  /** The port pair half it reserved (EVEN-PORT R), until claimed or expired. */
  reservation: Reservation | undefined;
}

export interface Permission {
  readonly allocation: Allocation;
  readonly peerIp: string;
  expiresAt: number;
  readonly timer: Timer<Timed>;
}

export interface Channel {
  readonly allocation: Allocation;
  readonly number: number;
  readonly peer: TransportAddress;
  readonly peerKey: string;
  /** 'held' = expired, no longer relaying, kept to block reuse. */
  state: 'active' | 'held';
  /** Announced to the data plane: active and the peer IP permitted (see the rules above). */
  live: boolean;
  binding: ChannelBinding;
  readonly timer: Timer<Timed>;
}

export interface Reservation {
  readonly token: string;
  readonly family: Family;
  readonly port: number;
  /** The allocation whose Allocate reserved it. */
  readonly owner: Allocation;
  readonly timer: Timer<Timed>;
}

export function fiveTupleKey(local: LocalEndpoint, client: TransportAddress): string {
  // A stream connection is its own 5-tuple (TCP, unlike a UDP one with the same addresses).
  const stream = local.connection === undefined ? '' : `#${local.connection}`;
  return `${local.family}/${local.port}${stream}|${client.address}|${client.port}`;
}

export function peerKey(peer: TransportAddress): string {
  return `${peer.address}|${peer.port}`;
}

export type ChannelBindResult = 'bound' | 'refreshed' | 'conflict';

/** Told what ends and what the data plane is told (the session log, session-log.ts); never changes the tables. */
export interface StateObserver {
  /** A timer is due: called before its item expires. */
  expiring(t: Timed): void;
  /** An allocation is about to be deleted (expiry, Refresh with lifetime 0, a lost port). */
  removing(a: Allocation): void;
  event(e: DataPlaneEvent): void;
}

export interface NewAllocation {
  readonly client: TransportAddress;
  readonly local: LocalEndpoint;
  readonly username: string;
  readonly user: string;
  readonly key: Uint8Array;
  readonly ports: RelayedPorts;
  readonly expiresAt: number;
  readonly transactionKey: string;
  readonly response: Uint8Array;
}

/** A permission, channel or reservation of a restored allocation, its deadlines on this process's clock. */
export interface RestoredAllocation extends NewAllocation {
  readonly permissions: readonly { readonly peerIp: string; readonly expiresAt: number }[];
  /** `held`: expired, kept to block reuse until bindingExpiresAt + CHANNEL_HOLD_MS. */
  readonly channels: readonly { readonly number: number; readonly peer: TransportAddress; readonly held: boolean; readonly bindingExpiresAt: number }[];
  readonly reservation?: { readonly token: string; readonly family: Family; readonly port: number; readonly expiresAt: number } | undefined;
}

export class RelayState {
  readonly byFiveTuple = new Map<string, Allocation>();
  /** By relayed port (portKey). */
  readonly byPort = new Map<number, Allocation>();
  /**
   * The same allocations as byFiveTuple, by client IP text then client port:
   * the per-packet lookup (ChannelData, Send) avoids building a 5-tuple string.
   * Client traffic only arrives on the one listen port, and the address text
   * fixes the family, so (address, port) names one 5-tuple here.
   */
  readonly #byClient = new Map<string, Map<number, Allocation>>();
  readonly reservations = new Map<string, Reservation>();
  readonly pools: Readonly<Record<Family, PortPool>>;
  readonly #allocationsPerUser = new Tally();
  readonly #channelsPerUser = new Tally();
  readonly #reservationsPerUser = new Tally();
  readonly #heap = new TimerHeap<Timed>();
  observer: StateObserver | undefined;
  #permissions = 0;
  #channels = 0;
  readonly #allocationsBy: Record<ClientTransport, number> = { udp: 0, tcp: 0, tls: 0 };

  constructor(
    range: PortRange,
    private readonly emit: (out: Output) => void,
  ) {
    this.pools = { 4: new PortPool(range), 6: new PortPool(range) };
  }

  get allocations(): number {
    return this.byFiveTuple.size;
  }
  /** Allocations whose client uses `transport`. */
  allocationsBy(transport: ClientTransport): number {
    return this.#allocationsBy[transport];
  }
  get permissions(): number {
    return this.#permissions;
  }
  /** Live (relaying) channels: held ones and ones whose permission lapsed are not counted. */
  get channels(): number {
    return this.#channels;
  }
  allocationsOf(user: string): number {
    return this.#allocationsPerUser.of(user);
  }
  /** Channels of the user's allocations, active and held. */
  channelsOf(user: string): number {
    return this.#channelsPerUser.of(user);
  }
  reservationsOf(user: string): number {
    return this.#reservationsPerUser.of(user);
  }
  nextDeadline(): number | undefined {
    return this.#heap.peek();
  }

  // -- allocations ---------------------------------------------------------

  /** Record an allocation whose ports are already taken in the pools and opened. */
  addAllocation(n: NewAllocation): Allocation {
    const a: Allocation = {
      fiveTuple: fiveTupleKey(n.local, n.client),
      client: n.client,
      local: n.local,
      username: n.username,
      user: n.user,
      key: n.key,
      ports: { ...n.ports },
      relayEndpoints: {
        ...(n.ports.v4 !== undefined ? { 4: { family: 4, port: n.ports.v4 } } : {}),
        ...(n.ports.v6 !== undefined ? { 6: { family: 6, port: n.ports.v6 } } : {}),
      },
      expiresAt: n.expiresAt,
      timer: undefined as unknown as Timer<Timed>,
      permissions: new Map(),
      channelsByNumber: new Map(),
      channelsByPeer: new Map(),
      transactionKey: n.transactionKey,
      response: n.response,
      reservation: undefined,
    };
    (a as { timer: Timer<Timed> }).timer = TimerHeap.timer<Timed>({ kind: 'allocation', allocation: a });
    this.byFiveTuple.set(a.fiveTuple, a);
    this.#allocationsBy[transportOf(a.local)]++;
    let sameIp = this.#byClient.get(a.client.address);
    if (sameIp === undefined) this.#byClient.set(a.client.address, (sameIp = new Map()));
    sameIp.set(a.client.port, a);
    if (a.ports.v4 !== undefined) this.byPort.set(portKey(4, a.ports.v4), a);
    if (a.ports.v6 !== undefined) this.byPort.set(portKey(6, a.ports.v6), a);
    this.#allocationsPerUser.add(a.user);
    this.#heap.schedule(a.timer, a.expiresAt);
    return a;
  }

  /** The allocation of this 5-tuple (same answer as byFiveTuple.get(fiveTupleKey(local, client))). */
  allocationOf(local: LocalEndpoint, client: TransportAddress): Allocation | undefined {
    const a = this.#byClient.get(client.address)?.get(client.port);
    if (a === undefined) return undefined;
    if (a.local.port === local.port && a.local.family === local.family && a.local.connection === local.connection) return a;
    // One client address and port talking to two listen endpoints: rare, take the exact map.
    return this.byFiveTuple.get(fiveTupleKey(local, client));
  }

  refreshAllocation(a: Allocation, expiresAt: number): void {
    a.expiresAt = expiresAt;
    this.#heap.schedule(a.timer, expiresAt);
  }

  /** Delete an allocation: unbind its channels, drop permissions, close and free its ports. */
  removeAllocation(a: Allocation): void {
    if (this.byFiveTuple.get(a.fiveTuple) !== a) return;
    this.observer?.removing(a);
    this.byFiveTuple.delete(a.fiveTuple);
    this.#allocationsBy[transportOf(a.local)]--;
    const sameIp = this.#byClient.get(a.client.address);
    if (sameIp?.get(a.client.port) === a) {
      sameIp.delete(a.client.port);
      if (sameIp.size === 0) this.#byClient.delete(a.client.address);
    }
    this.#heap.cancel(a.timer);
    for (const c of a.channelsByNumber.values()) {
      this.#heap.cancel(c.timer);
      if (c.live) this.#unannounce(c);
    }
    this.#channelsPerUser.add(a.user, -a.channelsByNumber.size);
    a.channelsByNumber.clear();
    a.channelsByPeer.clear();
    for (const p of a.permissions.values()) this.#heap.cancel(p.timer);
    this.#permissions -= a.permissions.size;
    a.permissions.clear();
    for (const family of [4, 6] as const) {
      const port = family === 4 ? a.ports.v4 : a.ports.v6;
      if (port === undefined) continue;
      this.byPort.delete(portKey(family, port));
      this.pools[family].release(port);
      this.#event({ type: 'allocation-port-closed', family, port, client: a.client });
      this.emit({ kind: 'close-port', family, port });
    }
    if (a.reservation !== undefined) this.#releaseReservation(a.reservation);
    this.#allocationsPerUser.add(a.user, -1);
  }

  // -- permissions ---------------------------------------------------------

  /**
   * Install or refresh the permission for `peerIp` (RFC 8656 §9). A new
   * permission re-announces the active channels to that IP whose earlier
   * permission had lapsed (channel-bound, before the caller's response).
   */
  installPermission(a: Allocation, peerIp: string, now: number): void {
    let p = a.permissions.get(peerIp);
    if (p === undefined) {
      p = this.#newPermission(a, peerIp);
      const samePeerIp = a.channelsByPeer.get(peerIp);
      if (samePeerIp !== undefined) {
        for (const c of samePeerIp.values()) if (c.state === 'active' && !c.live) this.#announce(c);
      }
    }
    p.expiresAt = now + PERMISSION_LIFETIME_MS;
    this.#heap.schedule(p.timer, p.expiresAt);
  }

  #newPermission(a: Allocation, peerIp: string): Permission {
    const created: Permission = { allocation: a, peerIp, expiresAt: 0, timer: undefined as unknown as Timer<Timed> };
    (created as { timer: Timer<Timed> }).timer = TimerHeap.timer<Timed>({ kind: 'permission', permission: created });
    a.permissions.set(peerIp, created);
    this.#permissions++;
    return created;
  }

  hasPermission(a: Allocation, peerIp: string): boolean {
    return a.permissions.has(peerIp);
  }

  // -- channels ------------------------------------------------------------

  /** Would binding `number` to `peer` break the rebinding rules of RFC 8656 §12.2 (held entries included)? */
  channelConflict(a: Allocation, number: number, peer: TransportAddress): boolean {
    const byNumber = a.channelsByNumber.get(number);
    const byPeer = a.channelsByPeer.get(peer.address)?.get(peer.port);
    return (byNumber !== undefined && byNumber.peerKey !== peerKey(peer)) || (byPeer !== undefined && byPeer.number !== number);
  }

  /**
   * Bind or refresh a channel. Emits channel-bound / channel-refreshed before
   * returning, so a caller that queues the success response afterwards keeps
   * the "install first, answer after" order. Does not touch permissions: with
   * no permission for the peer IP the channel is recorded but not announced,
   * and installPermission announces it (so a ChannelBind binds first, then
   * installs the permission: one channel-bound carrying the new binding).
   * The result describes the channel table, not the events.
   */
  bindChannel(a: Allocation, number: number, peer: TransportAddress, now: number): ChannelBindResult {
    if (this.channelConflict(a, number, peer)) return 'conflict';
    const expiresAt = now + CHANNEL_LIFETIME_MS;
    const allocationPort = (peer.family === 4 ? a.ports.v4 : a.ports.v6) ?? 0;
    const binding: ChannelBinding = {
      client: a.client,
      channel: number,
      peer,
      allocationPort,
      allocationPorts: { ...a.ports },
      expiresAt,
      ...(a.local.transport !== undefined ? { transport: a.local.transport } : {}),
    };
    const permitted = a.permissions.has(peer.address);
    const existing = a.channelsByNumber.get(number);
    if (existing !== undefined) {
      const revived = existing.state === 'held';
      existing.state = 'active';
      existing.binding = binding;
      this.#heap.schedule(existing.timer, expiresAt);
      if (existing.live) this.#channelEvent(existing, { type: 'channel-refreshed', binding });
      else if (permitted) this.#announce(existing);
      return revived ? 'bound' : 'refreshed';
    }
    const c = this.#newChannel(a, binding, expiresAt);
    if (permitted) this.#announce(c);
    return 'bound';
  }

  /** An active channel for `binding`, not announced, its timer at `at`. */
  #newChannel(a: Allocation, binding: ChannelBinding, at: number): Channel {
    const { channel: number, peer } = binding;
    const c: Channel = {
      allocation: a,
      number,
      peer,
      peerKey: peerKey(peer),
      state: 'active',
      live: false,
      binding,
      timer: undefined as unknown as Timer<Timed>,
    };
    (c as { timer: Timer<Timed> }).timer = TimerHeap.timer<Timed>({ kind: 'channel', channel: c });
    a.channelsByNumber.set(number, c);
    this.#channelsPerUser.add(a.user);
    let samePeerIp = a.channelsByPeer.get(peer.address);
    if (samePeerIp === undefined) a.channelsByPeer.set(peer.address, (samePeerIp = new Map()));
    samePeerIp.set(peer.port, c);
    this.#heap.schedule(c.timer, at);
    return c;
  }

  /** The active channel with this number, if any. */
  activeChannel(a: Allocation, number: number): Channel | undefined {
    const c = a.channelsByNumber.get(number);
    return c?.state === 'active' ? c : undefined;
  }

  /** The active channel bound to this peer transport address, if any. */
  activeChannelToPeer(a: Allocation, peer: TransportAddress): Channel | undefined {
    const c = a.channelsByPeer.get(peer.address)?.get(peer.port);
    return c?.state === 'active' ? c : undefined;
  }

  // -- reservations (EVEN-PORT R bit, RFC 8656 §7.2) ------------------------

  /** Hold `port` (already taken in its pool) under `token` for `owner`, until now + 30 s or until `owner` goes. */
  addReservation(token: string, family: Family, port: number, now: number, owner: Allocation): void {
    const r: Reservation = { token, family, port, owner, timer: undefined as unknown as Timer<Timed> };
    (r as { timer: Timer<Timed> }).timer = TimerHeap.timer<Timed>({ kind: 'reservation', reservation: r });
    this.reservations.set(token, r);
    owner.reservation = r;
    this.#reservationsPerUser.add(owner.user);
    this.#heap.schedule(r.timer, now + RESERVATION_LIFETIME_MS);
  }

  /** Remove a reservation and hand its port to the caller (still taken in the pool). */
  claimReservation(token: string): Reservation | undefined {
    const r = this.reservations.get(token);
    if (r === undefined) return undefined;
    this.#forgetReservation(r);
    return r;
  }

  /** Remove a reservation and free its port. */
  #releaseReservation(r: Reservation): void {
    this.#forgetReservation(r);
    this.pools[r.family].release(r.port);
  }

  #forgetReservation(r: Reservation): void {
    this.reservations.delete(r.token);
    this.#heap.cancel(r.timer);
    if (r.owner.reservation === r) r.owner.reservation = undefined;
    this.#reservationsPerUser.add(r.owner.user, -1);
  }

  // -- time ------------------------------------------------------------------

  /** Expire everything due at `now`. */
  expire(now: number): void {
    for (let t = this.#heap.popDue(now); t !== undefined; t = this.#heap.popDue(now)) {
      const timed = t.item;
      this.observer?.expiring(timed);
      switch (timed.kind) {
        case 'allocation':
          this.removeAllocation(timed.allocation);
          break;
        case 'permission': {
          const p = timed.permission;
          p.allocation.permissions.delete(p.peerIp);
          this.#permissions--;
          // Userspace stops relaying to this IP now; so must the kernel.
          const samePeerIp = p.allocation.channelsByPeer.get(p.peerIp);
          if (samePeerIp !== undefined) {
            for (const c of samePeerIp.values()) if (c.live) this.#unannounce(c);
          }
          break;
        }
        case 'channel': {
          const c = timed.channel;
          if (c.state === 'active') {
            c.state = 'held';
            if (c.live) this.#unannounce(c);
            this.#heap.schedule(c.timer, c.binding.expiresAt + CHANNEL_HOLD_MS);
          } else {
            c.allocation.channelsByNumber.delete(c.number);
            const samePeerIp = c.allocation.channelsByPeer.get(c.peer.address);
            samePeerIp?.delete(c.peer.port);
            if (samePeerIp?.size === 0) c.allocation.channelsByPeer.delete(c.peer.address);
            this.#channelsPerUser.add(c.allocation.user, -1);
          }
          break;
        }
        case 'reservation':
          this.#releaseReservation(timed.reservation);
          break;
      }
    }
  }

  /** Current ports and live channels as events, for re-announcing to a restarted data plane. */
  snapshot(): DataPlaneEvent[] {
    const out: DataPlaneEvent[] = [];
    for (const a of this.byFiveTuple.values()) {
      if (a.ports.v4 !== undefined) out.push({ type: 'allocation-port-opened', family: 4, port: a.ports.v4, client: a.client });
      if (a.ports.v6 !== undefined) out.push({ type: 'allocation-port-opened', family: 6, port: a.ports.v6, client: a.client });
      for (const c of a.channelsByNumber.values()) {
        if (c.live && a.local.connection === undefined) out.push({ type: 'channel-bound', binding: c.binding });
      }
    }
    return out;
  }

  /**
   * Put back an allocation a previous relay process held (state-document.ts):
   * its ports and reservation taken in the pools, every timer at its saved
   * deadline. Emits nothing: the data plane still has it all, and the
   * snapshot that follows the restore re-announces it.
   */
  restore(r: RestoredAllocation): Allocation {
    if (r.ports.v4 !== undefined) this.pools[4].take(r.ports.v4);
    if (r.ports.v6 !== undefined) this.pools[6].take(r.ports.v6);
    const a = this.addAllocation(r);
    for (const saved of r.permissions) {
      const p = this.#newPermission(a, saved.peerIp);
      p.expiresAt = saved.expiresAt;
      this.#heap.schedule(p.timer, p.expiresAt);
    }
    for (const saved of r.channels) {
      const binding: ChannelBinding = {
        client: a.client,
        channel: saved.number,
        peer: saved.peer,
        allocationPort: (saved.peer.family === 4 ? a.ports.v4 : a.ports.v6) ?? 0,
        allocationPorts: { ...a.ports },
        expiresAt: saved.bindingExpiresAt,
        ...(a.local.transport !== undefined ? { transport: a.local.transport } : {}),
      };
      const c = this.#newChannel(a, binding, saved.held ? saved.bindingExpiresAt + CHANNEL_HOLD_MS : saved.bindingExpiresAt);
      if (saved.held) c.state = 'held';
      else if (a.permissions.has(saved.peer.address)) {
        c.live = true;
        this.#channels++;
      }
    }
    const res = r.reservation;
    if (res !== undefined) {
      this.pools[res.family].take(res.port);
      this.addReservation(res.token, res.family, res.port, res.expiresAt - RESERVATION_LIFETIME_MS, a);
    }
    return a;
  }

  /** Tell the data plane to relay this channel. */
  #announce(c: Channel): void {
    c.live = true;
    this.#channels++;
    this.#channelEvent(c, { type: 'channel-bound', binding: c.binding });
  }

  /** Tell the data plane to stop relaying this channel. */
  #unannounce(c: Channel): void {
    c.live = false;
    this.#channels--;
    this.#channelEvent(c, { type: 'channel-unbound', binding: c.binding });
  }

  /**
   * A channel of a TCP/TLS client is relayed here, never by the kernel (whose
   * fast path writes ChannelData to a UDP client): its events go to the
   * observer only.
   */
  #channelEvent(c: Channel, event: DataPlaneEvent): void {
    if (c.allocation.local.connection === undefined) return this.#event(event);
    this.observer?.event(event);
  }

  #event(event: DataPlaneEvent): void {
    this.observer?.event(event);
    this.emit({ kind: 'event', event });
  }
}
