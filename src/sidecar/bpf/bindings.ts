// Channel bindings in the kernel: one entry in each direction,
// tp_chan_to_peer (client, channel) -> (peer, allocation port) and
// tp_peer_to_chan (peer, allocation port) -> (client, channel), written and
// removed as a pair so the program never relays one way only.
//
// Every address is keyed with its family (abi.ts), so distinct allocations
// never share a key; and an entry is only ever written over or removed by
// the binding it belongs to: a put that finds either key holding another
// binding's value is refused (EEXIST), a delete leaves such an entry alone.
// The sidecar is the only writer, so look-up-then-write does not race.
//
// Channel -> channel: when a binding's peer is another allocation of this
// relay whose channel back to it is bound too, each tp_chan_to_peer value
// names the other's client (its partner), so the program needs one lookup.
// Whichever of the two is put second links both; a delete unlinks the
// other first, so the program never relays to a partner that is gone.
import { constants } from 'node:os';
import {
  PARTNER_AT,
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

const { E2BIG, EEXIST, ENOENT } = constants.errno;

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
  const detail = errno === E2BIG ? `${map} is full (${max} entries)` : errno === EEXIST ? `the key belongs to another binding in ${map}` : '';
  return BpfError.fromErrno(`${op} channel ${who} in ${map}`, errno, detail);
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

type BindingMap = (typeof BINDING_MAPS)[number];

/** One direction of a binding: the map, its key and the value this binding puts there. */
interface Entry {
  readonly name: BindingMap;
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

const entriesOf = (b: ChannelBinding, partner?: { client: Endpoint; channel: number }): [Entry, Entry] => [
  { name: 'tp_chan_to_peer', key: encodeChanKey(b), value: encodeChanValue(b, partner) },
  { name: 'tp_peer_to_chan', key: encodePeerKey(b), value: encodePeerValue(b) },
];

/** What the map holds under e's key: 'absent', 'ours' (e's binding, whatever its partner) or 'theirs' (another binding's). */
function holder(maps: ObjectMaps, e: Entry): 'absent' | 'ours' | 'theirs' {
  const have = maps.lookup(maps.get(e.name), e.key, `look up ${e.name}`);
  const binding = (v: Uint8Array) => (e.name === 'tp_chan_to_peer' ? v.subarray(0, PARTNER_AT) : v);
  return have === undefined ? 'absent' : sameBytes(binding(have), binding(e.value)) ? 'ours' : 'theirs';
}

/**
 * The partner of b: the client of the channel bound from b's peer, when that
 * peer is another allocation here whose peer is b's allocation. Its
 * tp_peer_to_chan key is b's peer with b's allocation port, via b's peer port.
 */
function partnerOf(maps: ObjectMaps, b: ChannelBinding): { client: Endpoint; channel: number } | undefined {
  const key = encodePeerKey({ peer: { address: b.peer.address, port: b.allocationPort }, allocationPort: b.peer.port });
  const value = maps.lookup(maps.get('tp_peer_to_chan'), key, 'look up tp_peer_to_chan');
  return value && decodePeerValue(value);
}

/** Sets (or with undefined, clears) the partner in the channel value of `of` if it is b's partner's binding, i.e. its peer is b's allocation. */
function linkPartner(maps: ObjectMaps, of: { client: Endpoint; channel: number }, b: ChannelBinding, to: ChannelBinding | undefined): void {
  const m = maps.get('tp_chan_to_peer');
  const key = encodeChanKey(of);
  const have = maps.lookup(m, key, 'look up tp_chan_to_peer');
  if (!have) return;
  const v = decodeChanValue(have);
  if (v.allocationPort !== b.peer.port || v.peer.port !== b.allocationPort || v.peer.address !== b.peer.address) return;
  const err = maps.lib.mapUpdateElem(m.fd, key, encodeChanValue(v, to && { client: to.client, channel: to.channel }), 0n);
  if (err < 0) throw bindingError(to ? 'link partner of' : 'unlink partner of', b, 'tp_chan_to_peer', -err, m.maxEntries);
}

/**
 * Installs a channel in both directions (again, for a refresh). Refused with
 * EEXIST, writing nothing, when either key holds another binding; on a
 * failure no direction this call added stays.
 */
export function putChannel(maps: ObjectMaps, b: ChannelBinding): void {
  const partner = partnerOf(maps, b);
  const entries = entriesOf(b, partner);
  const held = entries.map((e) => holder(maps, e));
  entries.forEach((e, i) => {
    if (held[i] === 'theirs') throw bindingError('put', b, e.name, EEXIST, 0);
  });
  const added: Entry[] = [];
  for (const [i, e] of entries.entries()) {
    const m = maps.get(e.name);
    const err = maps.lib.mapUpdateElem(m.fd, e.key, e.value, 0n);
    if (err < 0) {
      for (const a of added) maps.lib.mapDeleteElem(maps.get(a.name).fd, a.key);
      throw bindingError('put', b, e.name, -err, m.maxEntries);
    }
    if (held[i] === 'absent') added.push(e);
  }
  if (partner) linkPartner(maps, partner, b, b);
}

/**
 * Removes both directions where they hold this binding; true when at least
 * one did. tp_peer_to_chan goes first: a sidecar stopped in between leaves
 * the tp_chan_to_peer half, which listBindings (and so the resync) sees.
 */
export function deleteChannel(maps: ObjectMaps, b: ChannelBinding): boolean {
  let removed = false;
  const partner = partnerOf(maps, b);
  if (partner && holder(maps, entriesOf(b)[1]) === 'ours') linkPartner(maps, partner, b, undefined);
  for (const e of entriesOf(b).reverse()) {
    if (holder(maps, e) !== 'ours') continue;
    const err = maps.lib.mapDeleteElem(maps.get(e.name).fd, e.key);
    if (err < 0 && -err !== ENOENT) throw bindingError('delete', b, e.name, -err, 0);
    removed ||= err === 0;
  }
  return removed;
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
