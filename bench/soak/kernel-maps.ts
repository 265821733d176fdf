// The channel bindings the kernel holds, read from the pair's pinned maps
// with bpftool and decoded with the sidecar's own layout (bpf/abi.ts), so the
// soak compares what the XDP program would use, not what the sidecar says.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { decodeChanKey, decodeChanValue, decodePeerKey, decodePeerValue } from '../../src/sidecar/bpf/abi.ts';

const execFileP = promisify(execFile);

export interface KernelBinding {
  client: string;
  channel: number;
  peer: string;
  allocationPort: number;
}

const bytes = (hex: string[]) => Uint8Array.from(hex.map((h) => Number.parseInt(h, 16)));

async function dump(pinDir: string, map: string): Promise<{ key: Uint8Array; value: Uint8Array }[]> {
  const { stdout } = await execFileP('bpftool', ['-j', 'map', 'dump', 'pinned', `${pinDir}/${map}`], { maxBuffer: 64 << 20 });
  const rows = JSON.parse(stdout) as { key: string[]; value: string[] }[];
  return rows.map((r) => ({ key: bytes(r.key), value: bytes(r.value) }));
}

/** Bindings by direction: tp_chan_to_peer and tp_peer_to_chan, each as the binding it describes, sorted. */
export async function kernelBindings(pinDir: string): Promise<{ chanToPeer: KernelBinding[]; peerToChan: KernelBinding[] }> {
  const key = (b: KernelBinding) => `${b.client}/${b.channel}/${b.peer}/${b.allocationPort}`;
  const sort = (l: KernelBinding[]) => l.sort((a, b) => key(a).localeCompare(key(b)));
  const chanToPeer = (await dump(pinDir, 'tp_chan_to_peer')).map(({ key: k, value: v }) => {
    const ck = decodeChanKey(k);
    const cv = decodeChanValue(v);
    return { client: `${ck.client.address}:${ck.client.port}`, channel: ck.channel, peer: `${cv.peer.address}:${cv.peer.port}`, allocationPort: cv.allocationPort };
  });
  const peerToChan = (await dump(pinDir, 'tp_peer_to_chan')).map(({ key: k, value: v }) => {
    const pk = decodePeerKey(k);
    const pv = decodePeerValue(v);
    return { client: `${pv.client.address}:${pv.client.port}`, channel: pv.channel, peer: `${pk.peer.address}:${pk.peer.port}`, allocationPort: pk.allocationPort };
  });
  return { chanToPeer: sort(chanToPeer), peerToChan: sort(peerToChan) };
}

export const bindingKey = (b: KernelBinding) => `${b.client} ch 0x${b.channel.toString(16)} -> ${b.peer} via ${b.allocationPort}`;
