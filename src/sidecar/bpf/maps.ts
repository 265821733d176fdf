// The maps of a loaded object by name, and the raw operations the typed
// readers and writers (bindings.ts, config-map.ts, counters.ts,
// neighbours.ts) build on: lookup, update, key walks, zeroing and the
// kernel memory each map is charged.
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { perCpuStride } from './abi.ts';
import { BpfError } from './errors.ts';
import koffi from 'koffi';
import { BPF_MAP_TYPE_PERCPU_ARRAY, type LibBpf, type Ptr } from './libbpf.ts';
import { BpfMapInfo, type MapInfo } from './structs.ts';

const { ENOENT } = constants.errno;

export interface MapHandle {
  name: string;
  ptr: Ptr;
  fd: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface MapMemory {
  name: string;
  type: number;
  maxEntries: number;
  memlockBytes: number;
}

/** The 4-byte little-endian key of an array map slot. */
export const slotKey = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
};

/** What a key walk needs of a map: also a pinned map that is not the object's (the loader's upgrade from an earlier layout). */
export type WalkedMap = Pick<MapHandle, 'name' | 'fd' | 'keySize' | 'valueSize'>;

/** Every key of m, walked before anything is deleted: deleting while walking restarts a hash walk. */
export function mapKeys(lib: LibBpf, m: WalkedMap): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev: Uint8Array | null = null;
  for (;;) {
    const next = new Uint8Array(m.keySize);
    const err = lib.mapGetNextKey(m.fd, prev, next);
    if (err === -ENOENT) return out;
    if (err < 0) throw BpfError.fromErrno(`iterate ${m.name}`, -err);
    out.push(next);
    prev = next;
  }
}

/** Every entry of m; one removed between the key walk and its lookup is skipped. */
export function mapEntries(lib: LibBpf, m: WalkedMap): [key: Uint8Array, value: Uint8Array][] {
  const out: [Uint8Array, Uint8Array][] = [];
  for (const key of mapKeys(lib, m)) {
    const value = new Uint8Array(m.valueSize);
    if (lib.mapLookupElem(m.fd, key, value) === 0) out.push([key, value]);
  }
  return out;
}

/** A map pinned at path, opened (close its fd) with its definition as the kernel has it; errors name the path. */
export function openPinnedMap(lib: LibBpf, path: string): { fd: number; info: MapInfo } {
  const fd = lib.objGet(path);
  if (fd < 0) throw BpfError.fromErrno(`open pinned map ${path}`, -fd);
  const info: MapInfo = {};
  const err = lib.mapInfoByFd(fd, info, [koffi.sizeof(BpfMapInfo)]);
  if (err < 0) {
    lib.close(fd);
    throw BpfError.fromErrno(`read info of pinned map ${path}`, -err);
  }
  return { fd, info };
}

export class ObjectMaps {
  private readonly ncpus: number;

  /** isOpen: false once the object is closed, after which every map access throws. */
  constructor(
    readonly lib: LibBpf,
    private readonly handles: ReadonlyMap<string, MapHandle>,
    private readonly objectName: string,
    private readonly isOpen: () => boolean,
  ) {
    this.ncpus = lib.numPossibleCpus();
  }

  get(name: string): MapHandle {
    const m = this.handles.get(name);
    if (!m) throw new BpfError(`map ${name} is not in ${this.objectName}`, 'NO_MAP');
    if (!this.isOpen()) throw new BpfError(`${this.objectName} is closed`, 'CLOSED');
    return m;
  }

  /** The map when the object has it (kernel-internal maps may be absent from stand-ins). */
  find(name: string): MapHandle | undefined {
    return this.handles.has(name) ? this.get(name) : undefined;
  }

  all(): MapHandle[] {
    return [...this.handles.values()];
  }

  /** The value under key; undefined when there is none. */
  lookup(m: MapHandle, key: Uint8Array, what: string): Uint8Array | undefined {
    const value = new Uint8Array(m.valueSize);
    const err = this.lib.mapLookupElem(m.fd, key, value);
    if (err === -ENOENT) return undefined;
    if (err < 0) throw BpfError.fromErrno(what, -err);
    return value;
  }

  /** Every key, walked before anything is deleted: deleting while walking restarts a hash walk. */
  keys(m: MapHandle): Uint8Array[] {
    return mapKeys(this.lib, m);
  }

  /** Every entry; one removed between the key walk and its lookup is skipped. */
  entries(m: MapHandle): [key: Uint8Array, value: Uint8Array][] {
    return mapEntries(this.lib, m);
  }

  /** Deletes every key; returns how many deletes succeeded. */
  deleteAll(m: MapHandle): number {
    let removed = 0;
    for (const key of this.keys(m)) if (this.lib.mapDeleteElem(m.fd, key) === 0) removed++;
    return removed;
  }

  /** Zeroes every slot of an array, plain or per-CPU (then on every CPU). */
  zeroArray(m: MapHandle): void {
    const size = m.type === BPF_MAP_TYPE_PERCPU_ARRAY ? perCpuStride(m.valueSize) * this.ncpus : m.valueSize;
    const zeros = new Uint8Array(size);
    for (let slot = 0; slot < m.maxEntries; slot++) {
      const err = this.lib.mapUpdateElem(m.fd, slotKey(slot), zeros, 0n);
      if (err < 0) throw BpfError.fromErrno(`clear ${m.name}[${slot}]`, -err);
    }
  }

  /** Kernel memory charged to each map (bytes_memlock from /proc/self/fdinfo). */
  memory(): MapMemory[] {
    return this.all().map((m) => {
      const text = readFileSync(`/proc/self/fdinfo/${m.fd}`, 'utf8');
      const field = (k: string) => Number(new RegExp(`^${k}:\\s*(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
      return { name: m.name, type: field('map_type'), maxEntries: field('max_entries'), memlockBytes: field('memlock') };
    });
  }
}
