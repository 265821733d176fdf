// XdpRouter: bpf/turn_router.o loaded (loader.ts), its maps read and written
// with the abi.ts layouts (bindings.ts, config-map.ts, counters.ts,
// neighbours.ts over maps.ts) and its XDP attachment (attach.ts), behind one
// object the sidecar holds for its lifetime.
//
// Restart story (pinDir set): every tp_* map is pinned at <pinDir>/<map> and
// the XDP attachment is a bpf_link pinned at <pinDir>/link_<ifname> when
// attach(..., { keepPinned: true }). A restarted sidecar's load() reuses the
// pinned maps (so the running program and the new one share bindings and
// counters), and attach() finds the pinned link and swaps the new program in
// with bpf_link_update: one atomic replacement, no gap in relaying.
import type { Endpoint, Neighbour, ReasonName, TpConfig } from './abi.ts';
import { XdpAttacher, type AttachMode, type AttachOptions, type AttachResult } from './attach.ts';
import * as bindings from './bindings.ts';
import type { ChannelBinding } from './bindings.ts';
import { readConfig, writeConfig, type RouterConfig } from './config-map.ts';
import { readPathStats, readReasons, type PathCounter } from './counters.ts';
import { BpfError } from './errors.ts';
import type { LibBpf, Ptr } from './libbpf.ts';
import { loadObject, type LoadOptions } from './loader.ts';
import { ObjectMaps, type MapMemory } from './maps.ts';
import { clearNeighbours, neighbours } from './neighbours.ts';

export { BINDING_MAPS, type ChannelBinding } from './bindings.ts';
export { ensureBpffs, PROGRAM_NAME, type LoadOptions } from './loader.ts';
export type { AttachMode, AttachOptions, AttachResult } from './attach.ts';
export type { RouterConfig } from './config-map.ts';
export type { PathCounter } from './counters.ts';
export type { MapMemory } from './maps.ts';

export class XdpRouter {
  readonly objectName: string;
  readonly programName: string;
  readonly pinDir: string | undefined;
  /** Maps that were reused from pins at load (the rest were created). */
  readonly reusedMaps: readonly string[];
  private obj: Ptr | null;
  private readonly progFd: number;
  private readonly maps: ObjectMaps;
  private readonly attacher: XdpAttacher;
  private readonly lib: LibBpf;

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
    this.attacher = new XdpAttacher(loaded.lib, opts.log, loaded.progFd, opts.pinDir);
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
    bindings.putChannel(this.maps, b);
  }

  /** Removes both directions; true when at least one existed. */
  deleteChannel(b: ChannelBinding): boolean {
    return bindings.deleteChannel(this.maps, b);
  }

  /** The peer side of a channel, from tp_chan_to_peer. */
  lookupChannel(client: Endpoint, channel: number): { peer: Endpoint; allocationPort: number } | undefined {
    return bindings.lookupChannel(this.maps, client, channel);
  }

  /** The client side of a channel, from tp_peer_to_chan. */
  lookupPeer(peer: Endpoint, allocationPort: number): { client: Endpoint; channel: number } | undefined {
    return bindings.lookupPeer(this.maps, peer, allocationPort);
  }

  /** Every installed channel, read from tp_chan_to_peer (for resync with the relay). */
  listBindings(): ChannelBinding[] {
    return bindings.listBindings(this.maps);
  }

  /** Empties both binding maps; returns how many channels were removed. */
  clearBindings(): number {
    return bindings.clearBindings(this.maps);
  }

  bindingCount(): number {
    return bindings.bindingCount(this.maps);
  }

  /** The next hops the program learned from frames addressed to the relay (tp_neigh). */
  neighbours(): Neighbour[] {
    return neighbours(this.maps);
  }

  /** Forgets every learned next hop and the program's caches of them; returns how many there were. */
  clearNeighbours(): number {
    return clearNeighbours(this.maps);
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

  /** Attaches with a bpf_link, or swaps into a link pinned by an earlier run (attach.ts). */
  attach(ifname: string, mode: AttachMode = 'native', opts: AttachOptions = {}): AttachResult {
    this.open();
    return this.attacher.attach(ifname, mode, opts);
  }

  /** Where the program is attached, if it is. */
  attached(): AttachResult | undefined {
    return this.attacher.attached();
  }

  /** Detaches from the interface and removes the link pin. */
  detach(): void {
    this.attacher.detach();
  }

  /**
   * Frees the object and its fds. A pinned link keeps the program attached and
   * pinned maps stay (for a restart) unless unpin is set; an unpinned link
   * detaches when its fd closes.
   */
  close(opts: { unpin?: boolean } = {}): void {
    if (this.obj === null) return;
    if (opts.unpin) {
      this.detach();
      for (const m of this.maps.all()) {
        if (m.name.startsWith('tp_') && this.pinDir) this.lib.mapUnpin(m.ptr, null);
      }
    } else {
      this.attacher.release();
    }
    this.lib.objectClose(this.obj);
    this.obj = null;
  }
}
