// The sans-IO TURN server (RFC 8656 over UDP, long-term credentials of
// RFC 8489 §9.2). Input: datagrams with their local and remote addresses,
// port-open results and the current time. Output: a queue of datagrams to
// send, ports to open/close and data-plane events (pollOutput), and the next
// deadline. No sockets, no clocks, no Math.random; nothing throws out of it.
//
// Theory of operation:
// - A datagram on the listen port is client traffic: STUN (requests,
//   Send/Binding indications) or ChannelData. Anything else arriving on an
//   allocation port is peer traffic, relayed to the client as ChannelData
//   (bound channel) or a Data indication (permission), else dropped.
// - Every request but Binding is authenticated first (auth.ts); handlers
//   return a reply, and one place (#reply) encodes it with the integrity the
//   request earned, SOFTWARE and FINGERPRINT, and counts it.
// - An Allocate does not answer at once: it takes ports, asks the transport
//   to open them (`open-port`) and answers when portOpened() reports back,
//   retrying other ports on failure. State changes emit their data-plane
//   events before any response that depends on them (install first, answer
//   after), so the kernel never sees a channel later than the client does.
// - Tables and timers live in state.ts; this file only decides.
import type { Logger } from 'pino';
import {
  CHANNEL_MAX,
  ERROR,
  METHOD,
  TRANSPORT_UDP,
  classify,
  allocTransient,
  decodeMessage,
  encodeMessage,
  errorResponse,
  methodName,
  successResponse,
  transactionIdKey,
  type IntegrityAlgorithm,
  type StunAttributes,
  type StunMessage,
  type StunMessageInit,
} from '../stun/index.ts';
import { createNonceManager, type NonceManager } from '../auth/index.ts';
import { authenticate, type AuthContext } from './auth.ts';
import { canonicalAddress } from './address.ts';
import { CHANNEL_DATA_DROP, channelDataHeader, encodeChannelDataAny, validChannel } from './channel-data.ts';
import type { TurnServerOptions } from './options.ts';
import { TimerHeap, type Timer } from './timer-heap.ts';
import { RelayState, fiveTupleKey, portKey, type Allocation } from './state.ts';
import type { DataPlaneEvent, Family, LocalEndpoint, Output, ServerStats, TransportAddress } from './types.ts';
import type { RelayDropReason } from '../../shared/reasons.ts';
import type { ResponseKey } from '../../shared/stats.ts';

/** Largest UDP payload we will emit or accept (IPv4 limit). */
export const MAX_DATAGRAM = 65507;

const RESERVATION_TOKEN_BYTES = 8;

/** What a request handler decided; #reply turns it into bytes. */
type Reply =
  | { readonly kind: 'success'; readonly attributes: StunAttributes }
  | { readonly kind: 'error'; readonly code: number; readonly attributes?: StunAttributes }
  | { readonly kind: 'deferred' }; // Allocate waiting for portOpened

interface PendingPort {
  readonly pending: PendingAllocation;
  readonly family: Family;
  port: number;
  /** A second port held for EVEN-PORT with the R bit. */
  pairPort: number | undefined;
  attempts: number;
  opened: boolean;
  token: number;
}

interface PendingAllocation {
  readonly fiveTuple: string;
  readonly request: StunMessage;
  readonly transactionKey: string;
  readonly auth: AuthContext;
  readonly client: TransportAddress;
  readonly local: LocalEndpoint;
  readonly lifetime: number; // seconds
  readonly even: boolean;
  readonly reserve: boolean;
  /** Fixed port from a RESERVATION-TOKEN: no retry with another port. */
  readonly fromReservation: boolean;
  readonly ports: PendingPort[];
  /** The family refused in a dual request (ADDRESS-ERROR-CODE 440). */
  readonly refusedFamily: Family | undefined;
  readonly timer: Timer<PendingAllocation>;
}

function familyName(f: Family): 'v4' | 'v6' {
  return f === 4 ? 'v4' : 'v6';
}

