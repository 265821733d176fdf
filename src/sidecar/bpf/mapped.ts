// Memory-mapped BPF arrays (BPF_F_MMAPABLE): the sidecar's view of a map's
// values as process memory, so writes are plain stores the program sees at
// once, with no syscall. And the wait that makes reusing such memory safe:
// every program run that may still read what was unpublished has ended.
import { koffi, libcFunction } from '../../net/libc.ts';
import { BpfError } from './errors.ts';
import type { MapHandle } from './maps.ts';
import type { Ptr } from './libbpf.ts';

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const PAGE = 4096;

type Mmap = (addr: null, len: number, prot: number, flags: number, fd: number, off: number) => Ptr;
type Munmap = (addr: Ptr, len: number) => number;

/** A mapped array map: bytes holds max_entries values of stride bytes (the value size rounded up to 8). */
export interface MappedArray {
  readonly bytes: Uint8Array;
  readonly stride: number;
  unmap(): void;
}

/** Maps every value of an array map created with BPF_F_MMAPABLE, read and write. */
export function mapArray(m: MapHandle): MappedArray {
  const stride = Math.ceil(m.valueSize / 8) * 8;
  const used = stride * m.maxEntries;
  const len = Math.ceil(used / PAGE) * PAGE;
  const ptr = libcFunction<Mmap>('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)')(null, len, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd, 0);
  if (ptr === -1n || ptr === 0xffffffffffffffffn || ptr === 0n) throw BpfError.fromErrno(`mmap ${m.name}`, koffi().errno(), 'the map needs BPF_F_MMAPABLE');
  let mapped = true;
  return {
    bytes: new Uint8Array(koffi().view(ptr as unknown as object, len) as ArrayBuffer, 0, used),
    stride,
    unmap() {
      if (!mapped) return;
      mapped = false;
      libcFunction<Munmap>('int munmap(void *addr, size_t len)')(ptr, len);
    },
  };
}

// membarrier(MEMBARRIER_CMD_GLOBAL) returns after an RCU grace period
// (kernel/sched/membarrier.c): XDP programs run inside RCU read-side
// sections, so every run that began before the call has ended by then.
const SYS_MEMBARRIER: Partial<Record<string, number>> = { x64: 324, arm64: 283 };
const MEMBARRIER_CMD_GLOBAL = 1;

type Syscall = ((n: number, a: number, b: number, c: number) => number) & {
  async(n: number, a: number, b: number, c: number, cb: (err: unknown, res: number) => void): void;
};
const syscall = () => libcFunction<Syscall>('long syscall(long n, long a, long b, long c)');

/** Blocks until every BPF program run in progress has ended; false when the kernel cannot say (nohz_full, no membarrier). */
export function waitForReaders(): boolean {
  const nr = SYS_MEMBARRIER[process.arch];
  return nr !== undefined && syscall()(nr, MEMBARRIER_CMD_GLOBAL, 0, 0) === 0;
}

/** waitForReaders on a thread of the pool: done(true) after the grace period, done(false) when the kernel cannot tell. */
export function afterReaders(done: (ok: boolean) => void): void {
  const nr = SYS_MEMBARRIER[process.arch];
  if (nr === undefined) {
    queueMicrotask(() => done(false));
    return;
  }
  syscall().async(nr, MEMBARRIER_CMD_GLOBAL, 0, 0, (err, res) => done(!err && res === 0));
}
