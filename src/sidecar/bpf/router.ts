// XdpRouter: bpf/turn_router.o loaded (loader.ts), its maps read and written
// with the abi.ts layouts (bindings.ts, config-map.ts, counters.ts,
// next-hops.ts over maps.ts) and its XDP attachments (attach.ts, one per
// interface), behind one object the sidecar holds for its lifetime.
//
// Restart story (pinDir set): every tp_* map is pinned at <pinDir>/<map> and
// the XDP attachment is a bpf_link pinned at <pinDir>/link_<ifname> when
// attach(..., { keepPinned: true }). A restarted sidecar's load() reuses the
// pinned maps (so the running program and the new one share bindings and
// counters), and attach() finds the pinned link and swaps the new program in
// with bpf_link_update: one atomic replacement, no gap in relaying.
import type { Endpoint, Neighbour, ReasonName, Route, TpConfig } from './abi.ts';
import { XdpAttacher, type AttachMode, type AttachOptions, type AttachResult } from './attach.ts';
import { BindingTable, type ChannelBinding } from './bindings.ts';
import { readConfig, writeConfig, type RouterConfig } from './config-map.ts';
import { readPathStats, readReasons, type PathCounter } from './counters.ts';
import { BpfError } from './errors.ts';
import type { LibBpf, Ptr } from './libbpf.ts';
import { loadObject, type LoadOptions } from './loader.ts';
import { ObjectMaps, type MapMemory } from './maps.ts';
import * as nextHops from './next-hops.ts';

export { BINDING_MAPS, BINDING_TABLE_MAPS, type ChannelBinding } from './bindings.ts';
export { ensureBpffs, PROGRAM_NAME, type LoadOptions } from './loader.ts';
export type { AttachMode, AttachOptions, AttachResult } from './attach.ts';
export type { RouterConfig } from './config-map.ts';
export type { PathCounter } from './counters.ts';
export type { MapMemory } from './maps.ts';

/** Told of every binding written to or removed from the kernel (the next-hop mirror follows their ends). */
export interface BindingObserver {
  put(b: ChannelBinding): void;
  deleted(b: ChannelBinding): void;
  cleared(): void;
}

export class XdpRouter {
  readonly objectName: string;
  readonly programName: string;
  readonly pinDir: string | undefined;
  /** Maps that were reused from pins at load (the rest were created). */
  readonly reusedMaps: readonly string[];
  private obj: Ptr | null;
  private readonly progFd: number;
  private readonly maps: ObjectMaps;
  /** Absent in objects without binding tables (the benchmarks' empty program and wrappers). */
  private readonly tables: BindingTable | undefined;
  /** One per interface the program is (being) attached to. */
  private readonly attachers = new Map<string, XdpAttacher>();
  private readonly lib: LibBpf;
  private readonly log: LoadOptions['log'];
  private readonly observers = new Set<BindingObserver>();
  private readonly closeHooks: (() => void)[] = [];

  private constructor(opts: LoadOptions) {
    const loaded = loadObject(opts);
    this.lib = loaded.lib;
    this.obj = loaded.obj;
    this.objectName = loaded.objectName;
    this.programName = loaded.programName;
    this.progFd = loaded.progFd;
    this.pinDir = opts.pinDir;
    this.reusedMaps = loaded.reusedMaps;
    this.maps = new ObjectMaps(loaded.lib, loaded.maps, loaded.objectName, () => this.obj !== null);
    this.log = opts.log;
    try {
      this.tables = loaded.maps.has('tp_bindings') ? new BindingTable(this.maps, opts.mapCapacity ?? 65536, loaded.reusedMaps, opts.log) : undefined;
      this.migrate(loaded.legacyBindings);
    } catch (e) {
      this.lib.objectClose(loaded.obj);
      this.obj = null;
      throw e;
    }
  }

  /** Installs bindings read from pins of the earlier hash layout; one that does not fit is left to the relay's resync. */
  private migrate(legacy: readonly ChannelBinding[]): void {
    if (legacy.length === 0) return;
    let moved = 0;
    for (const b of legacy) {
      try {
        this.bindings.put(b);
        moved++;
      } catch (e) {
        this.log.warn({ reason: (e as Error).message }, 'a pinned binding of the hash-map layout was not moved: the relay resync decides');
      }
    }
    this.log.info({ moved, read: legacy.length }, 'bindings moved to the binding tables');
  }

  private get bindings(): BindingTable {
    this.open();
    if (!this.tables) throw new BpfError(`${this.objectName} has no binding tables`, 'NO_MAP');
    return this.tables;
  }

  /** Opens and loads the object, reusing pinned maps; see the file comment. */
  static load(opts: LoadOptions): XdpRouter {
    return new XdpRouter(opts);
  }

  private open(): void {
    if (this.obj === null) throw new BpfError(`${this.objectName} is closed`, 'CLOSED');
  }

  /** File descriptor of the loaded program (for BPF_PROG_TEST_RUN in tests and benchmarks). */
  programFd(): number {
    this.open();
    return this.progFd;
  }

  // ---- maps -----------------------------------------------------------------

  /** File descriptor of a map of the loaded object (for perf.ts). */
  mapFd(name: string): number {
    return this.maps.get(name).fd;
  }

  /** max_entries of a map as loaded. */
  maxEntries(name: string): number {
    return this.maps.get(name).maxEntries;
  }

  /** Writes config slot 0 every time: the kernel reads zeros from an unwritten slot. */
  writeConfig(c: RouterConfig): void {
    writeConfig(this.maps, c);
  }

