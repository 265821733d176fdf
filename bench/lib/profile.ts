// "Where the time goes": a system-wide cpu-clock perf profile taken during an
// extra throughput run (its figures are not part of the statistics: perf's
// sampling costs a little). Summarised as the top symbols by share of all
// samples, idle excluded, so kernel packet work (veth, bridge, the XDP program
// as bpf_prog_*), the relay's own code and the generator show side by side.
import { spawn, execFile } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export type ProfileGroup = 'relay' | 'generator' | 'sink' | 'kernel threads' | 'other';

export interface ProfileSymbol {
  /** Share of all samples on all CPUs, percent. */
  pct: number;
  group: ProfileGroup;
  /** `[k]` kernel, `[.]` user space. */
  space: 'kernel' | 'user';
  symbol: string;
}

export interface ProfileSummary {
  file: string;
  /** Share of samples the CPUs spent idle, percent. */
  idlePct: number;
  /**
   * Share of samples per group: the relay's threads, the generator (flood),
   * the sink, kernel threads (ksoftirqd, softirq on an idle CPU) and
   * everything else on the machine (other load: not this benchmark).
   */
  groups: Record<ProfileGroup, number>;
  /** Top symbols outside 'other'. */
  top: ProfileSymbol[];
}

const IDLE = /^(pv_native_safe_halt|default_idle|native_safe_halt|acpi_idle_do_entry|cpu_idle_poll|intel_idle|mwait_idle|poll_idle|arch_cpu_idle)/;

/** Starts `perf record -a` for `seconds`; the returned promise settles when it has written its file. */
export function startPerf(file: string, seconds: number): Promise<void> {
  const child = spawn('perf', ['record', '-q', '-a', '-e', 'cpu-clock', '-F', '999', '-o', file, '--', 'sleep', String(seconds)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`perf record exited ${code}: ${err.trim().slice(0, 200)}`))));
  });
}

/** Thread ids of this run's processes, by group (other helpers' processes may share a name, e.g. another `flood`). */
export interface ProfileTids {
  relay: ReadonlySet<number>;
  generator: ReadonlySet<number>;
  sink: ReadonlySet<number>;
}

function groupOf(tid: number, comm: string, t: ProfileTids): ProfileGroup {
  if (t.relay.has(tid)) return 'relay';
  if (t.generator.has(tid)) return 'generator';
  if (t.sink.has(tid)) return 'sink';
  if (/^(ksoftirqd|swapper|kworker|napi)/.test(comm)) return 'kernel threads';
  return 'other';
}

/** Parses `perf report --stdio --sort pid,sym -q` lines: "  12.34%   6450:flood   [k] symbol". */
export function parsePerfReport(text: string, tids: ProfileTids, limit = 15): Omit<ProfileSummary, 'file'> {
  let idlePct = 0;
  const groups: Record<ProfileGroup, number> = { relay: 0, generator: 0, sink: 0, 'kernel threads': 0, other: 0 };
  // Summed over the threads of a group: one line per (group, symbol).
  const bySymbol = new Map<string, ProfileSymbol>();
  for (const line of text.split('\n')) {
    const m = /^\s*([\d.]+)%\s+(\d+):(\S+)\s+\[([k.])\]\s+(.+?)\s*$/.exec(line);
    if (!m) continue;
    const pct = Number(m[1]);
    const symbol = m[5]!;
    if (IDLE.test(symbol)) { idlePct += pct; continue; }
    const group = groupOf(Number(m[2]), m[3]!, tids);
    groups[group] += pct;
    if (group === 'other') continue;
    const key = `${group}\0${symbol}`;
    const e = bySymbol.get(key);
    if (e) e.pct += pct;
    else bySymbol.set(key, { pct, group, space: m[4] === 'k' ? 'kernel' : 'user', symbol });
  }
  const top = [...bySymbol.values()].sort((a, b) => b.pct - a.pct).slice(0, limit);
  return { idlePct, groups, top };
}

export async function summarizePerf(file: string, tids: ProfileTids): Promise<ProfileSummary> {
  const { stdout } = await execFileP('perf', ['report', '-i', file, '--stdio', '--sort', 'pid,sym', '-q', '--percent-limit', '0.05'], { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 });
  return { file, ...parsePerfReport(stdout, tids) };
}

/** Pids of processes named `comm` inside the named network namespace (/run/netns/<ns>). */
export function processesInNetns(comm: string, ns: string): number[] {
  let ino: number;
  try {
    ino = statSync(`/run/netns/${ns}`).ino;
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, 'utf8').trim() !== comm) continue;
      if (readlinkSync(`/proc/${name}/ns/net`) === `net:[${ino}]`) out.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Thread ids of the processes (perf's pid column is the thread id). */
export function threadsOf(pids: number[]): Set<number> {
  const out = new Set<number>();
  for (const p of pids) {
    try {
      for (const t of readdirSync(`/proc/${p}/task`)) out.add(Number(t));
    } catch {
      // gone
    }
  }
  return out;
}
