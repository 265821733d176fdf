// Addresses as every layer names them: a family, a transport address (text
// as node:dgram reports it, plus a port), the relay's own local endpoint, and
// one integer key per (family, port) for maps keyed by a relay port.
import { isIP } from 'node:net';

export type Family = 4 | 6;

export interface TransportAddress {
  readonly family: Family;
  readonly address: string; // textual, as node:dgram reports it (no brackets, no zone for global)
  readonly port: number;
}

/** How a client reaches the relay (a low-cardinality metric and log attribute). */
export type ClientTransport = 'udp' | 'tcp' | 'tls';

/** The sidecar's two kinds of UDP socket: the TURN listen port(s) and allocation (relayed) ports. */
export const SOCKET_KINDS = ['listen', 'allocation'] as const;
export type SocketKind = (typeof SOCKET_KINDS)[number];

/** The local side of a datagram: which relay port (listen or allocation) it arrived on / leaves from. */
export interface LocalEndpoint {
  readonly family: Family;
  readonly port: number;
  /**
   * A client's TCP or TLS connection (RFC 8656 §3.1): the id its transport
   * gave it, unique while it is open. Absent for UDP. Messages framed from a
   * stream carry it in, and replies carry it back out to the same connection.
   */
  readonly connection?: number;
  /** The connection's transport; absent means udp. */
  readonly transport?: ClientTransport;
}

/** The transport of a client-side endpoint. */
export const transportOf = (local: LocalEndpoint): ClientTransport => local.transport ?? 'udp';

/** One integer per (family, port): a Map key that needs no string. */
export type PortKey = number & { readonly __brand: 'PortKey' };

export const portKey = (family: Family, port: number): PortKey => (family * 65536 + port) as PortKey;

/** The family of an IP address text (anything not IPv6 counts as IPv4). */
export const familyOf = (address: string): Family => (isIP(address) === 6 ? 6 : 4);

/** IPv6 link-local (fe80::/10): never a relay's own announced or interface address. */
export const isLinkLocalV6 = (address: string): boolean => /^fe[89ab]/i.test(address);

/** The unspecified address of each family: bind to every interface. */
export const WILDCARD: Readonly<Record<Family, string>> = { 4: '0.0.0.0', 6: '::' };

export const isWildcard = (address: string): boolean => address === WILDCARD[4] || address === WILDCARD[6];
