// The sans-IO TURN server (RFC 8656 over UDP, long-term credentials of
// RFC 8489 §9.2). Input: datagrams with their local and remote addresses,
// port-open results and the current time (`now`: ms on a monotonic clock, so
// lifetimes ignore wall-clock steps). Output: a queue of datagrams to send,
// ports to open/close and data-plane events (pollOutput), and the next
// deadline. No sockets, no Math.random, and no clock but the injected
// wallClock (credential expiry, nonces); nothing throws out of it.
//
// Theory of operation:
// - A datagram on the listen port is client traffic: STUN (requests,
//   Send/Binding indications) or ChannelData. Anything else arriving on an
//   allocation port is peer traffic, relayed to the client as ChannelData
//   (bound channel) or a Data indication (permission), else dropped. The
//   per-packet work is relay-path.ts.
// - Every request we answer spends a per-source budget (rateLimits):
//   Binding and whatever is answered without credentials spend the
//   unauthenticated one (a spoofed source would have us reflect those
//   answers), requests that pass authentication their own. Over budget the
//   request is dropped unanswered: the client's STUN retransmissions back
//   off until the bucket refills, whereas an error would end the
//   transaction (many clients give up an allocation on an error to its
//   Refresh) and STUN has no "slow down" code. ChannelData and Send
//   indications are not limited here: they get no answer, need an
//   allocation and permission that budgeted requests made, and the data
//   path bounds its own cost.
// - Every request but Binding is authenticated first (auth.ts); handlers
//   (allocate.ts, permission-channel.ts) return a Reply, and one place
//   (#reply) encodes it with the integrity the request earned, SOFTWARE and
//   FINGERPRINT (reply.ts), and counts it.
// - An Allocate does not answer at once: pending-allocations.ts takes its
//   ports, asks the transport to open them (`open-port`) and settles when
//   portOpened() reports back (retrying other ports on failure) or its
//   deadline passes. State changes emit their data-plane events before any
//   response that depends on them (install first, answer after), so the
//   kernel never sees a channel later than the client does.
// - Tables and timers live in state.ts; this file only dispatches.
import type { Logger } from 'pino';
import {
  CHANNEL_MAX,
  ERROR,
  METHOD,
  classify,
  decodeMessage,
  encodeMessage,
  errorResponse,
  methodName,
  transactionIdKey,
  type StunAttributes,
  type StunMessage,
  type StunMessageInit,
} from '../stun/index.ts';
import { createNonceManager, type NonceManager } from '../auth/index.ts';
import { authenticate, type AuthContext, type RateLimitKind } from './auth.ts';
import { canonicalAddress, familyName } from './address.ts';
import { grantedAttributes, newReservationToken, planAllocate, refresh, reservationKey } from './allocate.ts';
import type { TurnServerOptions } from './options.ts';
import { PendingAllocations, type PendingAllocation } from './pending-allocations.ts';
import { channelBind, createPermission } from './permission-channel.ts';
import { MAX_DATAGRAM, RelayPath } from './relay-path.ts';
import { encodeReply, type Reply } from './reply.ts';
import { allocationRefusal, quotaUser } from './limits.ts';
import { RelayState, fiveTupleKey, portKey, type Allocation } from './state.ts';
import { SessionLog } from './session-log.ts';
import { nonceKeyOf, restoreState, saveState, type RestoreCounts, type StateDocument } from './state-document.ts';
import type { DataPlaneEvent, Family, LocalEndpoint, Output, ServerStats, TransportAddress } from './types.ts';
import type { RelayDropReason, RelayRefusal } from '../../shared/reasons.ts';
import type { ResponseKey, TransportStats } from '../../shared/stats.ts';
import { transportOf, type ClientTransport } from '../../shared/endpoint.ts';

/** What a pending Allocate keeps to be answered when it settles. */
interface AllocateRequest {
  readonly request: StunMessage;
  readonly transactionKey: string;
  readonly auth: AuthContext;
  /** The user the quotas count it against. */
  readonly user: string;
  readonly client: TransportAddress;
  readonly local: LocalEndpoint;
  readonly lifetime: number; // seconds
  /** The family refused in a dual request (ADDRESS-ERROR-CODE 440). */
  readonly refusedFamily: Family | undefined;
}

