// The pair's processes, found through /proc (not its log, which grows all
// run): the launcher is the soak's child whose command line runs
// src/cmd/turnpike.ts (nsenter execs it), the sidecar and the relay its
// children (the relay's unshare execs node too). RSS from /proc/PID/status.
import { readFileSync, readdirSync } from 'node:fs';

export type Role = 'launcher' | 'sidecar' | 'relay';

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

const cmdline = (pid: number) => (read(`/proc/${pid}/cmdline`) ?? '').split('\0');
const ppid = (pid: number): number | undefined => {
  const s = read(`/proc/${pid}/stat`);
  return s === undefined ? undefined : Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
};

function childrenOf(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (/^\d+$/.test(name) && ppid(Number(name)) === parent) out.push(Number(name));
  }
  return out;
}

/** The pair's pids now; a child being restarted is missing. */
export function pairPids(): Partial<Record<Role, number>> {
  const launcher = childrenOf(process.pid).find((p) => cmdline(p).some((a) => a.endsWith('src/cmd/turnpike.ts')));
  if (launcher === undefined) return {};
  const out: Partial<Record<Role, number>> = { launcher };
  for (const c of childrenOf(launcher)) {
    const args = cmdline(c);
    if (args.some((a) => /cmd\/sidecar\.[jt]s$/.test(a))) out.sidecar = c;
    else if (args.some((a) => /cmd\/relay\.[jt]s$/.test(a))) out.relay = c;
  }
  return out;
}

/** Resident set size in bytes, or undefined if the process is gone. */
export function rssBytes(pid: number): number | undefined {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(read(`/proc/${pid}/status`) ?? '');
  return m ? Number(m[1]) * 1024 : undefined;
}

const CLK_TCK = 100;
let bootMs: number | undefined;

/** When the process started (Unix ms), from its start time in clock ticks after boot. */
export function startedAtMs(pid: number): number | undefined {
  const s = read(`/proc/${pid}/stat`);
  if (s === undefined) return undefined;
  bootMs ??= Number(/^btime (\d+)$/m.exec(read('/proc/stat') ?? '')?.[1] ?? 0) * 1000;
  return bootMs + (Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[19]) * 1000) / CLK_TCK;
}
