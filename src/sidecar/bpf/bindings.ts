// Channel bindings in the kernel (turn_router_shared.h, "bindings"): each
// binding is one slot of tp_bindings, named by a directory slot in
// tp_chan_to_peer (client, channel) and one in tp_peer_to_chan (peer,
// allocation port). The sidecar is the only writer and writes through
// memory-mapped views, so a write is a store the program sees at once.
//
// Rules that keep every program run seeing a whole, right binding:
// - a slot of tp_bindings is written in full before a directory names it,
//   and never changed while one does: a change (a partner linked or
//   unlinked) is a new slot, named in place of the old one;
// - a directory slot changes with one aligned 4-byte store;
// - a slot no directory names is reused only after every program run that
//   began before it was unnamed has ended (waitForReaders, mapped.ts):
//   usually on a pool thread in the background, and synchronously only
//   when no other slot is free.
// The program compares the whole key in the slot it finds, so a slot it
// reads through a word that changed meanwhile is used only if it is that
// key's binding.
//
// Every address is keyed with its family (abi.ts), so distinct allocations
// never share a key; and an entry is only ever replaced or removed by the
// binding it belongs to: a put that finds either key holding another
// binding is refused (EEXIST), a delete leaves such an entry alone.
//
// Channel -> channel: when a binding's peer is another allocation of this
// relay whose channel back to it is bound too, each binding names the
// other's client (its partner), so the program needs one lookup.
// Whichever of the two is put second links both; a delete unlinks the
// other first, so the program never relays to a partner that is gone.
//
// Order: a put names the binding in tp_chan_to_peer first, a delete unnames
// it there last, so a sidecar stopped half way leaves a tp_chan_to_peer
// entry, which listBindings (and so the resync with the relay) sees.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  PARTNER_AT,
  PEER_KEY_AT,
  STRUCTS,
  TP_BIND_VERSION,
  TP_BUCKET_SLOTS,
  TP_SLOT_INDEX_MASK,
  TP_SLOT_TAG_SHIFT,
  decodeChanKey,
  decodeChanValue,
  decodePeerValue,
  encodeChanKey,
  encodeChanValue,
  encodePeerKey,
  type Endpoint,
} from './abi.ts';
import { DIR_CHAN, DIR_PEER, keyHash, placeOf, type Direction } from './bind-hash.ts';
import { BpfError } from './errors.ts';
import type { LibBpf } from './libbpf.ts';
import { afterReaders, mapArray, waitForReaders, type MappedArray } from './mapped.ts';
import { openPinnedMap, slotKey, type ObjectMaps } from './maps.ts';

const { E2BIG, EEXIST, ENOSPC } = constants.errno;

/** The two directories, by direction: the names /status and the metrics report fill under. */
export const BINDING_MAPS = ['tp_chan_to_peer', 'tp_peer_to_chan'] as const;
/** Every map of the binding tables; the loader sizes them (tableSizes) and they are pinned and reused together. */
export const BINDING_TABLE_MAPS = ['tp_bindings', ...BINDING_MAPS, 'tp_bind_meta'] as const;

/** Largest binding capacity: slot indexes are 24 bits (TP_SLOT_TAG_SHIFT). */
export const MAX_BINDING_CAPACITY = 8_388_608;

/** Without membarrier (nohz_full kernels) a retired slot waits this long instead: far beyond any program run. */
const FALLBACK_GRACE_MS = 1000;

export interface ChannelBinding {
  client: Endpoint;
  channel: number;
  peer: Endpoint;
  allocationPort: number;
}

type Partner = { client: Endpoint; channel: number };

/**
 * max_entries of each table map for a binding capacity: tp_bindings has
 * room for the bindings plus spare slots (for bindings being replaced and
 * slots waiting out a grace period), each directory 4 slots per binding
 * in a power of two of 8-slot buckets.
 */
