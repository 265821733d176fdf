// XdpRouter: loads bpf/turn_router.o through libbpf, owns its maps and its
// XDP attachment, and offers typed reads/writes of the maps (abi.ts layouts).
//
// Restart story (pinDir set): every tp_* map is pinned at <pinDir>/<map> and
// the XDP attachment is a bpf_link pinned at <pinDir>/link_<ifname> when
// attach(..., { keepPinned: true }). A restarted sidecar's load() reuses the
// pinned maps (so the running program and the new one share bindings and
// counters), and attach() finds the pinned link and swaps the new program in
// with bpf_link_update: one atomic replacement, no gap in relaying.
import { existsSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import koffi from 'koffi';
import type { Logger } from 'pino';
import {
  PATH_NAMES,
  REASON_NAMES,
  STRUCTS,
  XDP_ACTION_NAMES,
  decodeChanKey,
  decodeChanValue,
  decodeConfig,
  decodeNeighbour,
  decodePathStats,
  decodePeerValue,
  encodeChanKey,
  encodeChanValue,
  encodeConfig,
  encodePeerKey,
  encodePeerValue,
  perCpuStride,
  type Endpoint,
  type Neighbour,
  type PathName,
  type ReasonName,
  type TpConfig,
} from './abi.ts';
import { BpfError, errnoText } from './errors.ts';
import {
  BPF_LINK_TYPE_XDP,
  BPF_MAP_TYPE_PERF_EVENT_ARRAY,
  BPF_XDP,
  LINK_CREATE_OPTS_SIZE,
  LINK_INFO_SIZE,
  MAP_INFO_SIZE,
  TEST_RUN_OPTS_SIZE,
  XDP_ATTACHED_DRV,
  XDP_ATTACHED_SKB,
  XDP_FLAGS_DRV_MODE,
  XDP_FLAGS_SKB_MODE,
  XDP_QUERY_OPTS_SIZE,
  libbpf,
  type LibBpf,
  type Ptr,
} from './libbpf.ts';
import { routeLibbpfLogs } from './print.ts';

/** Maps whose capacity follows mapCapacity. */
export const BINDING_MAPS = ['tp_chan_to_peer', 'tp_peer_to_chan'] as const;
export const PROGRAM_NAME = 'turn_router';
const ENOENT = 2;

export type AttachMode = 'native' | 'skb';

export interface LoadOptions {
  objectPath: string;
  /** max_entries of each binding map (default 65536). */
  mapCapacity?: number;
  /** bpffs directory for pinned maps and links; no pinning when unset. */
  pinDir?: string;
  /** A pinned map whose definition differs: 'replace' it (warn, old contents lost) or 'fail'. Default 'replace'. */
  onPinnedMismatch?: 'replace' | 'fail';
  /** Program to use; default turn_router, else the object's first program. */
  programName?: string;
  log: Logger;
}

export interface RouterConfig {
  listenPort: number;
  portMin: number;
  portMax: number;
  relayV4?: string | undefined;
  relayV6?: string | undefined;
  mtu: number;
  diagPerSec: number;
}

export interface ChannelBinding {
  client: Endpoint;
  channel: number;
  peer: Endpoint;
  allocationPort: number;
}

export interface PathCounter {
  path: PathName;
  packets: bigint;
  bytes: bigint;
}

export interface TestRunResult {
  action: number;
  actionName: string;
  data: Uint8Array;
  /** Average ns per run, as the kernel reports it. */
  durationNs: number;
}

export interface MapMemory {
  name: string;
  type: number;
  maxEntries: number;
  memlockBytes: number;
}

export interface AttachOptions {
  /** Pin the link under pinDir so the program outlives this process. */
  keepPinned?: boolean;
  /** Detach an XDP program attached without a link (e.g. by `ip link`) before attaching. */
  replaceForeign?: boolean;
}

export interface AttachResult {
  ifname: string;
  ifindex: number;
  mode: AttachMode;
  /** 'created' a new link, or 'updated' a pinned one in place. */
  how: 'created' | 'updated';
  pinnedAt: string | undefined;
}

interface MapHandle {
  name: string;
  ptr: Ptr;
  fd: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

interface Attachment {
  ifname: string;
  ifindex: number;
  mode: AttachMode;
  linkFd: number;
  pinnedAt: string | undefined;
}

const le32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
};

/** Mounts bpffs at /sys/fs/bpf when pinDir lives there and it is not mounted yet. */
export function ensureBpffs(pinDir: string, log: Logger): void {
  if (pinDir.startsWith('/sys/fs/bpf')) {
    const mounts = readFileSync('/proc/mounts', 'utf8');
    if (!/^\S+ \/sys\/fs\/bpf bpf /m.test(mounts)) {
      log.info('mounting bpffs at /sys/fs/bpf');
      try {
        execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf'], { stdio: 'pipe' });
      } catch (err) {
        const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
        throw new BpfError(`mount bpffs at /sys/fs/bpf failed: ${stderr || (err as Error).message}`, 'BPFFS');
      }
    }
  }
  mkdirSync(pinDir, { recursive: true });
}

export class XdpRouter {
  readonly objectName: string;
  readonly programName: string;
  readonly pinDir: string | undefined;
  /** Maps that were reused from pins at load (the rest were created). */
  readonly reusedMaps: readonly string[];
  private obj: Ptr | null;
  private readonly progFd: number;
  private readonly maps: Map<string, MapHandle>;
  private readonly ncpus: number;
  private attachment: Attachment | undefined;
  private readonly lib: LibBpf;
  private readonly log: Logger;

  private constructor(
    lib: LibBpf,
    log: Logger,
    obj: Ptr,
    objectName: string,
    programName: string,
    progFd: number,
    maps: Map<string, MapHandle>,
    pinDir: string | undefined,
    reusedMaps: string[],
  ) {
    this.lib = lib;
    this.log = log;
    this.obj = obj;
    this.objectName = objectName;
    this.programName = programName;
    this.progFd = progFd;
    this.maps = maps;
    this.pinDir = pinDir;
    this.reusedMaps = reusedMaps;
    this.ncpus = lib.numPossibleCpus();
  }

  /** Opens and loads the object, reusing pinned maps; see the file comment. */
  static load(opts: LoadOptions): XdpRouter {
    const lib = libbpf();
    const log = opts.log;
    routeLibbpfLogs(log);
    const capacity = opts.mapCapacity ?? 65536;
    const objectName = basename(opts.objectPath);
    const what = `load ${objectName}`;
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`mapCapacity must be a positive integer, got ${capacity}`);

    const obj = lib.objectOpenFile(opts.objectPath, null);
    if (!obj) {
      const errno = lib.errno();
      throw BpfError.fromErrno(what, errno, errno === ENOENT ? `no file at ${opts.objectPath} (run make -C bpf)` : opts.objectPath);
    }
    try {
      const reused: string[] = [];
      for (let m = lib.objectNextMap(obj, null); m; m = lib.objectNextMap(obj, m)) {
        const name = lib.mapName(m);
        if ((BINDING_MAPS as readonly string[]).includes(name)) {
          const err = lib.mapSetMaxEntries(m, capacity);
          if (err < 0) throw BpfError.fromErrno(`set max_entries of ${name} to ${capacity}`, -err);
        }
        if (opts.pinDir && name.startsWith('tp_')) {
          const path = join(opts.pinDir, name);
          if (existsSync(path)) {
            if (XdpRouter.checkPinned(lib, m, name, path, opts.onPinnedMismatch ?? 'replace', log)) reused.push(name);
          }
          const err = lib.mapSetPinPath(m, path);
          if (err < 0) throw BpfError.fromErrno(`set pin path of ${name}`, -err);
        }
      }
      if (opts.pinDir) ensureBpffs(opts.pinDir, log);

      const err = lib.objectLoad(obj);
      if (err < 0) {
        const hints: Record<number, string> = {
          1: 'needs root or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN',
          13: 'the verifier rejected the program (its log is logged by module bpf at warn level)',
        };
        throw BpfError.fromErrno(what, -err, hints[-err] ?? '');
      }

      const programName = opts.programName ?? PROGRAM_NAME;
      let prog = lib.objectFindProgramByName(obj, programName);
      if (!prog && opts.programName === undefined) prog = lib.objectNextProgram(obj, null);
      if (!prog) throw new BpfError(`${what} failed: no program named ${programName}`, 'NO_PROGRAM');
      const progFd = lib.programFd(prog);

      const maps = new Map<string, MapHandle>();
      for (let m = lib.objectNextMap(obj, null); m; m = lib.objectNextMap(obj, m)) {
        const name = lib.mapName(m);
        maps.set(name, {
          name,
          ptr: m,
          fd: lib.mapFd(m),
          type: lib.mapType(m),
          keySize: lib.mapKeySize(m),
          valueSize: lib.mapValueSize(m),
          maxEntries: lib.mapMaxEntries(m),
        });
      }
      const created = [...maps.keys()].filter((n) => n.startsWith('tp_') && !reused.includes(n));
      log.info(
        { object: objectName, program: lib.programName(prog), capacity, pinDir: opts.pinDir, reused, created, libbpf: `${lib.majorVersion()}.${lib.minorVersion()}` },
        'bpf object loaded',
      );
      return new XdpRouter(lib, log, obj, objectName, lib.programName(prog), progFd, maps, opts.pinDir, reused);
    } catch (err) {
      lib.objectClose(obj);
      throw err;
    }
  }

  /** Loads an object only to test-run its program (e.g. bpf/empty.o for benchmark baselines). */
  static testRunObject(objectPath: string, log: Logger): XdpRouter {
    return XdpRouter.load({ objectPath, log });
  }

  /**
   * Compares a pinned map with the object's definition. True when libbpf may
   * reuse it; on a mismatch either throws or removes the pin so a new map is
   * created and pinned in its place.
   */
  private static checkPinned(lib: LibBpf, m: Ptr, name: string, path: string, policy: 'replace' | 'fail', log: Logger): boolean {
    const fd = lib.objGet(path);
    if (fd < 0) {
      throw BpfError.fromErrno(`open pinned map ${path}`, -fd);
    }
    try {
      const info = new Uint8Array(MAP_INFO_SIZE);
      const err = lib.objGetInfoByFd(fd, info, [MAP_INFO_SIZE]);
      if (err < 0) throw BpfError.fromErrno(`read info of pinned map ${path}`, -err);
      const v = new DataView(info.buffer);
      const have = { type: v.getUint32(0, true), keySize: v.getUint32(8, true), valueSize: v.getUint32(12, true), maxEntries: v.getUint32(16, true), flags: v.getUint32(20, true) };
      const want = { type: lib.mapType(m), keySize: lib.mapKeySize(m), valueSize: lib.mapValueSize(m), maxEntries: lib.mapMaxEntries(m), flags: lib.mapFlags(m) };
      // A perf event array left at 0 entries is sized to the CPU count by libbpf.
      if (want.type === BPF_MAP_TYPE_PERF_EVENT_ARRAY && want.maxEntries === 0) want.maxEntries = have.maxEntries;
      const diffs = (Object.keys(want) as (keyof typeof want)[])
        .filter((k) => want[k] !== have[k])
        .map((k) => `${k} pinned ${have[k]}, object wants ${want[k]}`);
      if (diffs.length === 0) return true;
      const msg = `pinned map ${path} differs from ${name} in the object: ${diffs.join('; ')}`;
      if (policy === 'fail') throw new BpfError(`${msg} (remove the pin or use onPinnedMismatch: 'replace')`, 'PIN_MISMATCH');
      log.warn({ map: name, path, diffs }, `${msg}: replacing it (its entries are lost)`);
      unlinkSync(path);
      return false;
    } finally {
      lib.close(fd);
    }
  }

  // ---- maps -----------------------------------------------------------------

  private map(name: string): MapHandle {
    const m = this.maps.get(name);
    if (!m) throw new BpfError(`map ${name} is not in ${this.objectName}`, 'NO_MAP');
    if (this.obj === null) throw new BpfError(`${this.objectName} is closed`, 'CLOSED');
    return m;
  }

  /** File descriptor of a map of the loaded object (for perf.ts). */
  mapFd(name: string): number {
    return this.map(name).fd;
  }

  /** max_entries of a map as loaded. */
  maxEntries(name: string): number {
    return this.map(name).maxEntries;
  }

  /** Writes config slot 0 every time: the kernel reads zeros from an unwritten slot. */
  writeConfig(c: RouterConfig): void {
    if (c.portMin > c.portMax) throw new RangeError(`portMin ${c.portMin} > portMax ${c.portMax}`);
    const value = encodeConfig({ ...c, flags: 0 });
    const err = this.lib.mapUpdateElem(this.map('tp_config').fd, le32(0), value, 0n);
    if (err < 0) throw BpfError.fromErrno('write tp_config', -err);
  }

  readConfig(): TpConfig {
    const m = this.map('tp_config');
    const out = new Uint8Array(m.valueSize);
    const err = this.lib.mapLookupElem(m.fd, le32(0), out);
    if (err < 0) throw BpfError.fromErrno('read tp_config', -err);
    return decodeConfig(out);
  }

  /** Installs a channel in both directions; on a failure neither direction stays. */
  putChannel(b: ChannelBinding): void {
    const chanKey = encodeChanKey(b);
    const chanValue = encodeChanValue(b);
    const peerKey = encodePeerKey(b);
    const peerValue = encodePeerValue(b);
    const c2p = this.map('tp_chan_to_peer');
    const p2c = this.map('tp_peer_to_chan');
    let err = this.lib.mapUpdateElem(c2p.fd, chanKey, chanValue, 0n);
    if (err < 0) throw this.bindingError('put', b, 'tp_chan_to_peer', -err, c2p.maxEntries);
    err = this.lib.mapUpdateElem(p2c.fd, peerKey, peerValue, 0n);
    if (err < 0) {
      this.lib.mapDeleteElem(c2p.fd, chanKey);
      throw this.bindingError('put', b, 'tp_peer_to_chan', -err, p2c.maxEntries);
    }
  }

  /** Removes both directions; true when at least one existed. */
  deleteChannel(b: ChannelBinding): boolean {
    const a = this.lib.mapDeleteElem(this.map('tp_chan_to_peer').fd, encodeChanKey(b));
    const c = this.lib.mapDeleteElem(this.map('tp_peer_to_chan').fd, encodePeerKey(b));
    for (const [err, name] of [[a, 'tp_chan_to_peer'], [c, 'tp_peer_to_chan']] as const) {
      if (err < 0 && -err !== ENOENT) throw this.bindingError('delete', b, name, -err, 0);
    }
    return a === 0 || c === 0;
  }

  private bindingError(op: string, b: ChannelBinding, map: string, errno: number, max: number): BpfError {
    const who = `${b.client.address}:${b.client.port} channel 0x${b.channel.toString(16)} <-> ${b.peer.address}:${b.peer.port} via ${b.allocationPort}`;
    return BpfError.fromErrno(`${op} channel ${who} in ${map}`, errno, errno === 7 ? `${map} is full (${max} entries)` : '');
  }

  private keys(m: MapHandle): Uint8Array[] {
    const out: Uint8Array[] = [];
    let prev: Uint8Array | null = null;
    for (;;) {
      const next = new Uint8Array(m.keySize);
      const err = this.lib.mapGetNextKey(m.fd, prev, next);
      if (err === -ENOENT) return out;
      if (err < 0) throw BpfError.fromErrno(`iterate ${m.name}`, -err);
      out.push(next);
      prev = next;
    }
  }

  /** The peer side of a channel, from tp_chan_to_peer. */
  lookupChannel(client: Endpoint, channel: number): { peer: Endpoint; allocationPort: number } | undefined {
    const m = this.map('tp_chan_to_peer');
    const value = new Uint8Array(m.valueSize);
    const err = this.lib.mapLookupElem(m.fd, encodeChanKey({ client, channel }), value);
    if (err === -ENOENT) return undefined;
    if (err < 0) throw BpfError.fromErrno('look up tp_chan_to_peer', -err);
    return decodeChanValue(value);
  }

  /** The client side of a channel, from tp_peer_to_chan. */
  lookupPeer(peer: Endpoint, allocationPort: number): { client: Endpoint; channel: number } | undefined {
    const m = this.map('tp_peer_to_chan');
    const value = new Uint8Array(m.valueSize);
    const err = this.lib.mapLookupElem(m.fd, encodePeerKey({ peer, allocationPort }), value);
    if (err === -ENOENT) return undefined;
    if (err < 0) throw BpfError.fromErrno('look up tp_peer_to_chan', -err);
    return decodePeerValue(value);
  }

  /** Every installed channel, read from tp_chan_to_peer (for resync with the relay). */
  listBindings(): ChannelBinding[] {
    const m = this.map('tp_chan_to_peer');
    const out: ChannelBinding[] = [];
    for (const key of this.keys(m)) {
      const value = new Uint8Array(m.valueSize);
      // deleted between the key walk and the lookup: skip it
      if (this.lib.mapLookupElem(m.fd, key, value) < 0) continue;
      const k = decodeChanKey(key);
      const v = decodeChanValue(value);
      out.push({ client: k.client, channel: k.channel, peer: v.peer, allocationPort: v.allocationPort });
    }
    return out;
  }

  /** Empties both binding maps; returns how many channels were removed. */
  clearBindings(): number {
    let removed = 0;
    for (const name of BINDING_MAPS) {
      const m = this.map(name);
      // Keys first, then deletes: deleting while walking restarts a hash walk.
      for (const key of this.keys(m)) {
        if (this.lib.mapDeleteElem(m.fd, key) === 0 && name === 'tp_chan_to_peer') removed++;
      }
    }
    return removed;
  }

  bindingCount(): number {
    return this.keys(this.map('tp_chan_to_peer')).length;
  }

  // ---- learned neighbours (written by the program, read for diagnostics) ------

  /** The next hops the program learned from frames addressed to the relay (tp_neigh). */
  neighbours(): Neighbour[] {
    const m = this.map('tp_neigh');
    const out: Neighbour[] = [];
    for (const key of this.keys(m)) {
      const value = new Uint8Array(m.valueSize);
      // evicted between the key walk and the lookup: skip it
      if (this.lib.mapLookupElem(m.fd, key, value) < 0) continue;
      out.push(decodeNeighbour(key, value));
    }
    return out;
  }

  /**
   * Forgets every learned next hop, including the program's per-CPU caches
   * in front of tp_neigh (nb_seen, nh_cache), which would otherwise keep
   * answering for up to their TTLs; returns how many tp_neigh entries there were.
   */
  clearNeighbours(): number {
    const m = this.map('tp_neigh');
    let removed = 0;
    for (const key of this.keys(m)) if (this.lib.mapDeleteElem(m.fd, key) === 0) removed++;
    for (const name of ['nb_seen', 'nh_cache']) {
      const c = this.maps.get(name);
      if (!c) continue;
      const zeros = new Uint8Array(perCpuStride(c.valueSize) * this.ncpus);
      for (let slot = 0; slot < c.maxEntries; slot++) {
        const err = this.lib.mapUpdateElem(c.fd, le32(slot), zeros, 0n);
        if (err < 0) throw BpfError.fromErrno(`clear ${name}[${slot}]`, -err);
      }
    }
    return removed;
  }

  // ---- counters ---------------------------------------------------------------

  private readPerCpu(name: string, index: number): Uint8Array[] {
    const m = this.map(name);
    const stride = perCpuStride(m.valueSize);
    const buf = new Uint8Array(stride * this.ncpus);
    const err = this.lib.mapLookupElem(m.fd, le32(index), buf);
    if (err < 0) throw BpfError.fromErrno(`read ${name}[${index}]`, -err);
    const out: Uint8Array[] = [];
    for (let cpu = 0; cpu < this.ncpus; cpu++) out.push(buf.subarray(cpu * stride, cpu * stride + m.valueSize));
    return out;
  }

  /** Per-path packets and payload bytes, summed over CPUs. */
  readPathStats(): PathCounter[] {
    return PATH_NAMES.map((path, i) => {
      let packets = 0n, bytes = 0n;
      for (const v of this.readPerCpu('tp_path_stats', i)) {
        const s = decodePathStats(v);
        packets += s.packets;
        bytes += s.bytes;
      }
      return { path, packets, bytes };
    });
  }

  /** Pass/drop reason counts, summed over CPUs. */
  readReasons(): Record<ReasonName, bigint> {
    const out = {} as Record<ReasonName, bigint>;
    REASON_NAMES.forEach((name, i) => {
      let n = 0n;
      for (const v of this.readPerCpu('tp_reasons', i)) n += new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true);
      out[name] = n;
    });
    return out;
  }

  /** Kernel memory charged to each map (bytes_memlock from /proc/self/fdinfo). */
  mapMemory(): MapMemory[] {
    return [...this.maps.values()].map((m) => {
      const text = readFileSync(`/proc/self/fdinfo/${m.fd}`, 'utf8');
      const field = (k: string) => Number(new RegExp(`^${k}:\\s*(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
      return { name: m.name, type: field('map_type'), maxEntries: field('max_entries'), memlockBytes: field('memlock') };
    });
  }

  // ---- test run ---------------------------------------------------------------

  /**
   * Runs the program on one frame with BPF_PROG_TEST_RUN. The output buffer
   * leaves room for head/tail growth; durationNs is the kernel's average.
   */
  testRun(frame: Uint8Array, opts: { repeat?: number } = {}): TestRunResult {
    if (this.obj === null) throw new BpfError(`${this.objectName} is closed`, 'CLOSED');
    const repeat = opts.repeat ?? 1;
    const outCap = frame.length + 4096;
    const optsPtr = koffi.alloc('uint8_t', TEST_RUN_OPTS_SIZE) as bigint;
    const inPtr = koffi.alloc('uint8_t', Math.max(frame.length, 1)) as bigint;
    const outPtr = koffi.alloc('uint8_t', outCap) as bigint;
    try {
      new Uint8Array(koffi.view(inPtr, frame.length)).set(frame);
      const o = new DataView(koffi.view(optsPtr, TEST_RUN_OPTS_SIZE));
      for (let i = 0; i < TEST_RUN_OPTS_SIZE; i++) o.setUint8(i, 0);
      o.setBigUint64(0, BigInt(TEST_RUN_OPTS_SIZE), true); // sz
      o.setBigUint64(8, inPtr, true); // data_in
      o.setBigUint64(16, outPtr, true); // data_out
      o.setUint32(24, frame.length, true); // data_size_in
      o.setUint32(28, outCap, true); // data_size_out
      o.setInt32(60, repeat, true); // repeat
      const err = this.lib.progTestRunOpts(this.progFd, optsPtr);
      if (err < 0) throw BpfError.fromErrno(`test run of ${this.programName} on a ${frame.length}-byte frame`, -err);
      const sizeOut = o.getUint32(28, true);
      const action = o.getUint32(56, true);
      const data = new Uint8Array(koffi.view(outPtr, sizeOut)).slice();
      return { action, actionName: XDP_ACTION_NAMES[action] ?? `action_${action}`, data, durationNs: o.getUint32(64, true) };
    } finally {
      koffi.free(optsPtr);
      koffi.free(inPtr);
      koffi.free(outPtr);
    }
  }

  // ---- attach -----------------------------------------------------------------

  private linkPath(ifname: string): string | undefined {
    return this.pinDir ? join(this.pinDir, `link_${ifname}`) : undefined;
  }

  /** XDP mode currently attached on ifindex, if any (netlink query). */
  private attachedMode(ifindex: number): { mode: AttachMode | 'other' | undefined; progId: number } {
    const q = new Uint8Array(XDP_QUERY_OPTS_SIZE);
    const v = new DataView(q.buffer);
    v.setBigUint64(0, BigInt(XDP_QUERY_OPTS_SIZE), true);
    if (this.lib.xdpQuery(ifindex, 0, q) < 0) return { mode: undefined, progId: 0 };
    const attachMode = q[24]!;
    const progId = v.getUint32(8, true);
    return { mode: attachMode === 0 ? undefined : attachMode === XDP_ATTACHED_DRV ? 'native' : attachMode === XDP_ATTACHED_SKB ? 'skb' : 'other', progId };
  }

  /**
   * Attaches the program to an interface with a bpf_link. With pinDir and a
   * link pinned there by an earlier run on the same interface and mode, the
   * new program replaces the old one atomically (bpf_link_update).
   */
  attach(ifname: string, mode: AttachMode = 'native', opts: AttachOptions = {}): AttachResult {
    if (this.obj === null) throw new BpfError(`${this.objectName} is closed`, 'CLOSED');
    const what = `attach to ${ifname} in ${mode} mode`;
    if (this.attachment) throw new BpfError(`${what} failed: already attached to ${this.attachment.ifname}`, 'ATTACHED');
    const ifindex = ifname.length > 0 && ifname.length < 16 ? this.lib.ifNameToIndex(ifname) : 0;
    if (ifindex === 0) throw BpfError.fromErrno(what, 19, `no interface named "${ifname}"`);
    const pinPath = this.linkPath(ifname);

    if (pinPath && existsSync(pinPath)) {
      const updated = this.updatePinnedLink(pinPath, ifname, ifindex, mode);
      if (updated) return updated;
    }

    const current = this.attachedMode(ifindex);
    if (current.mode !== undefined && opts.replaceForeign) {
      // A program attached without a link blocks link creation (EBUSY).
      this.log.warn({ ifname, progId: current.progId, mode: current.mode }, 'detaching a foreign XDP program');
      const flags = current.mode === 'skb' ? XDP_FLAGS_SKB_MODE : current.mode === 'native' ? XDP_FLAGS_DRV_MODE : 0;
      const err = this.lib.xdpDetach(ifindex, flags, null);
      if (err < 0) throw BpfError.fromErrno(`detach the XDP program already on ${ifname}`, -err);
    }

    const o = new Uint8Array(LINK_CREATE_OPTS_SIZE);
    const v = new DataView(o.buffer);
    v.setBigUint64(0, BigInt(LINK_CREATE_OPTS_SIZE), true);
    v.setUint32(8, mode === 'native' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE, true);
    const fd = this.lib.linkCreate(this.progFd, ifindex, BPF_XDP, o);
    if (fd < 0) {
      const e = -fd;
      const hint =
        e === 16 && current.mode !== undefined
          ? `${ifname} already has an XDP program (id ${current.progId}, ${current.mode} mode) not owned by this link; detach it (ip link set dev ${ifname} xdp off) or pass replaceForeign`
          : e === 95 || e === 524
            ? mode === 'native' ? `the driver of ${ifname} has no native XDP; use skb mode` : ''
            : '';
      throw BpfError.fromErrno(what, e, hint);
    }
    let pinnedAt: string | undefined;
    if (opts.keepPinned) {
      if (!pinPath) {
        this.lib.close(fd);
        throw new BpfError(`${what} failed: keepPinned needs pinDir`, 'NO_PIN_DIR');
      }
      const err = this.lib.objPin(fd, pinPath);
      if (err < 0) {
        this.lib.linkDetach(fd);
        this.lib.close(fd);
        throw BpfError.fromErrno(`pin the XDP link at ${pinPath}`, -err);
      }
      pinnedAt = pinPath;
    }
    this.attachment = { ifname, ifindex, mode, linkFd: fd, pinnedAt };
    this.log.info({ ifname, ifindex, mode, pinnedAt }, 'xdp program attached');
    return { ifname, ifindex, mode, how: 'created', pinnedAt };
  }

  /** Swaps our program into a pinned link; undefined when the pin cannot be used (it is removed). */
  private updatePinnedLink(pinPath: string, ifname: string, ifindex: number, mode: AttachMode): AttachResult | undefined {
    const fd = this.lib.objGet(pinPath);
    if (fd < 0) {
      this.log.warn({ pinPath, error: errnoText(-fd) }, 'pinned XDP link unusable; removing it');
      unlinkSync(pinPath);
      return undefined;
    }
    const info = new Uint8Array(LINK_INFO_SIZE);
    const err = this.lib.objGetInfoByFd(fd, info, [LINK_INFO_SIZE]);
    const v = new DataView(info.buffer);
    const linkType = v.getUint32(0, true);
    const linkIfindex = v.getUint32(16, true);
    const current = this.attachedMode(ifindex);
    const reason =
      err < 0 ? `cannot read link info: ${errnoText(-err)}`
      : linkType !== BPF_LINK_TYPE_XDP ? `not an XDP link (type ${linkType})`
      : linkIfindex !== ifindex ? `attached to ifindex ${linkIfindex} (defunct or another interface), not ${ifindex}`
      : current.mode !== mode ? `attached in ${current.mode ?? 'no'} mode, ${mode} requested`
      : undefined;
    if (reason === undefined) {
      const uerr = this.lib.linkUpdate(fd, this.progFd, null);
      if (uerr === 0) {
        this.attachment = { ifname, ifindex, mode, linkFd: fd, pinnedAt: pinPath };
        this.log.info({ ifname, ifindex, mode, pinnedAt: pinPath }, 'replaced the program of the pinned XDP link atomically');
        return { ifname, ifindex, mode, how: 'updated', pinnedAt: pinPath };
      }
      this.log.warn({ pinPath, error: errnoText(-uerr) }, 'updating the pinned XDP link failed; re-attaching');
    } else {
      this.log.warn({ pinPath, reason }, 'pinned XDP link does not fit; re-attaching (relaying pauses briefly)');
    }
    unlinkSync(pinPath);
    this.lib.linkDetach(fd);
    this.lib.close(fd);
    return undefined;
  }

  /** Where the program is attached, if it is. */
  attached(): AttachResult | undefined {
    const a = this.attachment;
    return a && { ifname: a.ifname, ifindex: a.ifindex, mode: a.mode, how: 'created', pinnedAt: a.pinnedAt };
  }

  /** Detaches from the interface and removes the link pin. */
  detach(): void {
    const a = this.attachment;
    if (!a) return;
    this.attachment = undefined;
    if (a.pinnedAt && existsSync(a.pinnedAt)) unlinkSync(a.pinnedAt);
    const err = this.lib.linkDetach(a.linkFd);
    this.lib.close(a.linkFd);
    // ENOLINK: the interface went away and took the attachment with it.
    if (err < 0 && -err !== 67) throw BpfError.fromErrno(`detach from ${a.ifname}`, -err);
    this.log.info({ ifname: a.ifname, mode: a.mode }, 'xdp program detached');
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
      for (const m of this.maps.values()) {
        if (m.name.startsWith('tp_') && this.pinDir) this.lib.mapUnpin(m.ptr, null);
      }
    } else if (this.attachment) {
      this.lib.close(this.attachment.linkFd);
      this.attachment = undefined;
    }
    this.lib.objectClose(this.obj);
    this.obj = null;
  }
}

export { STRUCTS };
