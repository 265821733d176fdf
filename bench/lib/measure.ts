// One measurement each: flows setup, a throughput run, a round-trip run, the
// control-plane rates, and RSS with many allocations held. Everything runs in
// the topology's namespaces: generator and TURN driver in `client`, sink in
// `peer`, the contender in `relay`. A run without a contender (the "no relay"
// baseline) floods the same datagrams from the client straight to the sink.
import type { ChildProcess } from 'node:child_process';
import type { Topology } from '../../test/helpers/netns.ts';
import type { ContenderHandle } from '../contenders/types.ts';
import { USER_HZ, cpuDelta, cpuSnapshot, parseUdpSnmp, rssBytes } from './procfs.ts';
import { sleep } from './process.ts';
import { gcMsPerSecond } from './gc.ts';

const driver = new URL('../turn-driver.ts', import.meta.url).pathname;
export const SINK_PORT = 9000;
/**
 * Local ports of the flood flows, per family: below the kernel's ephemeral
 * range, so the control-plane driver's ephemeral sockets never reuse the
 * 5-tuple of a flow allocation that is still alive in the relay.
 */
const FLOW_BASE_PORT: Record<Family, number> = { 4: 20000, 6: 24000 };
/** Baseline flows send from here (no allocation behind them). */
const BASELINE_BASE_PORT = 28000;

export type Family = 4 | 6;

export interface Tools {
  flood: string;
  sink: string;
}

export interface Flow {
  port: number;
  channel: number;
}

export interface Setup {
  topo: Topology;
  tools: Tools;
  port: number;
  secret: string;
  family: Family;
}

const hostPort = (address: string, port: number) => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

function familyAddr(s: Setup, who: 'relay' | 'peer'): string {
  const a = s.family === 6 ? s.topo.addr[`${who}6`] : s.topo.addr[`${who}4`];
  if (!a) throw new Error(`topology has no IPv${s.family} address for ${who}`);
  return a;
}

const server = (s: Setup) => hostPort(familyAddr(s, 'relay'), s.port);
const sinkAddress = (s: Setup) => hostPort(familyAddr(s, 'peer'), SINK_PORT);

function driverArgs(s: Setup): string[] {
  return ['--import', 'tsx', driver, '--server', server(s), '--peer', sinkAddress(s), '--secret', s.secret, '--family', String(s.family)];
}

async function runDriver(s: Setup, args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  const { stdout } = await s.topo.exec('client', process.execPath, [...driverArgs(s), ...args], { timeoutMs });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
}

export async function setupFlows(s: Setup, count: number): Promise<Flow[]> {
  const out = await runDriver(s, ['--mode', 'flows', '--count', String(count), '--base-port', String(FLOW_BASE_PORT[s.family])], 60_000);
  return (out.flows as Flow[]).map((f) => ({ port: f.port, channel: f.channel }));
}

async function startSink(s: Setup, echo: boolean): Promise<{ child: ChildProcess; result: Promise<Record<string, unknown>> }> {
  const child = s.topo.spawn('peer', s.tools.sink, ['--bind', sinkAddress(s), ...(echo ? ['--echo'] : [])]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const result = new Promise<Record<string, unknown>>((resolve, reject) => {
    child.once('exit', () => {
      try {
        resolve(JSON.parse(out.trim()) as Record<string, unknown>);
      } catch {
        reject(new Error(`sink printed no result: ${out.slice(0, 200)}`));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('sink did not start')), 5000);
    child.stderr!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) { clearTimeout(t); resolve(); }
    });
    child.once('exit', () => { clearTimeout(t); reject(new Error('sink exited')); });
  });
  return { child, result };
}

async function snmp(s: Setup, role: 'relay' | 'peer'): Promise<Record<string, number>> {
  const { stdout } = await s.topo.exec(role, 'cat', ['/proc/net/snmp']);
  return parseUdpSnmp(stdout);
}

/** Flows of the no-relay baseline: same datagrams (a ChannelData header and all), sent straight to the sink. */
export function baselineFlows(count: number): Flow[] {
  return Array.from({ length: count }, (_, i) => ({ port: BASELINE_BASE_PORT + i, channel: 0x4000 + i }));
}

