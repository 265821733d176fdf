// Next hops the program learned from frames addressed to the relay
// (tp_neigh), read for diagnostics and emptied by tests.
import { decodeNeighbour, type Neighbour } from './abi.ts';
import type { ObjectMaps } from './maps.ts';

export function neighbours(maps: ObjectMaps): Neighbour[] {
  return maps.entries(maps.get('tp_neigh')).map(([key, value]) => decodeNeighbour(key, value));
}

/**
 * Forgets every learned next hop, including the program's per-CPU caches
 * in front of tp_neigh (nb_seen, nh_cache), which would otherwise keep
 * answering for up to their TTLs; returns how many tp_neigh entries there were.
 */
export function clearNeighbours(maps: ObjectMaps): number {
  const removed = maps.deleteAll(maps.get('tp_neigh'));
  for (const name of ['nb_seen', 'nh_cache']) {
    const cache = maps.find(name);
    if (cache) maps.zeroPerCpu(cache);
  }
  return removed;
}