export class TurnServer {
  readonly #opts: Required<Pick<TurnServerOptions, 'defaultLifetime' | 'maxLifetime' | 'portAttempts' | 'portOpenTimeout' | 'maxChannel'>> & TurnServerOptions;
  readonly #log: Logger | undefined;
  readonly #session: SessionLog | undefined;
  #nonces: NonceManager;
  #nonceKey: Uint8Array;
  /** Set while draining: new Allocates are refused (300 to this alternate, or 508 without one). */
  #draining: { alternate: TransportAddress | undefined } | undefined;
  /** Bumped by every change a state document would carry (the transport saves it when this moves). */
  #changes = 0;
  readonly #state: RelayState;
  readonly #pending: PendingAllocations<AllocateRequest>;
  readonly #relay: RelayPath;
  readonly #out: Output[] = [];
  #outHead = 0;
  readonly #responses: Partial<Record<ResponseKey, number>> = {};
  readonly #dropped: Partial<Record<RelayDropReason, number>> = {};
  readonly #refused: Partial<Record<RelayRefusal, number>> = {};
  readonly #errorsBy: Record<ClientTransport, number> = { udp: 0, tcp: 0, tls: 0 };

  constructor(opts: TurnServerOptions) {
    const { min, max } = opts.portRange;
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 65535 || min > max) {
      throw new RangeError(`bad port range ${min}-${max}`);
    }
    this.#opts = { defaultLifetime: 600, maxLifetime: 3600, portAttempts: 3, portOpenTimeout: 10_000, maxChannel: CHANNEL_MAX, ...opts };
    if (this.#opts.maxChannel < CHANNEL_MAX || this.#opts.maxChannel > 0x7fff) throw new RangeError(`maxChannel must be 0x4fff-0x7fff`);
    this.#log = opts.logger;
    this.#nonceKey = typeof opts.nonce.secret === 'string' ? new Uint8Array(Buffer.from(opts.nonce.secret, 'utf8')) : opts.nonce.secret;
    this.#nonces = this.#nonceManager(this.#nonceKey);
    const emit = (o: Output): void => this.#push(o);
    this.#state = new RelayState(opts.portRange, emit);
    this.#session = opts.sessionLog ? new SessionLog(opts.sessionLog, this.#state, opts.peerPolicy) : undefined;
    this.#state.observer = this.#session;
    this.#pending = new PendingAllocations({
      pools: this.#state.pools,
      random: opts.random,
      portAttempts: this.#opts.portAttempts,
      portOpenTimeout: this.#opts.portOpenTimeout,
      emit,
      logger: opts.logger,
    });
    this.#relay = new RelayPath(this.#state, this.#opts, emit, (reason) => this.#drop(reason));
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
      // A stream connection is client traffic whatever its port (TCP on the listen port, TLS on its own).
      if (local.connection !== undefined || local.port === this.#opts.listenPort) return this.#fromClient(data, local, from, now);
      const allocation = this.#state.byPort.get(portKey(local.family, local.port));
      if (allocation === undefined) return this.#drop('no-allocation');
      this.#relay.fromPeer(allocation, data, local.family, from);
    } catch (err) {
      this.#internalError(err);
    }
  }

  /** The transport's answer to an `open-port` output. Never throws. */
  portOpened(token: number, ok: boolean, now: number): void {
    try {
      const settled = this.#pending.portOpened(token, ok);
      if (settled === undefined) return; // still waiting, or the Allocate already failed or timed out
      if (settled.outcome === 'complete') this.#completeAllocation(settled.pending, now);
      else this.#refuseAllocation(settled.pending);
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
      this.#changes++;
    } catch (err) {
      this.#internalError(err);
    }
  }

  /**
   * A client's TCP or TLS connection closed (`local` carries its id): its
   * allocation dies with it (RFC 8656 §3.1: the 5-tuple is gone), with the
   * usual channel-unbound, port-closed events and close-port outputs, and an
   * Allocate still waiting for its ports is given up. Never throws.
   */
  connectionClosed(local: LocalEndpoint, remote: TransportAddress, now: number): void {
    try {
      const client = canonicalAddress(remote);
      if (client === undefined) return;
      this.#state.expire(now);
      const fiveTuple = fiveTupleKey(local, client);
      this.#pending.cancel(fiveTuple);
      const allocation = this.#state.byFiveTuple.get(fiveTuple);
      if (allocation !== undefined) this.#state.removeAllocation(allocation);
    } catch (err) {
      this.#internalError(err);
    }
  }

  /** Expire whatever is due at `now`. Never throws. */
  handleTimeout(now: number): void {
    try {
      this.#state.expire(now);
      for (let p = this.#pending.popExpired(now); p !== undefined; p = this.#pending.popExpired(now)) {
        this.#log?.warn({ client: p.context.client }, 'allocation port open timed out');
        this.#refuseAllocation(p);
      }
    } catch (err) {
      this.#internalError(err);
    }
  }

  /** The earliest time handleTimeout has work to do. */
  nextDeadline(): number | undefined {
    const a = this.#state.nextDeadline();
    const b = this.#pending.nextDeadline();
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

  /**
   * Drain for a rolling upgrade: existing allocations are served to their
   * end; a new Allocate is refused with 300 Try Alternate and ALTERNATE-SERVER
   * when `alternate` is given (RFC 8656 §7.2 lets the server redirect), else
   * with 508 Insufficient Capacity: the code RFC 8656 gives a server that
   * cannot allocate now, which clients take as "try another server", whereas
   * 403 would say the request itself is forbidden.
   */
  drain(alternate?: TransportAddress): void {
    this.#draining = { alternate };
  }

  get draining(): boolean {
    return this.#draining !== undefined;
  }

  /** A counter that moves whenever the tables changed in a way a state document carries. */
  get stateChanges(): number {
    return this.#changes;
  }

  /** The tables and the nonce key as a document a later relay process restores (state-document.ts). */
  saveState(now: number, wallNow: number): StateDocument {
    const { v4, v6 } = this.#opts.relayAddresses;
    const relayAddresses = { ...(v4 ? { v4 } : {}), ...(v6 ? { v6 } : {}) };
    return saveState(this.#state, { software: this.#opts.software ?? '', relayAddresses, nonceKey: this.#nonceKey }, now, wallNow);
  }

  /**
   * Takes over a previous relay process's state: its allocations with their
   * remaining lifetimes and its nonce key (clients keep their nonces). Only on
   * a fresh server, before any traffic; refused (thrown) when the document's
   * relayed addresses are not this server's, since its allocations told
   * clients those. Queues no output: snapshot() re-announces the restored state.
   */
  restoreState(doc: StateDocument, now: number, wallNow: number): RestoreCounts {
    if (this.#state.allocations > 0) throw new Error('restoreState on a server that already has allocations');
    const mine = this.#opts.relayAddresses;
    if ((doc.relayAddresses.v4 ?? '') !== (mine.v4 ?? '') || (doc.relayAddresses.v6 ?? '') !== (mine.v6 ?? '')) {
      throw new Error(`the saved state relays from ${JSON.stringify(doc.relayAddresses)}, this relay from ${JSON.stringify(mine)}`);
    }
    const observer = this.#state.observer;
    this.#state.observer = undefined;
    try {
      const counts = restoreState(this.#state, doc, now, wallNow);
      this.#nonceKey = nonceKeyOf(doc);
      this.#nonces = this.#nonceManager(this.#nonceKey);
      return counts;
    } finally {
      this.#state.observer = observer;
      this.#out.length = 0;
      this.#outHead = 0;
    }
  }

  #nonceManager(secret: Uint8Array): NonceManager {
    const ttl = this.#opts.nonce.ttlSeconds;
    return createNonceManager({ secret, ...(ttl !== undefined ? { ttlSeconds: ttl } : {}) });
  }

  stats(): ServerStats {
    return {
      allocations: this.#state.allocations,
      permissions: this.#state.permissions,
      channels: this.#state.channels,
      reservations: this.#state.reservations.size,
      ...this.#relay.counters(),
      responses: { ...this.#responses },
      dropped: { ...this.#dropped },
      refused: { ...this.#refused },
      byTransport: {
        udp: this.#transportStats('udp'),
        tcp: this.#transportStats('tcp'),
        tls: this.#transportStats('tls'),
      },
    };
  }

  #transportStats(t: ClientTransport): TransportStats {
    return { allocations: this.#state.allocationsBy(t), relayedByFamily: this.#relay.relayedBy(t), errors: this.#errorsBy[t] };
  }

  // -- client side ---------------------------------------------------------------

  #fromClient(data: Uint8Array, local: LocalEndpoint, client: TransportAddress, now: number): void {
    const kind = classify(data);
    if (kind === 'channel-data') return this.#relay.channelDataFromClient(data, local, client);
    if (kind !== 'stun') return this.#drop('not-turn');
    const decoded = decodeMessage(data);
    if (decoded.kind === 'drop') return this.#drop(decoded.reason);
    if (decoded.kind === 'reply-error') {
      if (!this.#admit('unauthenticated', local, client, now)) return;
      const attrs: StunAttributes = decoded.unknownAttributes ? { unknownAttributes: decoded.unknownAttributes } : {};
      const msg = errorResponse({ method: decoded.method, transactionId: decoded.transactionId }, decoded.code, attrs, decoded.reason);
      return this.#send(local, client, msg, `${methodName(decoded.method)}:${decoded.code}`);
    }
    const msg = decoded.message;
    switch (msg.cls) {
      case 'request':
        return this.#request(msg, local, client, now);
      case 'indication':
        if (msg.method === METHOD.SEND) return this.#relay.sendIndication(msg, local, client);
        if (msg.method === METHOD.BINDING) return; // keepalive, RFC 8489 §6.3.2
        return this.#drop('unexpected-indication');
      default:
        return this.#drop('unexpected-response');
    }
  }

  #request(msg: StunMessage, local: LocalEndpoint, client: TransportAddress, now: number): void {
    if (msg.method === METHOD.BINDING) {
      if (!this.#admit('unauthenticated', local, client, now)) return;
      return this.#reply(msg, local, client, { kind: 'success', attributes: { xorMappedAddress: client } }, undefined);
    }
    const known = msg.method === METHOD.ALLOCATE || msg.method === METHOD.REFRESH || msg.method === METHOD.CREATE_PERMISSION || msg.method === METHOD.CHANNEL_BIND;
    if (!known) {
      if (!this.#admit('unauthenticated', local, client, now)) return;
      return this.#reply(msg, local, client, { kind: 'error', code: ERROR.BAD_REQUEST }, undefined);
    }
    const fiveTuple = fiveTupleKey(local, client);
    const allocation = this.#state.byFiveTuple.get(fiveTuple);
    const verdict = authenticate(msg, client, this.#opts.wallClock?.() ?? now, {
      realm: this.#opts.realm,
      credentials: this.#opts.credentials,
      nonces: this.#nonces,
      ...(allocation ? { known: { username: allocation.username, key: allocation.key } } : {}),
    });
    if (verdict.kind === 'reject') {
      if (!this.#admit(verdict.limit, local, client, now)) return;
      return this.#reply(msg, local, client, { kind: 'error', code: verdict.code, attributes: verdict.attributes }, undefined);
    }
    if (!this.#admit('authenticated', local, client, now)) return;
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
        reply = refresh(this.#state, this.#opts, msg, allocation, now);
        break;
      case METHOD.CREATE_PERMISSION:
        reply = createPermission(this.#state, this.#opts, msg, allocation, now);
        break;
      default:
        reply = channelBind(this.#state, this.#opts, msg, allocation, now);
        break;
    }
    if (reply.kind !== 'deferred') this.#reply(msg, local, client, reply, auth);
  }

  // RFC 8656 §7.2: retransmissions and quotas here, the request checks in
  // allocate.ts, the ports in pending-allocations.ts.
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
    const pendingSame = this.#pending.of(fiveTuple);
    if (pendingSame !== undefined) {
      if (pendingSame.context.transactionKey === txKey) {
        this.#drop('allocate-in-progress');
        return { kind: 'deferred' };
      }
      return { kind: 'error', code: ERROR.ALLOCATION_MISMATCH };
    }
    if (this.#draining !== undefined) {
      const alternate = this.#draining.alternate;
      return alternate ? { kind: 'error', code: ERROR.TRY_ALTERNATE, attributes: { alternateServer: alternate } } : { kind: 'error', code: ERROR.INSUFFICIENT_CAPACITY };
    }
    const plan = planAllocate(msg.attributes, this.#opts.relayAddresses, this.#state.reservations, this.#opts);
    if (plan.kind === 'error') return plan;

    const user = quotaUser(this.#opts.credentials, auth.username);
    const refused = allocationRefusal(this.#opts, this.#state, this.#pending, user, plan.reserve);
    if (refused !== undefined) return refused;

    const started = this.#pending.start(
      {
        fiveTuple,
        username: user, // the key of its per-user count
        families: plan.families,
        reservedPort: plan.reservation?.port,
        even: plan.even,
        reserve: plan.reserve,
        context: { request: msg, transactionKey: txKey, auth, user, client, local, lifetime: plan.lifetime, refusedFamily: plan.refusedFamily },
      },
      now,
    );
    if (started === undefined) return { kind: 'error', code: ERROR.INSUFFICIENT_CAPACITY };
    if (plan.reservation !== undefined) this.#state.claimReservation(plan.reservation.key); // its port stays taken, now ours
    return { kind: 'deferred' };
  }

  /** The Allocate's ports are open: record the allocation, announce its ports, answer. */
  #completeAllocation(pending: PendingAllocation<AllocateRequest>, now: number): void {
    const req = pending.context;
    const ports: { v4?: number; v6?: number } = {};
    for (const slot of pending.ports) ports[familyName(slot.family)] = slot.port;
    const pairSlot = pending.ports.find((s) => s.pairPort !== undefined);
    const reservationToken = pairSlot === undefined ? undefined : newReservationToken(this.#opts.random, this.#state.reservations);
    const attributes = grantedAttributes(
      { ports: pending.ports, client: req.client, lifetime: req.lifetime, reservationToken, refusedFamily: req.refusedFamily },
      this.#opts.relayAddresses,
    );
    const response = encodeReply(req.request, { kind: 'success', attributes }, req.auth, this.#opts.software);
    const allocation = this.#state.addAllocation({
      client: req.client,
      local: req.local,
      username: req.auth.username,
      user: req.user,
      key: req.auth.key,
      ports,
      expiresAt: now + req.lifetime * 1000,
      transactionKey: req.transactionKey,
      response,
    });
    if (pairSlot !== undefined && reservationToken !== undefined) {
      this.#state.addReservation(reservationKey(reservationToken), pairSlot.family, pairSlot.pairPort!, now, allocation);
    }
    for (const slot of pending.ports) {
      this.#push({ kind: 'event', event: { type: 'allocation-port-opened', family: slot.family, port: slot.port, client: allocation.client } });
    }
    this.#count('allocate:success');
    this.#changes++;
    this.#session?.allocated(allocation, req.lifetime);
    this.#push({ kind: 'send', from: req.local, to: req.client, data: response });
  }

  /** The Allocate failed in pending-allocations.ts (ports already freed and closed): 508. */
  #refuseAllocation(pending: PendingAllocation<AllocateRequest>): void {
    const req = pending.context;
    this.#reply(req.request, req.local, req.client, { kind: 'error', code: ERROR.INSUFFICIENT_CAPACITY }, req.auth);
  }

  // -- responses and bookkeeping ---------------------------------------------------

  #reply(req: StunMessage, local: LocalEndpoint, client: TransportAddress, reply: Reply, auth: AuthContext | undefined): void {
    if (reply.kind === 'deferred') return;
    this.#session?.answered(req, local, client, reply, auth);
    const data = encodeReply(req, reply, auth, this.#opts.software);
    if (reply.kind === 'success' && req.method !== METHOD.BINDING) this.#changes++;
    this.#count(`${methodName(req.method)}:${reply.kind === 'success' ? 'success' : reply.code}`);
    if (reply.kind === 'error') this.#errorsBy[transportOf(local)]++;
    if (reply.kind === 'error' && reply.refused !== undefined) this.#refused[reply.refused] = (this.#refused[reply.refused] ?? 0) + 1;
    this.#push({ kind: 'send', from: local, to: client, data });
  }

  /** Send an already-built unauthenticated message (codec 400/420). */
  #send(local: LocalEndpoint, client: TransportAddress, msg: StunMessageInit, counter: ResponseKey): void {
    const attributes: StunAttributes = { ...msg.attributes };
    if (this.#opts.software !== undefined) attributes.software = this.#opts.software;
    const data = encodeMessage({ ...msg, attributes }, { fingerprint: true });
    this.#session?.refused(client, local, msg.method, msg.attributes?.errorCode?.code ?? 400);
    this.#errorsBy[transportOf(local)]++;
    this.#count(counter);
    this.#push({ kind: 'send', from: local, to: client, data });
  }

  /** Spend one request of the client's `kind` budget; false (counted) when it is spent: drop the request. */
  #admit(kind: RateLimitKind, local: LocalEndpoint, client: TransportAddress, now: number): boolean {
    const admission = this.#opts.rateLimits?.[kind]?.admit(client.address, now) ?? 'pass';
    if (admission === 'pass') return true;
    this.#drop(admission === 'limited-overflow' ? 'rate-limited-overflow' : kind === 'unauthenticated' ? 'rate-limited' : 'rate-limited-authenticated');
    this.#session?.rateLimited(client, local);
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