export function tableSizes(capacity: number): Record<'tp_bindings' | (typeof BINDING_MAPS)[number], number> {
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_BINDING_CAPACITY) {
    throw new RangeError(`mapCapacity must be an integer 1-${MAX_BINDING_CAPACITY}, got ${capacity}`);
  }
  const spare = Math.max(64, Math.ceil(capacity / 8));
  let buckets = 1;
  while (buckets * TP_BUCKET_SLOTS < capacity * 4) buckets *= 2;
  return { tp_bindings: capacity + spare, tp_chan_to_peer: buckets, tp_peer_to_chan: buckets };
}

function bindingError(op: string, b: ChannelBinding, map: string, errno: number, detail: string): BpfError {
  const who = `${b.client.address}:${b.client.port} channel 0x${b.channel.toString(16)} <-> ${b.peer.address}:${b.peer.port} via ${b.allocationPort}`;
  return BpfError.fromErrno(`${op} channel ${who} in ${map}`, errno, detail);
}

const BINDING_SIZE = STRUCTS.tp_binding.size;
const KEY_SIZE = STRUCTS.tp_chan_key.size;
/** Offset of each direction's key in a binding. */
const KEY_AT: Record<Direction, number> = { [DIR_CHAN]: 0, [DIR_PEER]: PEER_KEY_AT };
/** The binding without its partner: what decides whether an entry is this binding's. */
const OWN_SIZE = PEER_KEY_AT + PARTNER_AT;

/** Where a key may be named: its buckets (one when both are the same), its tag and the directory's words. */
interface Place {
  buckets: number[];
  tag: number;
  words: Uint32Array;
}

/** Where a key is named: the directory word's index and the binding slot it names. */
interface Found {
  pos: number;
  index: number;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Blocks until program runs in progress have ended: a grace period, or FALLBACK_GRACE_MS where the kernel cannot tell (start-up only). */
function waitOutReaders(): void {
  if (!waitForReaders()) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, FALLBACK_GRACE_MS);
}

/** The binding tables of a loaded object; see the file comment. */
export class BindingTable {
  readonly capacity: number;
  readonly #maps: ObjectMaps;
  readonly #entries: MappedArray;
  readonly #dirMaps: [MappedArray, MappedArray];
  readonly #dirs: [Uint32Array, Uint32Array];
  readonly #slots: number;
  #seed: [bigint, bigint] = [0n, 0n];
  #mask = 0;
  /** Slots no directory names and no program run can still be reading. */
  #free: number[] = [];
  /** Unnamed slots a program run may still be reading. */
  #retired: number[] = [];
  /** Unnamed slots whose grace period is running. */
  #inGrace: number[] | null = null;
  #live = 0;
  #closed = false;
  readonly #log: Logger;
  /** Synchronous grace waits (a put found no free slot) and their total ms, for the warning below. */
  #syncWaits = { count: 0, ms: 0, warnedAt: -Infinity };