/** Where the flooder sends: the relay's TURN port, or with no contender the sink itself. */
async function flood(s: Setup, flows: Flow[], args: string[], seconds: number, direct: boolean): Promise<Record<string, unknown>> {
  const { stdout } = await s.topo.exec('client', s.tools.flood, [
    '--server', direct ? sinkAddress(s) : server(s), '--family', String(s.family), '--flows', flows.map((f) => `${f.port}:${f.channel}`).join(','), '--seconds', String(seconds), ...args,
  ], { timeoutMs: (seconds + 20) * 1000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

export interface ThroughputRun {
  offeredPps: number;
  relayedPps: number;
  lossPct: number;
  generatorCapped: boolean;
  /**
   * CPU-µs per relayed packet: the contender's processes (all threads, with
   * descendants), the softirq time of all CPUs, and their sum. For the
   * baseline (no contender) the process part is 0 and "relayed" means
   * delivered to the sink.
   */
  processUsPerPkt: number;
  softirqUsPerPkt: number;
  totalUsPerPkt: number;
  /** The process part split by role (turnserver / relay / sidecar / launcher), CPU-µs per relayed packet. */
  processByRole: Record<string, number>;
  /** Datagrams the relay namespace's sockets dropped for a full receive buffer. */
  relayRcvbufErrors: number;
  /** Datagrams that reached the peer but overflowed the sink's socket (counted as relayed). */
  sinkRcvbufErrors: number;
  /** UDP checksum errors at the peer: must be 0 (the XDP rewrite keeps checksums valid). */
  peerCsumErrors: number;
  sent: number;
  relayed: number;
  elapsedSeconds: number;
  /** Wall time between the CPU snapshots (the flood plus the drain pause). */
  cpuWallSeconds: number;
  /**
   * Softirq CPU-seconds per second on the whole machine with no benchmark
   * traffic (other load's share): the lower of two samples, just before the
   * flood and just after the drain, so one burst of other load does not
   * over-correct. Subtracted from softirqUsPerPkt as rate × run time;
   * softirqRawUsPerPkt is uncorrected.
   */
  backgroundSoftirqPerSecond: number;
  softirqRawUsPerPkt: number;
  /** GC milliseconds per second of the contender's Node.js processes during the run (absent without a GC metric). */
  gcMsPerSecond?: number;
  gcMsPerSecondByProcess?: Record<string, number>;
}

/** The contender's cumulative GC seconds per process; undefined when it has none or they cannot be read (the run goes on without). */
async function readGc(h: ContenderHandle | undefined): Promise<Record<string, number> | undefined> {
  try {
    return await h?.gcSeconds?.();
  } catch {
    return undefined;
  }
}

/** How long the machine's background softirq rate is sampled before and after each run. */
const BACKGROUND_MS = 500;

async function backgroundSoftirqRate(): Promise<number> {
  const a = cpuSnapshot([]);
  await sleep(BACKGROUND_MS);
  const d = cpuDelta(a, cpuSnapshot([]));
  return d.softirqSeconds / d.wallSeconds;
}

/**
 * Generator at full speed for `seconds`; a run is generator-capped when the
 * relay lost (almost) nothing: the relay kept up with all that was offered,
 * so its own ceiling is higher than the figure. Without `h`, the no-relay
 * baseline: the same datagrams go from the client straight to the sink.
 */
export async function throughputRun(s: Setup, h: ContenderHandle | undefined, flows: Flow[], size: number, seconds: number): Promise<ThroughputRun> {
  const sink = await startSink(s, false);
  const relay0 = await snmp(s, 'relay');
  const peer0 = await snmp(s, 'peer');
  const pids = h?.pids() ?? [];
  const roles = h?.roles() ?? {};
  const bgBefore = await backgroundSoftirqRate();
  const gc0 = await readGc(h);
  const cpu0 = cpuSnapshot(pids);
  const f = await flood(s, flows, ['--size', String(size), '--rate', '0'], seconds, h === undefined);
  await sleep(250); // let queued packets drain through the relay
  const cpu1 = cpuSnapshot(pids);
  const gc1 = gc0 && (await readGc(h));
  const relay1 = await snmp(s, 'relay');
  const peer1 = await snmp(s, 'peer');
  sink.child.kill('SIGTERM');
  const r = await sink.result;
  const d = cpuDelta(cpu0, cpu1);
  const sent = Number(f.sent);
  const elapsed = Number(f.elapsed_s);
  const sinkDrops = (peer1.RcvbufErrors ?? 0) - (peer0.RcvbufErrors ?? 0);
  const relayed = Number(r.packets) + sinkDrops;
  const lossPct = sent > 0 ? Math.max(0, (1 - relayed / sent) * 100) : 100;
  const per = (secs: number) => (relayed > 0 ? (secs * 1e6) / relayed : NaN);
  const backgroundSoftirqPerSecond = Math.min(bgBefore, await backgroundSoftirqRate());
  const softirqSeconds = d.softirqSeconds - backgroundSoftirqPerSecond * d.wallSeconds;
  const processByRole: Record<string, number> = {};
  for (const [role, pid] of Object.entries(roles)) {
    const ticks = (cpu1.perPid.get(pid) ?? 0) - (cpu0.perPid.get(pid) ?? 0);
    processByRole[role] = per(ticks / USER_HZ);
  }
  const gc = gc0 && gc1 ? gcMsPerSecond(gc0, gc1, d.wallSeconds) : undefined;
  return {
    ...(gc ? { gcMsPerSecond: gc.total, gcMsPerSecondByProcess: gc.byProcess } : {}),
    offeredPps: sent / elapsed,
    relayedPps: relayed / elapsed,
    lossPct,
    generatorCapped: lossPct < 0.5,
    processUsPerPkt: per(d.processSeconds),
    softirqUsPerPkt: per(softirqSeconds),
    totalUsPerPkt: per(d.processSeconds + softirqSeconds),
    processByRole,
    relayRcvbufErrors: (relay1.RcvbufErrors ?? 0) - (relay0.RcvbufErrors ?? 0),
    sinkRcvbufErrors: sinkDrops,
    peerCsumErrors: (peer1.InCsumErrors ?? 0) - (peer0.InCsumErrors ?? 0),
    sent,
    relayed,
    elapsedSeconds: elapsed,
    cpuWallSeconds: d.wallSeconds,
    backgroundSoftirqPerSecond,
    softirqRawUsPerPkt: per(d.softirqSeconds),
  };
}

export interface RttRun {
  ratePps: number;
  p50Us: number;
  p99Us: number;
  samples: number;
  /** Echoes that did not come back within 300 ms after the run. */
  lossPct: number;
  /** GC milliseconds per second of the contender's Node.js processes during the paced run (absent without a GC metric). */
  gcMsPerSecond?: number;
}

/** Paced ChannelData, echoed by the peer back through the relay; the generator timestamps each packet. */
export async function rttRun(s: Setup, h: ContenderHandle | undefined, flows: Flow[], size: number, rate: number, seconds: number): Promise<RttRun> {
  const sink = await startSink(s, true);
  const gc0 = await readGc(h);
  const t0 = performance.now();
  const f = await flood(s, flows, ['--size', String(size), '--rate', String(rate), '--echo'], seconds, h === undefined);
  const gc1 = gc0 && (await readGc(h));
  const gc = gc0 && gc1 ? gcMsPerSecond(gc0, gc1, (performance.now() - t0) / 1000) : undefined;
  sink.child.kill('SIGTERM');
  await sink.result;
  const rtt = f.rtt_us as { count: number; p50: number; p99: number };
  const sent = Number(f.sent);
  return {
    ratePps: rate, p50Us: rtt.p50, p99Us: rtt.p99, samples: rtt.count, lossPct: sent > 0 ? (1 - Number(f.echoed) / sent) * 100 : 100,
    ...(gc ? { gcMsPerSecond: gc.total } : {}),
  };
}

export interface ControlRun {
  allocationsPerSecond: number;
  bindsPerSecond: number;
  count: number;
  concurrency: number;
  failed: number;
  /** Failures by phase and reason ("allocate: TURN 3 failed: 508 ..."). */
  failures: Record<string, number>;
  /** Requests the client sent again for want of an answer within its retransmit interval. */
  retransmits: number;
}

export async function controlRun(s: Setup, count: number, concurrency: number): Promise<ControlRun> {
  const out = await runDriver(s, ['--mode', 'control', '--count', String(count), '--concurrency', String(concurrency)], 300_000);
  return out as unknown as ControlRun;
}

export interface MemoryRun {
  allocations: number;
  /** RSS in bytes per role (turnserver / relay / sidecar / launcher) before and with the allocations held. */
  idle: Record<string, number>;
  loaded: Record<string, number>;
}

export async function memoryRun(s: Setup, h: ContenderHandle, allocations: number): Promise<MemoryRun> {
  const rss = () => Object.fromEntries(Object.entries(h.roles()).map(([role, pid]) => [role, rssBytes(pid)]));
  await sleep(1000);
  const idle = rss();
  const child = s.topo.spawn('client', process.execPath, [...driverArgs(s), '--mode', 'hold', '--count', String(allocations), '--concurrency', '64']);
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('holding allocations timed out')), 300_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('"ready"')) { clearTimeout(t); resolve(); }
      });
      child.once('exit', (code) => { clearTimeout(t); reject(new Error(`driver exited (${code}): ${err.slice(0, 300)}`)); });
    });
    await sleep(1000);
    return { allocations, idle, loaded: rss() };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => { if (child.exitCode !== null) r(undefined); else child.once('exit', r); });
  }
}
