// The mirrored next-hop tables of the program (tp_routes, tp_neigh; see
// turn_router_shared.h): written by the sidecar's mirror of the kernel's
// routes and neighbours (src/sidecar/next-hops), read by the program, and
// the per-CPU rows of cached answers in front of them (nh_cache), emptied when an
// answer the program may hold changed so it asks again at once.
import {
  decodeNeighbour,
  decodeRoute,
  encodeNeighKey,
  encodeNeighValue,
  encodeRouteKey,
  encodeRouteValue,
  type Neighbour,
  type Route,
} from './abi.ts';
import { BpfError } from './errors.ts';
import type { ObjectMaps } from './maps.ts';

export const ROUTES_MAP = 'tp_routes';
export const NEIGH_MAP = 'tp_neigh';
const CACHE_MAP = 'nh_cache';

function put(maps: ObjectMaps, name: string, key: Uint8Array, value: Uint8Array, what: string): void {
  const m = maps.get(name);
  const err = maps.lib.mapUpdateElem(m.fd, key, value, 0n);
  if (err < 0) throw BpfError.fromErrno(`put ${what} in ${name}`, -err, m.maxEntries ? `${m.maxEntries} entries at most` : '');
}

/** Deletes key; false when it was not there. */
function remove(maps: ObjectMaps, name: string, key: Uint8Array, what: string): boolean {
  const m = maps.get(name);
  const err = maps.lib.mapDeleteElem(m.fd, key);
  if (err === 0) return true;
  if (maps.lookup(m, key, `look up ${what}`) === undefined) return false;
  throw BpfError.fromErrno(`delete ${what} from ${name}`, -err);
}

export const routes = (maps: ObjectMaps): Route[] => maps.entries(maps.get(ROUTES_MAP)).map(([k, v]) => decodeRoute(k, v));

export function putRoute(maps: ObjectMaps, r: Route): void {
  put(maps, ROUTES_MAP, encodeRouteKey(r), encodeRouteValue(r), `route ${r.prefix}/${r.prefixLength}`);
}

export function deleteRoute(maps: ObjectMaps, r: Pick<Route, 'prefix' | 'prefixLength'>): boolean {
  return remove(maps, ROUTES_MAP, encodeRouteKey(r), `route ${r.prefix}/${r.prefixLength}`);
}

export const neighbours = (maps: ObjectMaps): Neighbour[] => maps.entries(maps.get(NEIGH_MAP)).map(([k, v]) => decodeNeighbour(k, v));

export function putNeighbour(maps: ObjectMaps, n: Neighbour): void {
  put(maps, NEIGH_MAP, encodeNeighKey(n), encodeNeighValue(n), `neighbour ${n.address}%${n.ifindex}`);
}

export function deleteNeighbour(maps: ObjectMaps, n: Pick<Neighbour, 'address' | 'ifindex'>): boolean {
  return remove(maps, NEIGH_MAP, encodeNeighKey(n), `neighbour ${n.address}%${n.ifindex}`);
}

/** Empties the program's next-hop cache, every CPU's rows (absent from stand-in objects). */
export function forgetCachedNextHops(maps: ObjectMaps): void {
  const cache = maps.find(CACHE_MAP);
  if (cache) maps.zeroArray(cache);
}

/** Empties both mirrored tables and the cache; returns how many entries there were. */
export function clearNextHops(maps: ObjectMaps): { routes: number; neighbours: number } {
  const out = { routes: maps.deleteAll(maps.get(ROUTES_MAP)), neighbours: maps.deleteAll(maps.get(NEIGH_MAP)) };
  forgetCachedNextHops(maps);
  return out;
}
