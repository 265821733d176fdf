// The kernel's own count of datagrams it dropped at a UDP socket instead of
// queueing them (sk_drops: the receive buffer was full, or the checksum or a
// socket filter refused them), read with getsockopt(SO_MEMINFO). These drops
// never reach userspace, so without this read an overloaded socket loses
// datagrams where no counter of ours sees it. One syscall per read, no
// allocation: callers read each socket about once a second.
import { SK_MEMINFO_DROPS, SK_MEMINFO_VARS, SOL_SOCKET, SO_MEMINFO, libc } from './native.ts';

const meminfo = new Int32Array(SK_MEMINFO_VARS);
const meminfoLen = new Uint32Array(1);

/**
 * The socket's cumulative drop count (a u32 the kernel lets wrap), or -1 when
 * it cannot be read (closed fd, no libc binding, a kernel before 4.12).
 */
export function socketDrops(fd: number): number {
  if (fd < 0) return -1;
  let c;
  try {
    c = libc();
  } catch {
    return -1;
  }
  meminfoLen[0] = meminfo.byteLength;
  if (c.getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, meminfoLen) !== 0) return -1;
  if (meminfoLen[0]! < (SK_MEMINFO_DROPS + 1) * 4) return -1;
  return meminfo[SK_MEMINFO_DROPS]! >>> 0;
}

/** Drops between two readings of one socket's u32 counter. */
export const dropsSince = (before: number, now: number): number => (now - before) >>> 0;
