// The sans-IO TURN server's boundary: what goes in, what comes out.
// Transports (standalone UDP sockets, or the sidecar link) feed datagrams,
// port-open results, lost ports (portLost: an allocation port the data plane
// could not keep, e.g. not reopened after a sidecar restart; its allocation is
// deleted) and the clock in, and carry the outputs out. Nothing in the server
// touches a socket or reads a clock.

import type { Family, LocalEndpoint, TransportAddress } from '../../shared/endpoint.ts';
import type { ChannelBinding } from '../../shared/binding.ts';
import type { ServerStats } from '../../shared/stats.ts';

export type { Family, LocalEndpoint, TransportAddress, ChannelBinding, ServerStats };

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

