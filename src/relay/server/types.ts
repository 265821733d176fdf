// The sans-IO TURN server's boundary: what goes in, what comes out.
// Transports (standalone UDP sockets, or the sidecar link) feed datagrams,
// port-open results, lost ports (portLost: an allocation port the data plane
// could not keep, e.g. not reopened after a sidecar restart; its allocation is
// deleted) and the clock in, and carry the outputs out. Nothing in the server
// touches a socket or reads a clock.

export type Family = 4 | 6;

export interface TransportAddress {
  readonly family: Family;
  readonly address: string; // textual, as node:dgram reports it (no brackets, no zone for global)
  readonly port: number;
}

/** The local side of a datagram: which relay port (listen or allocation) it arrived on / leaves from. */
export interface LocalEndpoint {
  readonly family: Family;
  readonly port: number;
}

/** Channel binding as a kernel map needs it (see bpf/turn_router_shared.h). */
export interface ChannelBinding {
  readonly client: TransportAddress;   // the client's address as seen by the relay
  readonly channel: number;            // 0x4000-0x4FFF
  readonly peer: TransportAddress;
  /** The allocation's relayed port in the peer's family (the source port of relayed UDP). */
  readonly allocationPort: number;
  /** Relayed ports per family of the allocation (dual allocations have both). */
  readonly allocationPorts: { readonly v4?: number; readonly v6?: number };
  readonly expiresAt: number;          // ms, server clock
}

export type DataPlaneEvent =
  | { readonly type: 'allocation-port-opened'; readonly family: Family; readonly port: number; readonly client: TransportAddress }
  | { readonly type: 'allocation-port-closed'; readonly family: Family; readonly port: number; readonly client: TransportAddress }
  | { readonly type: 'channel-bound'; readonly binding: ChannelBinding }
  | { readonly type: 'channel-refreshed'; readonly binding: ChannelBinding }
  | { readonly type: 'channel-unbound'; readonly binding: ChannelBinding };

export type Output =
  /** Send `data` to `to` from the relay's socket on `from` (listen port or an allocation port). */
  | { readonly kind: 'send'; readonly from: LocalEndpoint; readonly to: TransportAddress; readonly data: Uint8Array }
  /** Bind an allocation port; answer with server.portOpened(token, ok, now). */
  | { readonly kind: 'open-port'; readonly token: number; readonly family: Family; readonly port: number }
  /** Close an allocation port that is no longer used. */
  | { readonly kind: 'close-port'; readonly family: Family; readonly port: number }
  /** A change the data plane (kernel maps) must know about. Emitted before any response that depends on it. */
  | { readonly kind: 'event'; readonly event: DataPlaneEvent };

/** Counters the relay keeps; low cardinality by construction (no per-user keys). */
export interface ServerStats {
  allocations: number;
  permissions: number;
  channels: number;
  /** Relayed application data through this process (the userspace datapath). */
  relayed: {
    toPeer: { packets: number; bytes: number };
    toClient: { packets: number; bytes: number };
  };
  /**
   * `relayed` split by the family of the datagram sent (to the peer: the
   * peer's family; to the client: the client's). Optional in the type only so
   * older counter snapshots still parse; TurnServer always fills it.
   */
  relayedByFamily?: {
    ipv4: { toPeer: { packets: number; bytes: number }; toClient: { packets: number; bytes: number } };
    ipv6: { toPeer: { packets: number; bytes: number }; toClient: { packets: number; bytes: number } };
  };
  /** Responses by method and code ("allocate:success", "allocate:401", ...). */
  responses: Record<string, number>;
  /** Datagrams dropped, by reason ("malformed", "bad-integrity", "no-channel", ...). */
  dropped: Record<string, number>;
}
