// CPU and memory accounting from /proc.
//
// What is counted as "the relay's CPU" for a run:
//   - utime+stime of the contender's processes (all threads) and of all their
//     descendants, from /proc/PID/stat;
//   - the softirq time of ALL CPUs from /proc/stat (kernel packet processing:
//     veth/bridge delivery, UDP receive, and the XDP program itself, which
//     runs in the receiving veth's NAPI softirq).
// Not counted: the generator's and the sink's own user/system time (they run
// in their own namespaces as separate processes). The softirq share is global,
// so it also contains the receive work for the sink and the echo path; it is
// reported separately so a reader can see both parts.
// This kernel has no IRQ_TIME_ACCOUNTING: softirq and process times are
// sampled per tick (USER_HZ = 100 in /proc), so sub-10 ms differences are noise.
import { readFileSync, readdirSync } from 'node:fs';

export const USER_HZ = 100;

function readStat(pid: number): { ppid: number; ticks: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields start after the last ')'.
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return undefined;
  }
}

/** `pids` and every live descendant of them. */
export function withDescendants(pids: number[]): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out = new Set<number>();
  const stack = [...pids];
  while (stack.length > 0) {
    const p = stack.pop()!;
    if (out.has(p)) continue;
    out.add(p);
    stack.push(...(children.get(p) ?? []));
  }
  return [...out];
}

export interface CpuSnapshot {
  /** utime+stime ticks per pid (pid set fixed at snapshot time). */
  perPid: Map<number, number>;
  softirq: number;
  /** All non-idle ticks of all CPUs. */
  busy: number;
  at: number;
}

function systemTicks(): { softirq: number; busy: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith('cpu '))!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
  return { softirq: f[6]!, busy };
}

export function cpuSnapshot(pids: number[]): CpuSnapshot {
  const perPid = new Map<number, number>();
  for (const p of withDescendants(pids)) {
    const st = readStat(p);
    if (st) perPid.set(p, st.ticks);
  }
  return { perPid, ...systemTicks(), at: performance.now() };
}

export interface CpuDelta {
  /** Contender processes, CPU-seconds. */
  processSeconds: number;
  softirqSeconds: number;
  busySeconds: number;
  wallSeconds: number;
}

export function cpuDelta(a: CpuSnapshot, b: CpuSnapshot): CpuDelta {
  let ticks = 0;
  for (const [pid, t] of b.perPid) ticks += t - (a.perPid.get(pid) ?? 0);
  return {
    processSeconds: ticks / USER_HZ,
    softirqSeconds: (b.softirq - a.softirq) / USER_HZ,
    busySeconds: (b.busy - a.busy) / USER_HZ,
    wallSeconds: (b.at - a.at) / 1000,
  };
}

/** VmRSS in bytes of one process (0 if gone). */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** UDP counters (InDatagrams, RcvbufErrors, ...) of the namespace the text came from (`cat /proc/net/snmp`). */
export function parseUdpSnmp(text: string): Record<string, number> {
  const lines = text.split('\n').filter((l) => l.startsWith('Udp:'));
  if (lines.length < 2) return {};
  const keys = lines[0]!.split(/\s+/).slice(1);
  const vals = lines[1]!.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, vals[i] ?? 0]));
}
