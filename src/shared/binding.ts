// A channel binding as both halves of the pair and the kernel maps see it
// (bpf/turn_router_shared.h holds the kernel's byte layout of the same thing).
import type { ClientTransport, TransportAddress } from './endpoint.ts';

export interface ChannelBinding {
  readonly client: TransportAddress;   // the client's address as seen by the relay
  readonly channel: number;            // 0x4000-0x7FFF
  readonly peer: TransportAddress;
  /** The allocation's relayed port in the peer's family (the source port of relayed UDP). */
  readonly allocationPort: number;
  /** Relayed ports per family of the allocation (dual allocations have both). */
  readonly allocationPorts: { readonly v4?: number; readonly v6?: number };
  readonly expiresAt: number;          // ms, relay clock
  /** How the client reaches the relay; absent means udp. */
  readonly transport?: ClientTransport;
}
