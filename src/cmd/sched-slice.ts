// The sidecar's event loop asks the kernel for a short scheduler slice.
// Since Linux 6.12 (EEVDF) a SCHED_OTHER thread may suggest its slice with
// sched_setattr(2)'s sched_runtime (clamped to 0.1-100 ms; 0 restores the
// default, 0.7 ms x (1 + log2 CPUs), 1.4 ms on 2 cores). A shorter slice
// gives a waking thread an earlier virtual deadline, so it preempts what
// runs sooner instead of waiting out that thread's slice; its share of CPU
// time does not change. Every datagram of the userspace path waits for this
// thread to run: on a busy 2-core host the default slice put 1-3 ms waits
// into round trips at 10k pps (bench/userspace-path.bench.ts --rtt; with
// 100 µs the p99 fell from 2.3 to 1.5 ms, beside coturn's 1.8, same run).
// Kernels before 6.12 accept the call and ignore the suggestion.
import { readFileSync } from 'node:fs';
import { errno, libcFunction } from '../net/libc.ts';

/** sched_setattr's syscall number; glibc 2.36 has no wrapper. */
const SYS_SCHED_SETATTR: Partial<Record<string, number>> = { x64: 314, arm64: 274 };
/** struct sched_attr up to sched_period (SCHED_ATTR_SIZE_VER0): size, policy, flags, nice, priority, runtime, deadline, period. */
const ATTR_SIZE = 48;
const RUNTIME_AT = 24;

type Syscall = (nr: number, tid: number, attr: Buffer, flags: number) => number;
let syscall: Syscall | undefined;

export type SliceResult =
  /** The kernel uses `sliceUs` now. */
  | { ok: true; sliceUs: number }
  /** The call failed (errno), or the kernel has no per-thread slice (`errno` 0: before 6.12). */
  | { ok: false; errno: number; reason: string };

/**
 * Suggests a slice of `sliceUs` µs (0: the kernel's default) for the calling
 * thread (the event loop's, from the main thread), as SCHED_OTHER at nice 0.
 */
export function setSlice(sliceUs: number): SliceResult {
  const nr = SYS_SCHED_SETATTR[process.arch];
  if (nr === undefined) return { ok: false, errno: 0, reason: `no sched_setattr syscall number for ${process.arch}` };
  syscall ??= libcFunction<Syscall>('long syscall(long nr, int tid, void *attr, unsigned int flags)');
  const attr = Buffer.alloc(ATTR_SIZE); // policy SCHED_OTHER (0), no flags, nice 0
  attr.writeUInt32LE(ATTR_SIZE, 0);
  attr.writeBigUInt64LE(BigInt(Math.round(sliceUs * 1000)), RUNTIME_AT);
  if (syscall(nr, 0, attr, 0) !== 0) {
    const e = errno();
    return { ok: false, errno: e, reason: `sched_setattr failed with errno ${e}` };
  }
  const now = sliceOf(process.pid);
  if (now === undefined) return { ok: false, errno: 0, reason: 'this kernel has no per-thread slice (Linux 6.12+)' };
  return { ok: true, sliceUs: now };
}

/** The slice of `pid`'s main thread in µs, from /proc (se.slice); undefined where the kernel shows none. */
export function sliceOf(pid: number): number | undefined {
  try {
    const m = /^se\.slice\s*:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/sched`, 'utf8'));
    return m ? Number(m[1]) / 1000 : undefined;
  } catch {
    return undefined;
  }
}