  /**
   * Maps the tables. When all of them were reused from pins (a restart)
   * and agree with each other, their bindings stay and the free slots are
   * found from the directories; otherwise they start empty with a new seed.
   */
  constructor(maps: ObjectMaps, capacity: number, reusedMaps: readonly string[], log: Logger) {
    this.#maps = maps;
    this.#log = log;
    this.capacity = capacity;
    this.#entries = mapArray(maps.get('tp_bindings'));
    this.#slots = maps.get('tp_bindings').maxEntries;
    this.#dirMaps = [mapArray(maps.get(BINDING_MAPS[0])), mapArray(maps.get(BINDING_MAPS[1]))];
    this.#dirs = this.#dirMaps.map((m) => new Uint32Array(m.bytes.buffer, m.bytes.byteOffset, m.bytes.length / 4)) as [Uint32Array, Uint32Array];
    const buckets = maps.get(BINDING_MAPS[0]).maxEntries;
    try {
      const kept = BINDING_TABLE_MAPS.every((n) => reusedMaps.includes(n)) && this.#readMeta(buckets);
      if (kept) {
        const orphans = this.#rebuild();
        log.info({ bindings: this.#live, orphans }, 'binding tables reused');
      } else {
        this.#reset(buckets, BINDING_TABLE_MAPS.some((n) => reusedMaps.includes(n)));
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  #readMeta(buckets: number): boolean {
    const v = this.#maps.lookup(this.#maps.get('tp_bind_meta'), slotKey(0), 'look up tp_bind_meta');
    if (!v) return false;
    const d = new DataView(v.buffer, v.byteOffset, v.byteLength);
    const f = STRUCTS.tp_bind_meta.fields;
    this.#seed = [d.getBigUint64(f.seed.offset, true), d.getBigUint64(f.seed.offset + 8, true)];
    this.#mask = d.getUint32(f.bucket_mask.offset, true);
    return d.getUint32(f.version.offset, true) === TP_BIND_VERSION && this.#mask === buckets - 1;
  }

  /**
   * Empty tables and a new seed; the program finds nothing until the new
   * meta is written. Some of them may be pins a running program still
   * reads (the rest did not fit): its runs in progress end before the
   * slots they may be reading are zeroed.
   */
  #reset(buckets: number, someReused: boolean): void {
    const meta = this.#maps.get('tp_bind_meta');
    const off = new Uint8Array(meta.valueSize);
    this.#check(this.#maps.lib.mapUpdateElem(meta.fd, slotKey(0), off, 0n), 'clear tp_bind_meta');
    for (const d of this.#dirs) for (let i = 0; i < d.length; i++) if (d[i] !== 0) Atomics.store(d, i, 0);
    if (someReused) waitOutReaders();
    this.#entries.bytes.fill(0);
    const seed = randomBytes(16);
    const v = new Uint8Array(meta.valueSize);
    const d = new DataView(v.buffer);
    const f = STRUCTS.tp_bind_meta.fields;
    v.set(seed, f.seed.offset);
    d.setUint32(f.bucket_mask.offset, buckets - 1, true);
    d.setUint32(f.version.offset, TP_BIND_VERSION, true);
    this.#check(this.#maps.lib.mapUpdateElem(meta.fd, slotKey(0), v, 0n), 'write tp_bind_meta');
    this.#seed = [d.getBigUint64(f.seed.offset, true), d.getBigUint64(f.seed.offset + 8, true)];
    this.#mask = buckets - 1;
    this.#live = 0;
    this.#free = this.#allSlotsExcept(new Set());
  }

  #check(err: number, what: string): void {
    if (err < 0) throw BpfError.fromErrno(what, -err);
  }

  /** After a restart: which slots are named, the live count, the free list. Peer words naming a slot no channel word names are cleared (returned). */
  #rebuild(): number {
    const used = new Set<number>();
    const [chan, peer] = this.#dirs;
    for (let i = 0; i < chan.length; i++) {
      const w = chan[i]!;
      if (w === 0) continue;
      const index = (w & TP_SLOT_INDEX_MASK) - 1;
      if (index >= this.#slots) {
        chan[i] = 0;
        continue;
      }
      used.add(index);
      this.#live++;
    }
    let orphans = 0;
    for (let i = 0; i < peer.length; i++) {
      const w = peer[i]!;
      if (w !== 0 && !used.has((w & TP_SLOT_INDEX_MASK) - 1)) {
        Atomics.store(peer, i, 0);
        orphans++;
      }
    }
    // Unnamed slots may still be read by a run in progress: the cleared
    // words' slots, and those the last sidecar retired and exited before
    // their grace period ended.
    waitOutReaders();
    this.#free = this.#allSlotsExcept(used);
    return orphans;
  }

  /** Free slots, lowest index last (popped first). */
  #allSlotsExcept(used: Set<number>): number[] {
    const out: number[] = [];
    for (let i = this.#slots - 1; i >= 0; i--) if (!used.has(i)) out.push(i);
    return out;
  }

  #binding(index: number): Uint8Array {
    return this.#entries.bytes.subarray(index * BINDING_SIZE, (index + 1) * BINDING_SIZE);
  }

  /** The key of one direction in the binding at index (for the other direction, its value). */
  #keyOf(index: number, dir: Direction): Uint8Array {
    const at = index * BINDING_SIZE + KEY_AT[dir];
    return this.#entries.bytes.subarray(at, at + KEY_SIZE);
  }