export class TurnServer {
  readonly #opts: Required<Pick<TurnServerOptions, 'defaultLifetime' | 'maxLifetime' | 'portAttempts' | 'portOpenTimeout' | 'maxChannel'>> & TurnServerOptions;
  readonly #log: Logger | undefined;
  readonly #nonces: NonceManager;
  readonly #state: RelayState;
  readonly #out: Output[] = [];
  #outHead = 0;
  readonly #pendingByFiveTuple = new Map<string, PendingAllocation>();
  readonly #pendingByToken = new Map<number, PendingPort>();
  readonly #pendingHeap = new TimerHeap<PendingAllocation>();
  #pendingPerUser = new Map<string, number>();
  #nextToken = 1;
  readonly #relayed = { toPeer: { packets: 0, bytes: 0 }, toClient: { packets: 0, bytes: 0 } };
  // The same, split by the family of the datagram sent (the metrics' `family` attribute).
  readonly #relayedByFamily = {
    ipv4: { toPeer: { packets: 0, bytes: 0 }, toClient: { packets: 0, bytes: 0 } },
    ipv6: { toPeer: { packets: 0, bytes: 0 }, toClient: { packets: 0, bytes: 0 } },
  };
  readonly #responses: Partial<Record<ResponseKey, number>> = {};
  readonly #dropped: Partial<Record<RelayDropReason, number>> = {};

  constructor(opts: TurnServerOptions) {
    const { min, max } = opts.portRange;
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 65535 || min > max) {
      throw new RangeError(`bad port range ${min}-${max}`);
    }
    this.#opts = { defaultLifetime: 600, maxLifetime: 3600, portAttempts: 3, portOpenTimeout: 10_000, maxChannel: CHANNEL_MAX, ...opts };
    if (this.#opts.maxChannel < CHANNEL_MAX || this.#opts.maxChannel > 0x7fff) throw new RangeError(`maxChannel must be 0x4fff-0x7fff`);
    this.#log = opts.logger;
    this.#nonces = createNonceManager({ secret: opts.nonce.secret, ...(opts.nonce.ttlSeconds !== undefined ? { ttlSeconds: opts.nonce.ttlSeconds } : {}) });
    this.#state = new RelayState(opts.portRange, (o) => this.#push(o));
    // The listen port must never be handed out as a relayed port.
    this.#state.pools[4].take(opts.listenPort);
    this.#state.pools[6].take(opts.listenPort);
  }

  // -- public surface ----------------------------------------------------------

  /** One datagram that arrived on `local` from `remote`. Never throws. */
  handleDatagram(data: Uint8Array, local: LocalEndpoint, remote: TransportAddress, now: number): void {
    try {
      if (data.length > MAX_DATAGRAM) return this.#drop('oversize');
      const from = canonicalAddress(remote);
      if (from === undefined) return this.#drop('bad-source');
      if (local.port === this.#opts.listenPort) return this.#fromClient(data, local, from, now);
      const allocation = this.#state.byPort.get(portKey(local.family, local.port));
      if (allocation === undefined) return this.#drop('no-allocation');
      this.#fromPeer(allocation, data, local.family, from);
    } catch (err) {
      this.#internalError(err);
    }
  }

  /** The transport's answer to an `open-port` output. Never throws. */
  portOpened(token: number, ok: boolean, now: number): void {
    try {
      const slot = this.#pendingByToken.get(token);
      if (slot === undefined) return; // the Allocate already failed or timed out
      this.#pendingByToken.delete(token);
      if (ok) {
        slot.opened = true;
        if (slot.pending.ports.every((p) => p.opened)) this.#completeAllocation(slot.pending, now);
        return;
      }
      this.#retryPort(slot, now);
    } catch (err) {
      this.#internalError(err);
    }
  }

  /**
   * The data plane lost allocation port `port` (a restarted sidecar could not
   * reopen it after a resync): the allocation owning it cannot relay any
   * more, so it is deleted now, with the usual channel-unbound, port-closed
   * events and close-port outputs, instead of lingering broken until expiry.
   * The client learns on its next request (437) and allocates again. A port
   * no allocation owns (freed meanwhile, or still being opened) is ignored.
   * Never throws.
   */
  portLost(family: Family, port: number, now: number): void {
    try {
      this.#state.expire(now);
      const allocation = this.#state.byPort.get(portKey(family, port));
      if (allocation === undefined) return;
      this.#log?.warn({ family, port, client: allocation.client }, 'relay port lost: allocation deleted');
      this.#state.removeAllocation(allocation);
    } catch (err) {
      this.#internalError(err);
    }
  }

  /** Expire whatever is due at `now`. Never throws. */
  handleTimeout(now: number): void {
    try {
      this.#state.expire(now);
      for (let t = this.#pendingHeap.popDue(now); t !== undefined; t = this.#pendingHeap.popDue(now)) {
        this.#log?.warn({ client: t.item.client }, 'allocation port open timed out');
        this.#failAllocation(t.item, ERROR.INSUFFICIENT_CAPACITY);
      }
    } catch (err) {
      this.#internalError(err);
    }
  }

  /** The earliest time handleTimeout has work to do. */
  nextDeadline(): number | undefined {
    const a = this.#state.nextDeadline();
    const b = this.#pendingHeap.peek();
    if (a === undefined) return b;
    if (b === undefined) return a;
    return Math.min(a, b);
  }

  /** Next output, or undefined when the queue is empty. */
  pollOutput(): Output | undefined {
    if (this.#outHead >= this.#out.length) {
      if (this.#out.length > 0) {
        this.#out.length = 0;
        this.#outHead = 0;
      }
      return undefined;
    }
    const o = this.#out[this.#outHead]!;
    this.#out[this.#outHead++] = undefined as unknown as Output;
    return o;
  }

  /** Current allocation ports and active channel bindings, for re-announcing to a (re)started data plane. */
  snapshot(): DataPlaneEvent[] {
    return this.#state.snapshot();
  }

  stats(): ServerStats {
    return {
      allocations: this.#state.allocations,
      permissions: this.#state.permissions,
      channels: this.#state.channels,
      relayed: {
        toPeer: { ...this.#relayed.toPeer },
        toClient: { ...this.#relayed.toClient },
      },
      relayedByFamily: {
        ipv4: { toPeer: { ...this.#relayedByFamily.ipv4.toPeer }, toClient: { ...this.#relayedByFamily.ipv4.toClient } },
        ipv6: { toPeer: { ...this.#relayedByFamily.ipv6.toPeer }, toClient: { ...this.#relayedByFamily.ipv6.toClient } },
      },
      responses: { ...this.#responses },
      dropped: { ...this.#dropped },
    };
  }

  // -- client side ---------------------------------------------------------------

  #fromClient(data: Uint8Array, local: LocalEndpoint, client: TransportAddress, now: number): void {
    const kind = classify(data);
    if (kind === 'channel-data') return this.#channelDataFromClient(data, local, client);
    if (kind !== 'stun') return this.#drop('not-turn');
    const decoded = decodeMessage(data);
    if (decoded.kind === 'drop') return this.#drop(decoded.reason);
    if (decoded.kind === 'reply-error') {
      if (!this.#allowUnauthenticated(client, now)) return;
      const attrs: StunAttributes = decoded.unknownAttributes ? { unknownAttributes: decoded.unknownAttributes } : {};
      const msg = errorResponse({ method: decoded.method, transactionId: decoded.transactionId }, decoded.code, attrs, decoded.reason);
      return this.#send(local, client, msg, `${methodName(decoded.method)}:${decoded.code}`);
    }
    const msg = decoded.message;
    switch (msg.cls) {
      case 'request':
        return this.#request(msg, local, client, now);
      case 'indication':
        if (msg.method === METHOD.SEND) return this.#sendIndication(msg, local, client);
        if (msg.method === METHOD.BINDING) return; // keepalive, RFC 8489 §6.3.2
        return this.#drop('unexpected-indication');
      default:
        return this.#drop('unexpected-response');
    }
  }

  #request(msg: StunMessage, local: LocalEndpoint, client: TransportAddress, now: number): void {
    if (msg.method === METHOD.BINDING) {
      return this.#reply(msg, local, client, { kind: 'success', attributes: { xorMappedAddress: client } }, undefined);
    }
    const known = msg.method === METHOD.ALLOCATE || msg.method === METHOD.REFRESH || msg.method === METHOD.CREATE_PERMISSION || msg.method === METHOD.CHANNEL_BIND;
    if (!known) {
      if (!this.#allowUnauthenticated(client, now)) return;
      return this.#reply(msg, local, client, { kind: 'error', code: ERROR.BAD_REQUEST }, undefined);
    }
    const fiveTuple = fiveTupleKey(local, client);
    const allocation = this.#state.byFiveTuple.get(fiveTuple);
    const verdict = authenticate(msg, client, now, {
      realm: this.#opts.realm,
      credentials: this.#opts.credentials,
      nonces: this.#nonces,
      ...(allocation ? { known: { username: allocation.username, key: allocation.key } } : {}),
    });
    if (verdict.kind === 'reject') {
      if (verdict.limited && !this.#allowUnauthenticated(client, now)) return;
      return this.#reply(msg, local, client, { kind: 'error', code: verdict.code, attributes: verdict.attributes }, undefined);
    }
    const auth = verdict.auth;
    if (allocation !== undefined && allocation.username !== auth.username && msg.method !== METHOD.ALLOCATE) {
      // RFC 8656 §5: requests on an allocation must use the credentials that created it.
      return this.#reply(msg, local, client, { kind: 'error', code: ERROR.WRONG_CREDENTIALS }, auth);
    }
    let reply: Reply;
    switch (msg.method) {
      case METHOD.ALLOCATE:
        reply = this.#allocate(msg, local, client, fiveTuple, allocation, auth, now);
        break;
      case METHOD.REFRESH:
        reply = this.#refresh(msg, allocation, now);
        break;
      case METHOD.CREATE_PERMISSION:
        reply = this.#createPermission(msg, allocation, now);
        break;
      default:
        reply = this.#channelBind(msg, allocation, now);
        break;
    }
    if (reply.kind !== 'deferred') this.#reply(msg, local, client, reply, auth);
  }

  // RFC 8656 §7.2
  #allocate(
    msg: StunMessage,
    local: LocalEndpoint,
    client: TransportAddress,
    fiveTuple: string,
    existing: Allocation | undefined,
    auth: AuthContext,
    now: number,
  ): Reply {
    const txKey = transactionIdKey(msg.transactionId);
    if (existing !== undefined) {
      if (existing.transactionKey === txKey && existing.username === auth.username) {
        // A retransmission: answer exactly as before.
        this.#count('allocate:success');
        this.#push({ kind: 'send', from: local, to: client, data: existing.response });
        return { kind: 'deferred' };
      }
      return { kind: 'error', code: ERROR.ALLOCATION_MISMATCH };
    }
    const pendingSame = this.#pendingByFiveTuple.get(fiveTuple);
    if (pendingSame !== undefined) {
      if (pendingSame.transactionKey === txKey) {
        this.#drop('allocate-in-progress');
        return { kind: 'deferred' };
      }
      return { kind: 'error', code: ERROR.ALLOCATION_MISMATCH };
    }
    const a = msg.attributes;
    if (a.requestedTransport === undefined) return { kind: 'error', code: ERROR.BAD_REQUEST };
    if (a.requestedTransport !== TRANSPORT_UDP) return { kind: 'error', code: ERROR.UNSUPPORTED_TRANSPORT };
    const token = a.reservationToken;
    if (token !== undefined && (a.evenPort !== undefined || a.requestedAddressFamily !== undefined || a.additionalAddressFamily !== undefined)) {
      return { kind: 'error', code: ERROR.BAD_REQUEST };
    }
    if (a.requestedAddressFamily !== undefined && a.additionalAddressFamily !== undefined) return { kind: 'error', code: ERROR.BAD_REQUEST };
    if (a.additionalAddressFamily !== undefined && a.additionalAddressFamily !== 6) return { kind: 'error', code: ERROR.BAD_REQUEST };
    if (a.additionalAddressFamily !== undefined && a.evenPort?.reserve === true) return { kind: 'error', code: ERROR.BAD_REQUEST };
    if (a.requestedAddressFamily === 'unsupported') return { kind: 'error', code: ERROR.ADDRESS_FAMILY_NOT_SUPPORTED };

    // Which families, and which one a dual request has to give up.
    const available = (f: Family): boolean => this.#opts.relayAddresses[familyName(f)] !== undefined;
    let families: Family[];
    let refusedFamily: Family | undefined;
    let reserved: { family: Family; port: number } | undefined;
    if (token !== undefined) {
      const r = this.#state.reservations.get(hex(token));
      if (r === undefined) return { kind: 'error', code: ERROR.INSUFFICIENT_CAPACITY };
      if (!available(r.family)) return { kind: 'error', code: ERROR.ADDRESS_FAMILY_NOT_SUPPORTED };
      families = [r.family];
      reserved = { family: r.family, port: r.port };
    } else if (a.additionalAddressFamily === 6) {
      families = ([4, 6] as const).filter(available);
      if (families.length === 0) return { kind: 'error', code: ERROR.ADDRESS_FAMILY_NOT_SUPPORTED };
      if (families.length === 1) refusedFamily = families[0] === 4 ? 6 : 4;
    } else {
      const f: Family = a.requestedAddressFamily ?? 4;
      if (!available(f)) return { kind: 'error', code: ERROR.ADDRESS_FAMILY_NOT_SUPPORTED };
      families = [f];
    }

    const max = this.#opts.maxAllocations;
    const perUser = this.#opts.maxAllocationsPerUser;
    const pendingOfUser = this.#pendingPerUser.get(auth.username) ?? 0;
    if (perUser !== undefined && this.#state.allocationsOf(auth.username) + pendingOfUser >= perUser) {
      return { kind: 'error', code: ERROR.ALLOCATION_QUOTA_REACHED };
    }
    if (max !== undefined && this.#state.allocations + this.#pendingByFiveTuple.size >= max) {
      this.#log?.warn({ max }, 'allocation limit reached');
      return { kind: 'error', code: ERROR.ALLOCATION_QUOTA_REACHED };
    }

    const even = a.evenPort !== undefined;
    const reserve = a.evenPort?.reserve === true;
    const slots: Array<{ family: Family; port: number; pairPort: number | undefined }> = [];
    for (const family of families) {
      if (reserved !== undefined) {
        slots.push({ family, port: reserved.port, pairPort: undefined });
        continue;
      }
      const pool = this.#state.pools[family];
      const port = pool.pick(this.#opts.random, { even, pair: reserve });
      if (port === undefined) {
        for (const s of slots) this.#releasePorts(s.family, s.port, s.pairPort);
        this.#log?.warn({ family }, 'no free relay port');
        return { kind: 'error', code: ERROR.INSUFFICIENT_CAPACITY };
      }
      const pairPort = reserve ? port + 1 : undefined;
      pool.take(port);
      if (pairPort !== undefined) pool.take(pairPort);
      slots.push({ family, port, pairPort });
    }
    if (token !== undefined) this.#state.claimReservation(hex(token)); // its port stays taken, now ours

    const pending: PendingAllocation = {
      fiveTuple,
      request: msg,
      transactionKey: txKey,
      auth,
      client,
      local,
      lifetime: this.#lifetime(a.lifetime),
      even,
      reserve,
      fromReservation: reserved !== undefined,
      ports: [],
      refusedFamily,
      timer: undefined as unknown as Timer<PendingAllocation>,
    };
    (pending as { timer: Timer<PendingAllocation> }).timer = TimerHeap.timer(pending);
    for (const s of slots) {
      pending.ports.push({ pending, family: s.family, port: s.port, pairPort: s.pairPort, attempts: 1, opened: false, token: 0 });
    }
    this.#pendingByFiveTuple.set(fiveTuple, pending);
    this.#pendingPerUser.set(auth.username, pendingOfUser + 1);
    this.#pendingHeap.schedule(pending.timer, now + this.#opts.portOpenTimeout);
    for (const slot of pending.ports) this.#openPort(slot);
    return { kind: 'deferred' };
  }

  #openPort(slot: PendingPort): void {
    slot.token = this.#nextToken++;
    if (this.#nextToken > 0x7fffffff) this.#nextToken = 1;
    this.#pendingByToken.set(slot.token, slot);
    this.#push({ kind: 'open-port', token: slot.token, family: slot.family, port: slot.port });
  }

  #retryPort(slot: PendingPort, now: number): void {
    const pending = slot.pending;
    this.#releasePorts(slot.family, slot.port, slot.pairPort);
    if (pending.fromReservation || slot.attempts >= this.#opts.portAttempts) {
      this.#log?.warn({ family: slot.family, attempts: slot.attempts }, 'could not open a relay port');
      slot.port = -1;
      slot.pairPort = undefined;
      return this.#failAllocation(pending, ERROR.INSUFFICIENT_CAPACITY);
    }
    const pool = this.#state.pools[slot.family];
    const port = pool.pick(this.#opts.random, { even: pending.even, pair: pending.reserve });
    if (port === undefined) {
      slot.port = -1;
      slot.pairPort = undefined;
      return this.#failAllocation(pending, ERROR.INSUFFICIENT_CAPACITY);
    }
    pool.take(port);
    slot.port = port;
    slot.pairPort = pending.reserve ? port + 1 : undefined;
    if (slot.pairPort !== undefined) pool.take(slot.pairPort);
    slot.attempts++;
    void now;
    this.#openPort(slot);
  }

  #releasePorts(family: Family, port: number, pairPort: number | undefined): void {
    if (port >= 0) this.#state.pools[family].release(port);
    if (pairPort !== undefined) this.#state.pools[family].release(pairPort);
  }

  #forgetPending(pending: PendingAllocation): void {
    this.#pendingByFiveTuple.delete(pending.fiveTuple);
    this.#pendingHeap.cancel(pending.timer);
    for (const slot of pending.ports) this.#pendingByToken.delete(slot.token);
    const n = (this.#pendingPerUser.get(pending.auth.username) ?? 1) - 1;
    if (n > 0) this.#pendingPerUser.set(pending.auth.username, n);
    else this.#pendingPerUser.delete(pending.auth.username);
  }

  /** Give up on a pending Allocate: close what was opened, free every port, answer `code`. */
  #failAllocation(pending: PendingAllocation, code: number): void {
    this.#forgetPending(pending);
    for (const slot of pending.ports) {
      if (slot.port < 0) continue;
      this.#releasePorts(slot.family, slot.port, slot.pairPort);
      // An open still in flight may complete later: closing it covers both cases.
      this.#push({ kind: 'close-port', family: slot.family, port: slot.port });
    }
    this.#reply(pending.request, pending.local, pending.client, { kind: 'error', code }, pending.auth);
  }

  #completeAllocation(pending: PendingAllocation, now: number): void {
    this.#forgetPending(pending);
    const ports: { v4?: number; v6?: number } = {};
    const relayed: TransportAddress[] = [];
    for (const slot of pending.ports) {
      ports[familyName(slot.family)] = slot.port;
      relayed.push({ family: slot.family, address: this.#opts.relayAddresses[familyName(slot.family)]!, port: slot.port });
    }
    relayed.sort((x, y) => x.family - y.family);
    const attributes: StunAttributes = {
      xorRelayedAddress: relayed,
      xorMappedAddress: pending.client,
      lifetime: pending.lifetime,
    };
    let reservationToken: Uint8Array | undefined;
    const pairSlot = pending.ports.find((s) => s.pairPort !== undefined);
    if (pairSlot !== undefined) {
      reservationToken = this.#newReservationToken();
      attributes.reservationToken = reservationToken;
    }
    if (pending.refusedFamily !== undefined) {
      attributes.addressErrorCode = { family: pending.refusedFamily, code: ERROR.ADDRESS_FAMILY_NOT_SUPPORTED, reason: 'Address Family not Supported' };
    }
    const response = this.#encodeReply(pending.request, { kind: 'success', attributes }, pending.auth);
    const allocation = this.#state.addAllocation({
      client: pending.client,
      local: pending.local,
      username: pending.auth.username,
      key: pending.auth.key,
      ports,
      expiresAt: now + pending.lifetime * 1000,
      transactionKey: pending.transactionKey,
      response,
    });
    if (pairSlot !== undefined && reservationToken !== undefined) {
      this.#state.addReservation(hex(reservationToken), pairSlot.family, pairSlot.pairPort!, now);
    }
    for (const slot of pending.ports) {
      this.#push({ kind: 'event', event: { type: 'allocation-port-opened', family: slot.family, port: slot.port, client: allocation.client } });
    }
    this.#count('allocate:success');
    this.#push({ kind: 'send', from: pending.local, to: pending.client, data: response });
  }

  #newReservationToken(): Uint8Array {
    for (;;) {
      const t = this.#opts.random(RESERVATION_TOKEN_BYTES).slice(0, RESERVATION_TOKEN_BYTES);
      if (t.length === RESERVATION_TOKEN_BYTES && !this.#state.reservations.has(hex(t))) return t;
    }
  }

  /** RFC 8656 §7.2/§7.5: min(requested, max), never below the default. */
  #lifetime(requested: number | undefined): number {
    const { defaultLifetime, maxLifetime } = this.#opts;
    if (requested === undefined) return defaultLifetime;
    return Math.max(defaultLifetime, Math.min(requested, maxLifetime));
  }

  // RFC 8656 §7.5
  #refresh(msg: StunMessage, allocation: Allocation | undefined, now: number): Reply {
    if (allocation === undefined) return { kind: 'error', code: ERROR.ALLOCATION_MISMATCH };
    const f = msg.attributes.requestedAddressFamily;
    if (f !== undefined && (f === 'unsupported' || allocation.ports[familyName(f)] === undefined)) {
      return { kind: 'error', code: ERROR.PEER_ADDRESS_FAMILY_MISMATCH };
    }
    if (msg.attributes.lifetime === 0) {
      this.#state.removeAllocation(allocation);
      return { kind: 'success', attributes: { lifetime: 0 } };
    }
    const lifetime = this.#lifetime(msg.attributes.lifetime);
    this.#state.refreshAllocation(allocation, now + lifetime * 1000);
    return { kind: 'success', attributes: { lifetime } };
  }

  /** 443 when the allocation has no relayed address in the peer's family, 403 when policy denies it. */
  #checkPeer(allocation: Allocation, peer: TransportAddress): Reply | undefined {
    if (allocation.ports[familyName(peer.family)] === undefined) return { kind: 'error', code: ERROR.PEER_ADDRESS_FAMILY_MISMATCH };
    if (!this.#opts.peerPolicy.check(peer.address, peer.port).allowed) return { kind: 'error', code: ERROR.FORBIDDEN };
    return undefined;
  }

  // RFC 8656 §9.2
  #createPermission(msg: StunMessage, allocation: Allocation | undefined, now: number): Reply {
    if (allocation === undefined) return { kind: 'error', code: ERROR.ALLOCATION_MISMATCH };
    const peers = msg.attributes.xorPeerAddress ?? [];
    if (peers.length === 0) return { kind: 'error', code: ERROR.BAD_REQUEST };
    // All or nothing: check every peer before installing any.
    for (const peer of peers) {
      const refused = this.#checkPeer(allocation, peer);
      if (refused) return refused;
    }
    for (const peer of peers) this.#state.installPermission(allocation, peer.address, now);
    return { kind: 'success', attributes: {} };
  }

  // RFC 8656 §12.2
  #channelBind(msg: StunMessage, allocation: Allocation | undefined, now: number): Reply {
    if (allocation === undefined) return { kind: 'error', code: ERROR.ALLOCATION_MISMATCH };
    const number = msg.attributes.channelNumber;
    const peer = msg.attributes.xorPeerAddress?.[0];
    if (number === undefined || peer === undefined || !validChannel(number, this.#opts.maxChannel)) {
      return { kind: 'error', code: ERROR.BAD_REQUEST };
    }
    const refused = this.#checkPeer(allocation, peer);
    if (refused) return refused;
    if (this.#state.channelConflict(allocation, number, peer)) return { kind: 'error', code: ERROR.BAD_REQUEST };
    // Binding first, then the permission (§12.2 installs or refreshes it too):
    // if the permission had lapsed, installing it announces the channel, so
    // the data plane gets one channel-bound with the new binding, and every
    // event goes out before the response.
    this.#state.bindChannel(allocation, number, peer, now);
    this.#state.installPermission(allocation, peer.address, now);
    return { kind: 'success', attributes: {} };
  }

  // -- relaying --------------------------------------------------------------------

  // RFC 8656 §10.2
  #sendIndication(msg: StunMessage, local: LocalEndpoint, client: TransportAddress): void {
    const allocation = this.#state.allocationOf(local, client);
    if (allocation === undefined) return this.#drop('no-allocation');
    const peer = msg.attributes.xorPeerAddress?.[0];
    const data = msg.attributes.data;
    if (peer === undefined || data === undefined) return this.#drop('malformed-send');
    // A permission is for an address, any port: the relay's own ports on it are refused here.
    if (this.#opts.peerPolicy.isRelayItself(peer.address, peer.port)) return this.#drop('relay-itself');
    this.#relayToPeer(allocation, peer, data);
  }

  // RFC 8656 §12.5
  // The per-packet path: header fields read in place, no result objects, no string keys.
  #channelDataFromClient(buf: Uint8Array, local: LocalEndpoint, client: TransportAddress): void {
    const channel = channelDataHeader(buf, this.#opts.maxChannel);
    if (channel < 0) return this.#drop(CHANNEL_DATA_DROP[-channel]!);
    const allocation = this.#state.allocationOf(local, client);
    if (allocation === undefined) return this.#drop('no-allocation');
    const bound = this.#state.activeChannel(allocation, channel);
    if (bound === undefined) return this.#drop('no-channel');
    this.#relayToPeer(allocation, bound.peer, buf, 4, 4 + ((buf[2]! << 8) | buf[3]!));
  }

  /** Relays data[start, end) to `peer` from the allocation's port in the peer's family. */
  #relayToPeer(allocation: Allocation, peer: TransportAddress, data: Uint8Array, start = 0, end = data.length): void {
    const from = allocation.relayEndpoints[peer.family];
    if (from === undefined) return this.#drop('peer-family');
    if (!this.#state.hasPermission(allocation, peer.address)) return this.#drop('no-permission');
    const n = end - start;
    this.#relayed.toPeer.packets++;
    this.#relayed.toPeer.bytes += n;
    const byFamily = peer.family === 4 ? this.#relayedByFamily.ipv4.toPeer : this.#relayedByFamily.ipv6.toPeer;
    byFamily.packets++;
    byFamily.bytes += n;
    // Copy: the input may be a view into a buffer the transport reuses.
    const out = allocTransient(n);
    out.set(start === 0 && end === data.length ? data : data.subarray(start, end));
    this.#push({ kind: 'send', from, to: peer, data: out });
  }

  // RFC 8656 §11.3 (Data indication) and §12.6 (ChannelData)
  #fromPeer(allocation: Allocation, data: Uint8Array, family: Family, peer: TransportAddress): void {
    if (peer.family !== family) return this.#drop('peer-family');
    if (!this.#state.hasPermission(allocation, peer.address)) return this.#drop('no-permission');
    const channel = this.#state.activeChannelToPeer(allocation, peer);
    let out: Uint8Array;
    if (channel !== undefined) {
      if (data.length > MAX_DATAGRAM - 4) return this.#drop('oversize');
      out = encodeChannelDataAny(channel.number, data);
    } else {
      // DATA + XOR-PEER-ADDRESS (+ header): 20 + 8 + 24 at most.
      if (data.length > MAX_DATAGRAM - 52) return this.#drop('oversize');
      out = encodeMessage({
        method: METHOD.DATA,
        cls: 'indication',
        transactionId: this.#opts.random(12).slice(0, 12),
        attributes: { xorPeerAddress: [peer], data },
      });
    }
    this.#relayed.toClient.packets++;
    this.#relayed.toClient.bytes += data.length;
    const byFamily = allocation.client.family === 4 ? this.#relayedByFamily.ipv4.toClient : this.#relayedByFamily.ipv6.toClient;
    byFamily.packets++;
    byFamily.bytes += data.length;
    this.#push({ kind: 'send', from: allocation.local, to: allocation.client, data: out });
  }

  // -- responses and bookkeeping ---------------------------------------------------

  #encodeReply(req: StunMessage, reply: Reply, auth: AuthContext | undefined): Uint8Array {
    let init: StunMessageInit;
    const software = this.#opts.software;
    if (reply.kind === 'error') {
      const extra: StunAttributes = { ...(reply.attributes ?? {}) };
      if (software !== undefined) extra.software = software;
      init = errorResponse(req, reply.code, extra);
    } else {
      const attrs: StunAttributes = reply.kind === 'success' ? { ...reply.attributes } : {};
      if (software !== undefined) attrs.software = software;
      init = successResponse(req, attrs);
    }
    const integrity: IntegrityAlgorithm | 'both' | undefined = auth === undefined ? undefined : auth.algorithm === 'sha256' ? 'both' : 'sha1';
    return encodeMessage(init, auth === undefined ? { fingerprint: true } : { key: auth.key, integrity: integrity!, fingerprint: true });
  }

  #reply(req: StunMessage, local: LocalEndpoint, client: TransportAddress, reply: Reply, auth: AuthContext | undefined): void {
    if (reply.kind === 'deferred') return;
    const data = this.#encodeReply(req, reply, auth);
    this.#count(`${methodName(req.method)}:${reply.kind === 'success' ? 'success' : reply.code}`);
    this.#push({ kind: 'send', from: local, to: client, data });
  }

  /** Send an already-built unauthenticated message (codec 400/420). */
  #send(local: LocalEndpoint, client: TransportAddress, msg: StunMessageInit, counter: ResponseKey): void {
    const attributes: StunAttributes = { ...msg.attributes };
    if (this.#opts.software !== undefined) attributes.software = this.#opts.software;
    const data = encodeMessage({ ...msg, attributes }, { fingerprint: true });
    this.#count(counter);
    this.#push({ kind: 'send', from: local, to: client, data });
  }

  #allowUnauthenticated(client: TransportAddress, now: number): boolean {
    const limiter = this.#opts.rateLimiter;
    if (limiter === undefined || limiter.take(client.address, now)) return true;
    this.#drop('rate-limited');
    return false;
  }

  #push(o: Output): void {
    this.#out.push(o);
  }

  #count(key: ResponseKey): void {
    this.#responses[key] = (this.#responses[key] ?? 0) + 1;
  }

  #drop(reason: RelayDropReason): void {
    this.#dropped[reason] = (this.#dropped[reason] ?? 0) + 1;
  }

  #internalError(err: unknown): void {
    this.#drop('internal-error');
    this.#log?.error({ err }, 'turn server internal error (datagram dropped)');
  }
}


function hex(b: Uint8Array): string {
  return transactionIdKey(b);
}
