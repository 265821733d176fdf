// Allocate (RFC 8656 §7.2) and Refresh (§7.5), the rules that need no port:
// which requests are refused before any port is taken and which families
// (and reserved port) the rest get, the lifetime granted, the success answer
// once the ports are open; and Refresh, which moves or ends an allocation.
// Taking and opening the ports is pending-allocations.ts; the server glues
// the two (quotas, retransmissions, recording the allocation).
import { ERROR, TRANSPORT_UDP, transactionIdKey, type StunAttributes, type StunMessage } from '../stun/index.ts';
import { familyName } from './address.ts';
import type { TurnServerOptions } from './options.ts';
import type { RandomSource } from './port-pool.ts';
import type { Reply } from './reply.ts';
import type { Allocation, RelayState, Reservation } from './state.ts';
import type { Family, TransportAddress } from './types.ts';

type ErrorReply = Extract<Reply, { kind: 'error' }>;

const RESERVATION_TOKEN_BYTES = 8;

export interface Lifetimes {
  /** Seconds. */
  readonly defaultLifetime: number;
  /** Seconds. */
  readonly maxLifetime: number;
}

export type RelayAddresses = TurnServerOptions['relayAddresses'];

/** What an Allocate that passed the checks asks for. */
export interface AllocatePlan {
  readonly kind: 'plan';
  readonly families: readonly Family[];
  /** The family a dual request has to give up (answered with ADDRESS-ERROR-CODE 440). */
  readonly refusedFamily: Family | undefined;
  /** The reservation a RESERVATION-TOKEN names: its port, fixed, in its family. */
  readonly reservation: { readonly key: string; readonly port: number } | undefined;
  /** EVEN-PORT: an even port; with the R bit, port+1 is held too and reserved. */
  readonly even: boolean;
  readonly reserve: boolean;
  /** Seconds. */
  readonly lifetime: number;
}

/** The key of a RESERVATION-TOKEN in RelayState.reservations. */
export function reservationKey(token: Uint8Array): string {
  return transactionIdKey(token);
}

/** RFC 8656 §7.2/§7.5: min(requested, max), never below the default. */
export function grantedLifetime(requested: number | undefined, l: Lifetimes): number {
  if (requested === undefined) return l.defaultLifetime;
  return Math.max(l.defaultLifetime, Math.min(requested, l.maxLifetime));
}

/** §7.2: the attribute checks of a new Allocate and the families it gets, or the error to answer. */
export function planAllocate(
  a: StunAttributes,
  relayAddresses: RelayAddresses,
  reservations: ReadonlyMap<string, Reservation>,
  lifetimes: Lifetimes,
): AllocatePlan | ErrorReply {
  const refuse = (code: number): ErrorReply => ({ kind: 'error', code });
  if (a.requestedTransport === undefined) return refuse(ERROR.BAD_REQUEST);
  if (a.requestedTransport !== TRANSPORT_UDP) return refuse(ERROR.UNSUPPORTED_TRANSPORT);
  const token = a.reservationToken;
  if (token !== undefined && (a.evenPort !== undefined || a.requestedAddressFamily !== undefined || a.additionalAddressFamily !== undefined)) {
    return refuse(ERROR.BAD_REQUEST);
  }
  if (a.requestedAddressFamily !== undefined && a.additionalAddressFamily !== undefined) return refuse(ERROR.BAD_REQUEST);
  if (a.additionalAddressFamily !== undefined && a.additionalAddressFamily !== 6) return refuse(ERROR.BAD_REQUEST);
  if (a.additionalAddressFamily !== undefined && a.evenPort?.reserve === true) return refuse(ERROR.BAD_REQUEST);
  if (a.requestedAddressFamily === 'unsupported') return refuse(ERROR.ADDRESS_FAMILY_NOT_SUPPORTED);

  // Which families, and which one a dual request has to give up.
  const available = (f: Family): boolean => relayAddresses[familyName(f)] !== undefined;
  let families: Family[];
  let refusedFamily: Family | undefined;
  let reservation: AllocatePlan['reservation'];
  if (token !== undefined) {
    const key = reservationKey(token);
    const r = reservations.get(key);
    if (r === undefined) return refuse(ERROR.INSUFFICIENT_CAPACITY);
    if (!available(r.family)) return refuse(ERROR.ADDRESS_FAMILY_NOT_SUPPORTED);
    families = [r.family];
    reservation = { key, port: r.port };
  } else if (a.additionalAddressFamily === 6) {
    families = ([4, 6] as const).filter(available);
    if (families.length === 0) return refuse(ERROR.ADDRESS_FAMILY_NOT_SUPPORTED);
    if (families.length === 1) refusedFamily = families[0] === 4 ? 6 : 4;
  } else {
    const f: Family = a.requestedAddressFamily ?? 4;
    if (!available(f)) return refuse(ERROR.ADDRESS_FAMILY_NOT_SUPPORTED);
    families = [f];
  }
  return {
    kind: 'plan',
    families,
    refusedFamily,
    reservation,
    even: a.evenPort !== undefined,
    reserve: a.evenPort?.reserve === true,
    lifetime: grantedLifetime(a.lifetime, lifetimes),
  };
}

