// Counter snapshots that cross process boundaries: the relay's own counters
// (sent to the sidecar over the link) and the link's queue statistics.
import type { RelayDropReason, RelayRefusal } from './reasons.ts';
import type { ClientTransport } from './endpoint.ts';

export interface Flow {
  packets: number;
  bytes: number;
}

export interface Relayed {
  toPeer: Flow;
  toClient: Flow;
}

/** What the relay counts per client transport (udp, tcp, tls). */
export interface TransportStats {
  /** Allocations held whose client uses this transport. */
  allocations: number;
  /** Relayed through this process for those clients, by the family of the datagram sent. */
  relayedByFamily: { ipv4: Relayed; ipv6: Relayed };
  /** Error responses sent to those clients (every refusal, limit or not). */
  errors: number;
}

/** A response counter: `<method>:success` or `<method>:<error code>` ("allocate:401"). */
export type ResponseKey = `${string}:${'success' | number}`;

/** Counters the relay keeps; low cardinality by construction (no per-user keys). */
export interface ServerStats {
  allocations: number;
  permissions: number;
  channels: number;
  /**
   * Ports held for a RESERVATION-TOKEN (EVEN-PORT R). Optional in the type
   * only so older counter snapshots still parse; TurnServer always fills it.
   */
  reservations?: number;
  /** Relayed application data through this process (the userspace datapath). */
  relayed: Relayed;
  /**
   * `relayed` split by the family of the datagram sent (to the peer: the
   * peer's family; to the client: the client's). Optional in the type only so
   * older counter snapshots still parse; TurnServer always fills it.
   */
  relayedByFamily?: { ipv4: Relayed; ipv6: Relayed };
  /** Responses by method and code ("allocate:success", "allocate:401", ...). */
  responses: Partial<Record<ResponseKey, number>>;
  /** Datagrams dropped, by reason ("not-stun", "no-permission", "no-channel", ...). */
  dropped: Partial<Record<RelayDropReason, number>>;
  /** Requests refused by a configured limit, by limit (see RELAY_REFUSALS); optional like `reservations`. */
  refused?: Partial<Record<RelayRefusal, number>>;
  /**
   * Allocations, userspace relaying and errors split by client transport;
   * optional like `reservations` (a relay without it reports no transport).
   */
  byTransport?: Record<ClientTransport, TransportStats>;
}
