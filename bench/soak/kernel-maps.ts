// The channel bindings the kernel holds, read from the pair's pinned maps
// and decoded with the sidecar's own layout (bpf/abi.ts), so the
// soak compares what the XDP program would use, not what the sidecar says.
import { readPinnedBindings, type ChannelBinding } from '../../src/sidecar/bpf/bindings.ts';
import { libbpf } from '../../src/sidecar/bpf/libbpf.ts';

export interface KernelBinding {
  client: string;
  channel: number;
  peer: string;
  allocationPort: number;
}

const flat = (b: ChannelBinding): KernelBinding => ({
  client: `${b.client.address}:${b.client.port}`,
  channel: b.channel,
  peer: `${b.peer.address}:${b.peer.port}`,
  allocationPort: b.allocationPort,
});

/** Bindings by direction: what tp_chan_to_peer and tp_peer_to_chan each name, sorted. */
export async function kernelBindings(pinDir: string): Promise<{ chanToPeer: KernelBinding[]; peerToChan: KernelBinding[] }> {
  const key = (b: KernelBinding) => `${b.client}/${b.channel}/${b.peer}/${b.allocationPort}`;
  const sort = (l: KernelBinding[]) => l.sort((a, b) => key(a).localeCompare(key(b)));
  const { chanToPeer, peerToChan } = readPinnedBindings(libbpf(), pinDir);
  return { chanToPeer: sort(chanToPeer.map(flat)), peerToChan: sort(peerToChan.map(flat)) };
}

export const bindingKey = (b: KernelBinding) => `${b.client} ch 0x${b.channel.toString(16)} -> ${b.peer} via ${b.allocationPort}`;
