// Channel bindings in the kernel: one entry in each direction,
// tp_chan_to_peer (client, channel) -> (peer, allocation port) and
// tp_peer_to_chan (peer, allocation port) -> (client, channel), written and
// removed as a pair so the program never relays one way only.
import { constants } from 'node:os';
import {
  decodeChanKey,
  decodeChanValue,
  decodePeerValue,
  encodeChanKey,
  encodeChanValue,
  encodePeerKey,
  encodePeerValue,
  type Endpoint,
} from './abi.ts';
import { BpfError } from './errors.ts';
import type { ObjectMaps } from './maps.ts';

const { E2BIG, ENOENT } = constants.errno;

/** The two directions; their capacity follows the loader's mapCapacity. */
export const BINDING_MAPS = ['tp_chan_to_peer', 'tp_peer_to_chan'] as const;

export interface ChannelBinding {
  client: Endpoint;
  channel: number;
  peer: Endpoint;
  allocationPort: number;
}

function bindingError(op: string, b: ChannelBinding, map: string, errno: number, max: number): BpfError {
  const who = `${b.client.address}:${b.client.port} channel 0x${b.channel.toString(16)} <-> ${b.peer.address}:${b.peer.port} via ${b.allocationPort}`;
  return BpfError.fromErrno(`${op} channel ${who} in ${map}`, errno, errno === E2BIG ? `${map} is full (${max} entries)` : '');
}

/** Installs a channel in both directions; on a failure neither direction stays. */
export function putChannel(maps: ObjectMaps, b: ChannelBinding): void {
  const chanKey = encodeChanKey(b);
  const chanValue = encodeChanValue(b);
  const peerKey = encodePeerKey(b);
  const peerValue = encodePeerValue(b);
  const c2p = maps.get('tp_chan_to_peer');
  const p2c = maps.get('tp_peer_to_chan');
  let err = maps.lib.mapUpdateElem(c2p.fd, chanKey, chanValue, 0n);
  if (err < 0) throw bindingError('put', b, 'tp_chan_to_peer', -err, c2p.maxEntries);
  err = maps.lib.mapUpdateElem(p2c.fd, peerKey, peerValue, 0n);
  if (err < 0) {
    maps.lib.mapDeleteElem(c2p.fd, chanKey);
    throw bindingError('put', b, 'tp_peer_to_chan', -err, p2c.maxEntries);
  }
}

/** Removes both directions; true when at least one existed. */
export function deleteChannel(maps: ObjectMaps, b: ChannelBinding): boolean {
  const a = maps.lib.mapDeleteElem(maps.get('tp_chan_to_peer').fd, encodeChanKey(b));
  const c = maps.lib.mapDeleteElem(maps.get('tp_peer_to_chan').fd, encodePeerKey(b));
  for (const [err, name] of [[a, 'tp_chan_to_peer'], [c, 'tp_peer_to_chan']] as const) {
    if (err < 0 && -err !== ENOENT) throw bindingError('delete', b, name, -err, 0);
  }
  return a === 0 || c === 0;
}

/** The peer side of a channel, from tp_chan_to_peer. */
export function lookupChannel(maps: ObjectMaps, client: Endpoint, channel: number): { peer: Endpoint; allocationPort: number } | undefined {
  const value = maps.lookup(maps.get('tp_chan_to_peer'), encodeChanKey({ client, channel }), 'look up tp_chan_to_peer');
  return value && decodeChanValue(value);
}

/** The client side of a channel, from tp_peer_to_chan. */
export function lookupPeer(maps: ObjectMaps, peer: Endpoint, allocationPort: number): { client: Endpoint; channel: number } | undefined {
  const value = maps.lookup(maps.get('tp_peer_to_chan'), encodePeerKey({ peer, allocationPort }), 'look up tp_peer_to_chan');
  return value && decodePeerValue(value);
}

/** Every installed channel, read from tp_chan_to_peer (for resync with the relay). */
export function listBindings(maps: ObjectMaps): ChannelBinding[] {
  return maps.entries(maps.get('tp_chan_to_peer')).map(([key, value]) => {
    const k = decodeChanKey(key);
    const v = decodeChanValue(value);
    return { client: k.client, channel: k.channel, peer: v.peer, allocationPort: v.allocationPort };
  });
}

/** Empties both binding maps; returns how many channels were removed. */
export function clearBindings(maps: ObjectMaps): number {
  let removed = 0;
  for (const name of BINDING_MAPS) {
    const n = maps.deleteAll(maps.get(name));
    if (name === 'tp_chan_to_peer') removed = n;
  }
  return removed;
}

export function bindingCount(maps: ObjectMaps): number {
  return maps.keys(maps.get('tp_chan_to_peer')).length;
}