/** A fresh RESERVATION-TOKEN no live reservation uses. */
export function newReservationToken(random: RandomSource, reservations: ReadonlyMap<string, unknown>): Uint8Array {
  for (;;) {
    const t = random(RESERVATION_TOKEN_BYTES).slice(0, RESERVATION_TOKEN_BYTES);
    if (t.length === RESERVATION_TOKEN_BYTES && !reservations.has(reservationKey(t))) return t;
  }
}

/** What §7.2 answers once the ports are open. */
export interface Granted {
  readonly ports: readonly { readonly family: Family; readonly port: number }[];
  readonly client: TransportAddress;
  readonly lifetime: number;
  readonly reservationToken: Uint8Array | undefined;
  readonly refusedFamily: Family | undefined;
}

/** The success attributes: relayed addresses (IPv4 first), mapped address, lifetime, then token and 440 when due. */
export function grantedAttributes(g: Granted, relayAddresses: RelayAddresses): StunAttributes {
  const relayed: TransportAddress[] = g.ports.map((p) => ({ family: p.family, address: relayAddresses[familyName(p.family)]!, port: p.port }));
  relayed.sort((x, y) => x.family - y.family);
  const attributes: StunAttributes = {
    xorRelayedAddress: relayed,
    xorMappedAddress: g.client,
    lifetime: g.lifetime,
  };
  if (g.reservationToken !== undefined) attributes.reservationToken = g.reservationToken;
  if (g.refusedFamily !== undefined) {
    attributes.addressErrorCode = { family: g.refusedFamily, code: ERROR.ADDRESS_FAMILY_NOT_SUPPORTED, reason: 'Address Family not Supported' };
  }
  return attributes;
}

/** §7.5: lifetime 0 deletes the allocation, anything else moves its expiry. */
export function refresh(state: RelayState, lifetimes: Lifetimes, msg: StunMessage, allocation: Allocation | undefined, now: number): Reply {
  if (allocation === undefined) return { kind: 'error', code: ERROR.ALLOCATION_MISMATCH };
  const f = msg.attributes.requestedAddressFamily;
  if (f !== undefined && (f === 'unsupported' || allocation.ports[familyName(f)] === undefined)) {
    return { kind: 'error', code: ERROR.PEER_ADDRESS_FAMILY_MISMATCH };
  }
  if (msg.attributes.lifetime === 0) {
    state.removeAllocation(allocation);
    return { kind: 'success', attributes: { lifetime: 0 } };
  }
  const lifetime = grantedLifetime(msg.attributes.lifetime, lifetimes);
  state.refreshAllocation(allocation, now + lifetime * 1000);
  return { kind: 'success', attributes: { lifetime } };
}
