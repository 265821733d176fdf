// The fields a TURN session's log lines carry, named once for both sides of
// the link: the relay's session lines and the sidecar's kernel binding lines
// about one client grep alike (`"client":"198.51.100.7:50000"`).
import type { ClientTransport, TransportAddress } from './endpoint.ts';
import type { ChannelBinding } from './binding.ts';

/** `192.0.2.1:3478`, `[2001:db8::1]:3478`. */
export function addressText(a: Pick<TransportAddress, 'address' | 'port'>): string {
  return a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** Client transport, channel, peer and relayed port of a binding. */
export function bindingFields(b: ChannelBinding): { client: string; transport: ClientTransport; channel: number; peer: string; port: number } {
  return { client: addressText(b.client), transport: b.transport ?? 'udp', channel: b.channel, peer: addressText(b.peer), port: b.allocationPort };
}