  /** Where dir names the binding whose key is key (place: the key's, from #place). */
  #find(dir: Direction, key: Uint8Array, place: Place = this.#place(dir, key)): Found | undefined {
    const { buckets, tag, words } = place;
    for (const b of buckets) {
      for (let i = 0; i < TP_BUCKET_SLOTS; i++) {
        const pos = b * TP_BUCKET_SLOTS + i;
        const w = words[pos]!;
        if (w === 0 || w >>> TP_SLOT_TAG_SHIFT !== tag) continue;
        const index = (w & TP_SLOT_INDEX_MASK) - 1;
        if (index >= this.#slots) continue;
        if (sameBytes(this.#keyOf(index, dir), key)) return { pos, index };
      }
    }
    return undefined;
  }

  #place(dir: Direction, key: Uint8Array): Place {
    const { buckets, tag } = placeOf(keyHash(key, this.#seed, dir), this.#mask);
    return { buckets: buckets[0] === buckets[1] ? [buckets[0]] : buckets, tag, words: this.#dirs[dir] };
  }

  /** An empty word for a key at place: in the emptier of its two buckets. */
  #emptyWord(place: Place): { pos: number; tag: number } | undefined {
    const { buckets, tag, words } = place;
    let best: number | undefined;
    let bestFree = 0;
    for (const b of buckets) {
      let free = 0;
      let first: number | undefined;
      for (let i = 0; i < TP_BUCKET_SLOTS; i++) {
        if (words[b * TP_BUCKET_SLOTS + i] === 0) {
          free++;
          first ??= b * TP_BUCKET_SLOTS + i;
        }
      }
      if (free > bestFree) {
        best = first;
        bestFree = free;
      }
    }
    return best === undefined ? undefined : { pos: best, tag };
  }

  #word(tag: number, index: number): number {
    return ((tag << TP_SLOT_TAG_SHIFT) | (index + 1)) >>> 0;
  }

  /** Points the word at pos of dir to slot index, keeping its tag (one 4-byte store). */
  #rename(dir: Direction, pos: number, index: number): void {
    const words = this.#dirs[dir];
    Atomics.store(words, pos, this.#word(words[pos]! >>> TP_SLOT_TAG_SHIFT, index));
  }

  /** A free slot of tp_bindings; waits for the readers of retired ones only when none is free. */
  #takeSlot(): number | undefined {
    if (this.#free.length === 0 && (this.#retired.length > 0 || this.#inGrace)) {
      const t0 = performance.now();
      if (waitForReaders()) {
        this.#free.push(...(this.#inGrace ?? []), ...this.#retired);
        this.#inGrace = null;
        this.#retired = [];
      }
      this.#waited(performance.now() - t0);
    }
    return this.#free.pop();
  }

  /** A put blocked the event loop for a grace period: more bindings were replaced within one than there are spare slots. Warned at most once a minute. */
  #waited(ms: number): void {
    const w = this.#syncWaits;
    w.count++;
    w.ms += ms;
    const now = performance.now();
    if (now - w.warnedAt < 60_000) return;
    w.warnedAt = now;
    this.#log.warn(
      { waits: w.count, waitedMs: Math.round(w.ms), lastMs: Math.round(ms * 10) / 10, spareSlots: this.#slots - this.capacity },
      'binding tables: every spare slot was waiting for program runs to end; the sidecar waited for them (raise TURNPIKE_MAP_CAPACITY for more spare slots)',
    );
  }