  readConfig(): TpConfig {
    return readConfig(this.maps);
  }

  /** Installs a channel in both directions; on a failure neither direction stays. */
  putChannel(b: ChannelBinding): void {
    this.bindings.put(b);
    for (const o of this.observers) o.put(b);
  }

  /** Removes both directions; true when at least one existed. */
  deleteChannel(b: ChannelBinding): boolean {
    const removed = this.bindings.delete(b);
    for (const o of this.observers) o.deleted(b);
    return removed;
  }

  /** The peer side of a channel, from tp_chan_to_peer. */
  lookupChannel(client: Endpoint, channel: number): { peer: Endpoint; allocationPort: number } | undefined {
    return this.bindings.lookupChannel(client, channel);
  }

  /** The client side of a channel, from tp_peer_to_chan. */
  lookupPeer(peer: Endpoint, allocationPort: number): { client: Endpoint; channel: number } | undefined {
    return this.bindings.lookupPeer(peer, allocationPort);
  }

  /** Every installed channel, read from tp_chan_to_peer (for resync with the relay). */
  listBindings(): ChannelBinding[] {
    return this.bindings.list();
  }

  /** Empties both binding maps; returns how many channels were removed. */
  clearBindings(): number {
    const n = this.bindings.clear();
    for (const o of this.observers) o.cleared();
    return n;
  }

  /** Tells o of every binding change from now on; returns the unsubscribe function. */
  observeBindings(o: BindingObserver): () => void {
    this.observers.add(o);
    return () => this.observers.delete(o);
  }

  bindingCount(): number {
    return this.bindings.count();
  }

  /** Bindings the tables hold at most (mapCapacity). */
  bindingCapacity(): number {
    return this.bindings.capacity;
  }

  // ---- next hops (the kernel's routes and neighbours, mirrored) ----------------

  /** The routes the program reads (tp_routes). */
  routes(): Route[] {
    return nextHops.routes(this.maps);
  }

  putRoute(r: Route): void {
    nextHops.putRoute(this.maps, r);
  }

  /** False when there was no such route. */
  deleteRoute(r: Pick<Route, 'prefix' | 'prefixLength'>): boolean {
    return nextHops.deleteRoute(this.maps, r);
  }

  /** The next hops' link-layer addresses the program reads (tp_neigh). */
  neighbours(): Neighbour[] {
    return nextHops.neighbours(this.maps);
  }

  putNeighbour(n: Neighbour): void {
    nextHops.putNeighbour(this.maps, n);
  }

  /** False when there was no such entry. */
  deleteNeighbour(n: Pick<Neighbour, 'address' | 'ifindex'>): boolean {
    return nextHops.deleteNeighbour(this.maps, n);
  }

  /** Makes every CPU of the program look its next hops up again (after an answer it may hold changed). */
  forgetCachedNextHops(): void {
    nextHops.forgetCachedNextHops(this.maps);
  }

  /** Empties the mirrored routes and neighbours and the program's cache of them. */
  clearNextHops(): { routes: number; neighbours: number } {
    return nextHops.clearNextHops(this.maps);
  }

  /** Per-path packets and payload bytes, summed over CPUs. */
  readPathStats(): PathCounter[] {
    return readPathStats(this.maps);
  }

  /** Pass/drop reason counts, summed over CPUs. */
  readReasons(): Record<ReasonName, bigint> {
    return readReasons(this.maps);
  }

  /** Kernel memory charged to each map (bytes_memlock from /proc/self/fdinfo). */
  mapMemory(): MapMemory[] {
    return this.maps.memory();
  }

  // ---- attach -----------------------------------------------------------------

  /** Attaches to one more interface with a bpf_link, or swaps into a link pinned there by an earlier run (attach.ts). */
  attach(ifname: string, mode: AttachMode = 'native', opts: AttachOptions = {}): AttachResult {
    this.open();
    const attacher = this.attachers.get(ifname) ?? new XdpAttacher(this.lib, this.log, this.progFd, this.pinDir);
    const result = attacher.attach(ifname, mode, opts);
    this.attachers.set(ifname, attacher);
    return result;
  }

  /** Where the program is attached (the first interface), if it is. */
  attached(): AttachResult | undefined {
    return this.attachedTo()[0];
  }

  /** Every interface the program is attached to. */
  attachedTo(): AttachResult[] {
    return [...this.attachers.values()].flatMap((a) => a.attached() ?? []);
  }

  /** Detaches from every interface (or one) and removes the link pins. */
  detach(ifname?: string): void {
    for (const [name, a] of this.attachers) {
      if (ifname !== undefined && name !== ifname) continue;
      a.detach();
      this.attachers.delete(name);
    }
  }

  /** Runs fn when the router closes, before its maps go (for whoever still writes them). */
  onClose(fn: () => void): void {
    this.closeHooks.push(fn);
  }

  /**
   * Frees the object and its fds. A pinned link keeps the program attached and
   * pinned maps stay (for a restart) unless unpin is set; an unpinned link
   * detaches when its fd closes.
   */
  close(opts: { unpin?: boolean } = {}): void {
    if (this.obj === null) return;
    for (const fn of this.closeHooks.splice(0)) fn();
    this.observers.clear();
    this.tables?.close();
    if (opts.unpin) {
      this.detach();
      for (const m of this.maps.all()) {
        if (m.name.startsWith('tp_') && this.pinDir) this.lib.mapUnpin(m.ptr, null);
      }
    } else {
      for (const a of this.attachers.values()) a.release();
      this.attachers.clear();
    }
    this.lib.objectClose(this.obj);
    this.obj = null;
  }
}
