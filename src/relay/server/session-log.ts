// A TURN session's life in the logs, at debug, with the fields an operator
// greps for (client and transport, user, relayed ports, peer, channel,
// lifetime, reason): allocation created, refreshed, expired, deleted;
// permission installed, expired; channel bound, refreshed, expired, unbound;
// every refused or dropped request with its RFC code and reason.
//
// Fed from two places, so no request handler carries a log call: the server
// where it answers (server.ts: #reply, #send, #completeAllocation and the
// unauthenticated rate limit) and the state tables' observer (state.ts: what
// expires, what is deleted, what the data plane is told). Still sans-IO: the
// logger and the per-source budget are injected. Nothing is built unless the
// logger is at debug. Lines a client can cause at will (its requests and what
// they change) take from its address's budget; expiries do not.
import type { Logger } from 'pino';
import { ERROR, METHOD, errorReason, methodName, type StunMessage } from '../stun/index.ts';
import type { PeerPolicy } from '../policy/index.ts';
import { addressText, bindingFields } from '../../shared/log-fields.ts';
import { transportOf } from '../../shared/endpoint.ts';
import type { ChannelBinding } from '../../shared/binding.ts';
import type { AuthContext } from './auth.ts';
import type { Reply } from './reply.ts';
import { CHANNEL_LIFETIME_MS, PERMISSION_LIFETIME_MS, portKey, type Allocation, type RelayState, type StateObserver, type Timed } from './state.ts';
import type { DataPlaneEvent, LocalEndpoint, TransportAddress } from './types.ts';

export interface SessionLogOptions {
  /** The `session` module's logger; every line is at debug. */
  readonly logger: Logger;
  /** Lines per client address (LogHub.perSource): false = suppress this one (it counts it). */
  readonly budget: { take(source: string): boolean };
}

/** What an operator calls the cause of a refusal, by RFC error code. */
const REFUSAL_REASON: Readonly<Record<number, string>> = {
  [ERROR.BAD_REQUEST]: 'bad-request',
  [ERROR.UNKNOWN_ATTRIBUTE]: 'bad-request',
  [ERROR.UNSUPPORTED_TRANSPORT]: 'bad-request',
  [ERROR.UNAUTHENTICATED]: 'auth',
  [ERROR.STALE_NONCE]: 'auth',
  [ERROR.WRONG_CREDENTIALS]: 'auth',
  [ERROR.FORBIDDEN]: 'peer-policy',
  [ERROR.ALLOCATION_MISMATCH]: 'allocation-mismatch',
  [ERROR.ADDRESS_FAMILY_NOT_SUPPORTED]: 'address-family',
  [ERROR.PEER_ADDRESS_FAMILY_MISMATCH]: 'address-family',
  [ERROR.ALLOCATION_QUOTA_REACHED]: 'quota',
  [ERROR.INSUFFICIENT_CAPACITY]: 'capacity',
};

const PERMISSION_LIFETIME = PERMISSION_LIFETIME_MS / 1000;
const CHANNEL_LIFETIME = CHANNEL_LIFETIME_MS / 1000;

type Fields = Record<string, unknown>;

export class SessionLog implements StateObserver {
  readonly #log: Logger;
  readonly #budget: SessionLogOptions['budget'];
  /** The allocation whose expiry is being processed: its deletion follows at once. */
  #expiring: Allocation | undefined;
  /** The allocation being deleted (its channels are unbound with it), and whether by expiry. */
  #ending: Allocation | undefined;
  #endingExpired = false;

  constructor(
    opts: SessionLogOptions,
    private readonly state: RelayState,
    private readonly peerPolicy: PeerPolicy,
  ) {
    this.#log = opts.logger;
    this.#budget = opts.budget;
  }

  /** Whether lines are made at all (the logger is at debug). */
  get on(): boolean {
    return this.#log.isLevelEnabled('debug');
  }

  // -- from the server -------------------------------------------------------

  allocated(a: Allocation, lifetime: number): void {
    if (this.on) this.#line(a.client, { ...allocationFields(a), lifetime }, 'allocation created');
  }

  /** A request answered (not Allocate's success, which is `allocated`). */
  answered(req: StunMessage, local: LocalEndpoint, client: TransportAddress, reply: Reply, auth: AuthContext | undefined): void {
    if (!this.on || reply.kind === 'deferred') return;
    if (reply.kind === 'error') return this.refused(client, local, req.method, reply.code, req, auth?.username ?? req.attributes.username);
    const a = this.state.allocationOf(local, client);
    if (a === undefined) return; // Binding; or Refresh with lifetime 0 (`removing` told it)
    if (req.method === METHOD.REFRESH) {
      this.#line(client, { ...allocationFields(a), lifetime: reply.attributes.lifetime }, 'allocation refreshed');
    } else if (req.method === METHOD.CREATE_PERMISSION) {
      const peers = (req.attributes.xorPeerAddress ?? []).map((p) => p.address);
      this.#line(client, { ...allocationFields(a), peer: peers.length === 1 ? peers[0] : peers, lifetime: PERMISSION_LIFETIME }, 'permission installed');
    }
    // ChannelBind: its data-plane event tells bound or refreshed (see `event`).
  }