  #retire(index: number): void {
    this.#retired.push(index);
    this.#graceInBackground();
  }

  #graceInBackground(): void {
    if (this.#inGrace || this.#retired.length === 0) return;
    const batch = (this.#inGrace = this.#retired.splice(0));
    const release = () => {
      if (this.#inGrace !== batch) return; // a synchronous wait freed them
      this.#inGrace = null;
      this.#free.push(...batch);
      this.#graceInBackground();
    };
    afterReaders((ok) => (ok ? release() : setTimeout(release, FALLBACK_GRACE_MS).unref()));
  }

  /** Writes bytes into a free slot and returns it; throws ENOSPC when every spare slot waits out its grace period. */
  #write(bytes: Uint8Array, op: string, b: ChannelBinding): number {
    const index = this.#takeSlot();
    if (index === undefined) {
      throw bindingError(op, b, 'tp_bindings', ENOSPC, `all ${this.#slots} slots are taken or waiting for the program to stop reading them`);
    }
    this.#binding(index).set(bytes);
    return index;
  }

  /** The partner of b: the client of the channel bound from b's peer, when that peer is another allocation here whose peer is b's allocation. */
  #partnerOf(b: ChannelBinding): Partner | undefined {
    const key = encodePeerKey({ peer: { address: b.peer.address, port: b.allocationPort }, allocationPort: b.peer.port });
    const f = this.#find(DIR_PEER, key);
    return f && decodePeerValue(this.#keyOf(f.index, DIR_CHAN));
  }

  /** Names, in the binding of `of` (when its peer is b's allocation), `to`'s client as its partner, or none. */
  #linkPartner(of: Partner, b: ChannelBinding, to: ChannelBinding | undefined): void {
    const chanKey = encodeChanKey(of);
    const at = this.#find(DIR_CHAN, chanKey);
    if (!at) return;
    const have = this.#binding(at.index);
    const v = decodeChanValue(have.subarray(PEER_KEY_AT));
    if (v.allocationPort !== b.peer.port || v.peer.port !== b.allocationPort || v.peer.address !== b.peer.address) return;
    const next = new Uint8Array(BINDING_SIZE);
    next.set(chanKey);
    next.set(encodeChanValue(v, to && { client: to.client, channel: to.channel }), PEER_KEY_AT);
    if (sameBytes(next, have)) return;
    const peerAt = this.#find(DIR_PEER, next.subarray(PEER_KEY_AT, PEER_KEY_AT + KEY_SIZE));
    const index = this.#write(next, to ? 'link partner of' : 'unlink partner of', b);
    this.#rename(DIR_CHAN, at.pos, index);
    if (peerAt && peerAt.index === at.index) this.#rename(DIR_PEER, peerAt.pos, index);
    this.#retire(at.index);
  }

  /**
   * Installs a channel in both directions (again, for a refresh). Refused
   * with EEXIST, writing nothing, when either key holds another binding;
   * with E2BIG when capacity bindings are installed; with ENOSPC when a
   * key's two buckets are full or no slot is free yet.
   */
  put(b: ChannelBinding): void {
    this.#open();
    const chanKey = encodeChanKey(b);
    const peerKey = encodePeerKey(b);
    // Each key is hashed once: its place serves the lookup and, when absent, the empty word.
    const chanPlace = this.#place(DIR_CHAN, chanKey);
    const peerPlace = this.#place(DIR_PEER, peerKey);
    const chanAt = this.#find(DIR_CHAN, chanKey, chanPlace);
    const peerAt = this.#find(DIR_PEER, peerKey, peerPlace);
    if (chanAt && !sameBytes(this.#keyOf(chanAt.index, DIR_PEER), peerKey)) {
      throw bindingError('put', b, BINDING_MAPS[0], EEXIST, `the key belongs to another binding in ${BINDING_MAPS[0]}`);
    }
    if (peerAt && !sameBytes(this.#keyOf(peerAt.index, DIR_CHAN), chanKey)) {
      throw bindingError('put', b, BINDING_MAPS[1], EEXIST, `the key belongs to another binding in ${BINDING_MAPS[1]}`);
    }
    const partner = this.#partnerOf(b);
    const want = new Uint8Array(BINDING_SIZE);
    want.set(chanKey);
    want.set(encodeChanValue(b, partner), PEER_KEY_AT);
    const current = chanAt && peerAt?.index === chanAt.index && sameBytes(this.#binding(chanAt.index), want);
    if (!current) this.#install(b, want, chanAt ?? chanPlace, peerAt ?? peerPlace);
    if (partner) this.#linkPartner(partner, b, b);
  }

  /** Writes want into a new slot and names it in both directories: in place of the word found, or in an empty word at the key's place. */
  #install(b: ChannelBinding, want: Uint8Array, chan: Found | Place, peer: Found | Place): void {
    const chanAt = 'pos' in chan ? chan : undefined;
    const peerAt = 'pos' in peer ? peer : undefined;
    if (!chanAt && this.#live >= this.capacity) {
      throw bindingError('put', b, BINDING_MAPS[0], E2BIG, `${BINDING_MAPS[0]} is full (${this.capacity} entries)`);
    }
    const chanWord = 'pos' in chan ? undefined : this.#emptyWord(chan);
    const peerWord = 'pos' in peer ? undefined : this.#emptyWord(peer);
    if (!chanAt && !chanWord) throw bindingError('put', b, BINDING_MAPS[0], ENOSPC, 'both buckets of the key are full');
    if (!peerAt && !peerWord) throw bindingError('put', b, BINDING_MAPS[1], ENOSPC, 'both buckets of the key are full');
    const index = this.#write(want, 'put', b);
    if (chanAt) this.#rename(DIR_CHAN, chanAt.pos, index);
    else Atomics.store(this.#dirs[DIR_CHAN], chanWord!.pos, this.#word(chanWord!.tag, index));
    if (peerAt) this.#rename(DIR_PEER, peerAt.pos, index);
    else Atomics.store(this.#dirs[DIR_PEER], peerWord!.pos, this.#word(peerWord!.tag, index));
    if (!chanAt) this.#live++;
    for (const old of new Set([chanAt?.index, peerAt?.index])) if (old !== undefined) this.#retire(old);
  }

  /** Removes both directions where they hold this binding; true when at least one did. */
  delete(b: ChannelBinding): boolean {
    this.#open();
    const chanKey = encodeChanKey(b);
    const peerKey = encodePeerKey(b);
    const cleared = new Set<number>();
    const peerAt = this.#find(DIR_PEER, peerKey);
    if (peerAt && sameBytes(this.#keyOf(peerAt.index, DIR_CHAN), chanKey)) {
      const partner = this.#partnerOf(b);
      if (partner) this.#linkPartner(partner, b, undefined);
      Atomics.store(this.#dirs[DIR_PEER], peerAt.pos, 0);
      cleared.add(peerAt.index);
    }
    const chanAt = this.#find(DIR_CHAN, chanKey);
    if (chanAt && sameBytes(this.#keyOf(chanAt.index, DIR_PEER), peerKey)) {
      Atomics.store(this.#dirs[DIR_CHAN], chanAt.pos, 0);
      this.#live--;
      cleared.add(chanAt.index);
    }
    // A slot is named only under its own two keys, so one whose word was cleared here is named nowhere now.
    for (const index of cleared) this.#retire(index);
    return cleared.size > 0;
  }

  lookupChannel(client: Endpoint, channel: number): { peer: Endpoint; allocationPort: number } | undefined {
    this.#open();
    const f = this.#find(DIR_CHAN, encodeChanKey({ client, channel }));
    return f && decodeChanValue(this.#binding(f.index).subarray(PEER_KEY_AT));
  }

  lookupPeer(peer: Endpoint, allocationPort: number): { client: Endpoint; channel: number } | undefined {
    this.#open();
    const f = this.#find(DIR_PEER, encodePeerKey({ peer, allocationPort }));
    return f && decodePeerValue(this.#keyOf(f.index, DIR_CHAN));
  }

  /** Every binding tp_chan_to_peer names (for resync with the relay). */
  list(): ChannelBinding[] {
    this.#open();
    return named(this.#dirs[DIR_CHAN], this.#entries.bytes);
  }

  /** Unnames every binding (peer direction first); returns how many there were. */
  clear(): number {
    this.#open();
    const n = this.#live;
    const named = new Set<number>();
    for (const d of [this.#dirs[DIR_PEER], this.#dirs[DIR_CHAN]]) {
      for (let i = 0; i < d.length; i++) {
        const w = d[i]!;
        if (w === 0) continue;
        Atomics.store(d, i, 0);
        named.add((w & TP_SLOT_INDEX_MASK) - 1);
      }
    }
    for (const index of named) this.#retire(index);
    this.#live = 0;
    return n;
  }

  count(): number {
    return this.#live;
  }

  /** Slots waiting for program runs to end before reuse (diagnostics and tests). */
  retiring(): number {
    return this.#retired.length + (this.#inGrace?.length ?? 0);
  }

  #open(): void {
    if (this.#closed) throw new BpfError('the binding tables are closed', 'CLOSED');
  }

  /** Unmaps the views; the maps themselves live on with their pins or the program. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#entries.unmap();
    for (const m of this.#dirMaps) m.unmap();
  }
}

/** The bindings a directory names, decoded from the slots of tp_bindings they name. */
function named(words: Uint32Array, entries: Uint8Array): ChannelBinding[] {
  const out: ChannelBinding[] = [];
  for (const w of words) {
    if (w === 0) continue;
    const at = ((w & TP_SLOT_INDEX_MASK) - 1) * BINDING_SIZE;
    const e = entries.subarray(at, at + BINDING_SIZE);
    if (e.length < BINDING_SIZE) continue;
    const k = decodeChanKey(e.subarray(0, KEY_SIZE));
    const v = decodeChanValue(e.subarray(PEER_KEY_AT));
    out.push({ client: k.client, channel: k.channel, peer: v.peer, allocationPort: v.allocationPort });
  }
  return out;
}

/**
 * What each directory of the tables pinned in pinDir names, read from the
 * pins (another process, e.g. a running sidecar, owns them): for checks
 * that compare the kernel's bindings with what the relay holds.
 */
export function readPinnedBindings(lib: LibBpf, pinDir: string): { chanToPeer: ChannelBinding[]; peerToChan: ChannelBinding[] } {
  const opened: { m: MappedArray; fd: number }[] = [];
  const open = (name: string): MappedArray => {
    const { fd, info } = openPinnedMap(lib, join(pinDir, name));
    try {
      const m = mapArray({ name, ptr: 0n, fd, type: info.type!, keySize: info.key_size!, valueSize: info.value_size!, maxEntries: info.max_entries! });
      opened.push({ m, fd });
      return m;
    } catch (e) {
      lib.close(fd);
      throw e;
    }
  };
  try {
    const entries = open('tp_bindings').bytes;
    const words = (name: string) => {
      const b = open(name).bytes;
      return new Uint32Array(b.buffer, b.byteOffset, b.length / 4);
    };
    return { chanToPeer: named(words(BINDING_MAPS[0]), entries), peerToChan: named(words(BINDING_MAPS[1]), entries) };
  } finally {
    for (const { m, fd } of opened) {
      m.unmap();
      lib.close(fd);
    }
  }
}
