// A warm standby (the launcher's idle spare of a child) runs under the
// SCHED_IDLE policy until it takes over. It is on no packet's path, but it
// shares the host's cores with the live pair: loading its code, and the full
// GCs V8's memory reducer runs in it seconds after that (one to three
// mark-compacts of 10-30 ms, helper threads included), took cores from the
// sidecar and delayed relayed packets by as long on a 2-core host. A
// SCHED_IDLE thread runs only on a core nothing else wants, and the kernel
// preempts it for any other thread at once.
//
// The policy is set by starting the standby under chrt (util-linux), so every
// thread Node makes inherits it; when the standby takes over, the launcher
// puts each of its threads back to SCHED_OTHER. Leaving SCHED_IDLE needs
// CAP_SYS_NICE, so this is done only by a root launcher (and where chrt is
// found); otherwise standbys run as any process does.
import { readFileSync, readdirSync } from 'node:fs';
import { constants } from 'node:os';
import { errno, libcFunction } from '../net/libc.ts';

/** Linux scheduling policies (sched.h). */
export const SCHED_OTHER = 0;
export const SCHED_IDLE = 5;

/** The command that starts `command args` under SCHED_IDLE. */
export function idleCommand(chrt: string, command: string, args: readonly string[]): { command: string; args: string[] } {
  return { command: chrt, args: ['--idle', '0', command, ...args] };
}

type SchedSetScheduler = (tid: number, policy: number, param: Int32Array) => number;
let setScheduler: SchedSetScheduler | undefined;

/**
 * Puts every thread of `pid` under SCHED_OTHER. Returns the threads changed
 * and the first failure (an errno number) other than a thread that ended
 * meanwhile; two passes, for a thread started while the first ran.
 */
export function wakeUp(pid: number): { threads: number; error?: number } {
  setScheduler ??= libcFunction<SchedSetScheduler>('int sched_setscheduler(int pid, int policy, const int *param)');
  const param = new Int32Array(1); // struct sched_param { int sched_priority; }, 0 for SCHED_OTHER
  const done = new Set<number>();
  let error: number | undefined;
  for (let pass = 0; pass < 2; pass++) {
    let tids: number[];
    try {
      tids = readdirSync(`/proc/${pid}/task`).map(Number);
    } catch {
      break; // the process is gone
    }
    for (const tid of tids) {
      if (done.has(tid)) continue;
      if (setScheduler(tid, SCHED_OTHER, param) === 0) done.add(tid);
      else {
        const e = errno();
        if (e !== constants.errno.ESRCH) error ??= e;
      }
    }
  }
  return error === undefined ? { threads: done.size } : { threads: done.size, error };
}

/** The scheduling policy of one thread, from /proc (field 41 of stat); -1 when it is gone. */
export function policyOf(pid: number, tid = pid): number {
  try {
    const st = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[38]);
  } catch {
    return -1;
  }
}