  /** A request refused with `code`; without `req`, one the codec refused (400/420) before reading it. */
  refused(client: TransportAddress, local: LocalEndpoint, method: number, code: number, req?: StunMessage, user?: string): void {
    if (!this.on) return;
    const detail = req && this.#refusalDetail(req, code);
    this.#line(
      client,
      {
        client: addressText(client),
        transport: transportOf(local),
        method: methodName(method),
        code,
        error: errorReason(code),
        reason: REFUSAL_REASON[code] ?? 'other',
        ...(detail !== undefined ? { detail } : {}),
        ...(user !== undefined ? { user } : {}),
      },
      'request refused',
    );
  }

  /** An unauthenticated request over the per-source rate limit: dropped unanswered. */
  rateLimited(client: TransportAddress, local: LocalEndpoint): void {
    if (this.on) this.#line(client, { client: addressText(client), transport: transportOf(local), reason: 'rate-limit' }, 'request dropped');
  }

  // -- from the state tables (StateObserver) -----------------------------------

  expiring(t: Timed): void {
    if (!this.on) return;
    switch (t.kind) {
      case 'allocation':
        this.#expiring = t.allocation; // `removing` follows and says it
        return;
      case 'permission': {
        const p = t.permission;
        this.#line(undefined, { ...allocationFields(p.allocation), peer: p.peerIp }, 'permission expired');
        return;
      }
      case 'channel': {
        const c = t.channel;
        // A held channel's hold ending is bookkeeping, not news.
        if (c.state === 'active') this.#line(undefined, this.#channelFields(c.binding), 'channel expired');
        return;
      }
    }
  }

  removing(a: Allocation): void {
    if (!this.on) return;
    const expired = this.#expiring === a;
    this.#ending = a;
    this.#endingExpired = expired;
    this.#expiring = undefined;
    this.#line(expired ? undefined : a.client, allocationFields(a), expired ? 'allocation expired' : 'allocation deleted');
  }

  event(e: DataPlaneEvent): void {
    if (!this.on) return;
    switch (e.type) {
      case 'channel-bound':
        return this.#line(e.binding.client, { ...this.#channelFields(e.binding), lifetime: CHANNEL_LIFETIME }, 'channel bound');
      case 'channel-refreshed':
        return this.#line(e.binding.client, { ...this.#channelFields(e.binding), lifetime: CHANNEL_LIFETIME }, 'channel refreshed');
      case 'channel-unbound': {
        const a = this.#allocationOf(e.binding);
        // A channel's own expiry was told by `expiring`; the others go with their allocation or their permission.
        if (a !== undefined && a.channelsByNumber.get(e.binding.channel)?.state === 'held') return;
        const ending = a !== undefined && a === this.#ending;
        const fields = { ...this.#channelFields(e.binding), reason: ending ? 'allocation-ended' : 'permission-expired' };
        // Only a client's own deletion (Refresh 0) is at its will.
        return this.#line(ending && !this.#endingExpired ? e.binding.client : undefined, fields, 'channel unbound');
      }
      default:
        return; // allocation ports: told as allocation created / expired / deleted
    }
  }

  // ---------------------------------------------------------------------------

  /** Logs at debug; `source` set: only within that client's budget. */
  #line(source: TransportAddress | undefined, fields: Fields, msg: string): void {
    if (source !== undefined && !this.#budget.take(source.address)) return;
    this.#log.debug(fields, msg);
  }

  #allocationOf(b: ChannelBinding): Allocation | undefined {
    return this.state.byPort.get(portKey(b.peer.family, b.allocationPort));
  }

  #channelFields(b: ChannelBinding): Fields {
    const user = this.#allocationOf(b)?.username;
    return { ...bindingFields(b), ...(user !== undefined ? { user } : {}) };
  }

  #refusalDetail(req: StunMessage, code: number): string | undefined {
    switch (code) {
      case ERROR.UNAUTHENTICATED:
        return req.integrity === undefined ? 'no credentials (challenge)' : 'credentials or nonce refused';
      case ERROR.STALE_NONCE:
        return 'stale nonce';
      case ERROR.WRONG_CREDENTIALS:
        return 'not the allocation owner';
      case ERROR.FORBIDDEN: {
        for (const p of req.attributes.xorPeerAddress ?? []) {
          const d = this.peerPolicy.check(p.address);
          if (!d.allowed) return `peer ${p.address} denied: ${d.reason}${d.embedded ? ` (${d.embedded})` : ''}`;
        }
        return undefined;
      }
      default:
        return undefined;
    }
  }
}

function allocationFields(a: Allocation): Fields {
  return { client: addressText(a.client), transport: transportOf(a.local), user: a.username, ports: a.ports };
}
