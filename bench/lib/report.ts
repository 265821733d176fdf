// The results file's shape and its markdown rendering (bench/results/latest.md).
import type { Summary } from './stats.ts';
import type { ControlRun, MemoryRun, RttRun, ThroughputRun } from './measure.ts';
import type { MapMemoryResult } from './map-memory.ts';

export interface SizeResult {
  size: number;
  runs: ThroughputRun[];
  rtt: RttRun[];
  relayedPps?: Summary;
  offeredPps?: Summary;
  lossPct?: Summary;
  processUs?: Summary;
  softirqUs?: Summary;
  totalUs?: Summary;
  rttP50?: Summary;
  rttP99?: Summary;
  generatorCapped: boolean;
}

export interface ContenderResult {
  name: string;
  describe: string;
  status: 'ok' | 'failed';
  error?: string;
  sizes: SizeResult[];
  control?: ControlRun;
  memory?: MemoryRun;
  memoryError?: string;
  controlError?: string;
}

export interface Target {
  what: string;
  value: string;
  verdict: 'PASS' | 'MISS' | 'n/a';
}

export interface BenchResults {
  startedAt: string;
  command: string;
  machine: { cpu: string; cores: number; kernel: string; node: string; coturn: string; memoryGiB: number; loadAtStart?: number };
  params: { sizes: number[]; runs: number; seconds: number; flows: number; rttRate: number; controlCount: number; memoryAllocations: number };
  contenders: ContenderResult[];
  mapMemory: (MapMemoryResult | { capacity: number; error: string })[];
  targets: Target[];
}

const k = (n: number | undefined) => (n === undefined ? '—' : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${(n / 1e3).toFixed(1)}k`);
const f1 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(n < 10 ? 2 : 1));
const mib = (b: number | undefined) => (b === undefined ? '—' : `${(b / 1048576).toFixed(1)} MiB`);

function range(s: Summary | undefined, fmt: (n: number) => string): string {
  if (!s) return '—';
  return s.n > 1 ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : fmt(s.median);
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? '' : ` ×${(a / b).toFixed(2)}`;
}

export function renderMarkdown(r: BenchResults): string {
  const L: string[] = [];
  const base = r.contenders.find((c) => c.name === 'coturn' && c.status === 'ok');
  L.push(`# turnpike vs coturn: relay benchmark`, '');
  L.push(`Run ${r.startedAt}. ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, Linux ${r.machine.kernel}, Node ${r.machine.node}, coturn ${r.machine.coturn}.` +
    (r.machine.loadAtStart !== undefined ? ` Load average at start ${r.machine.loadAtStart.toFixed(2)} (other work on the machine skews the figures; compare contenders from the same run).` : ''));
  L.push(`Reproduce: \`${r.command}\` (as root).`, '');
  L.push(`Topology: client, relay and peer namespaces on one Linux bridge (veth); generator and TURN driver in the client namespace, sink in the peer namespace, the relay alone in the relay namespace (IP forwarding on there and neighbours resolved, for every contender: the XDP program's next-hop lookup needs both). ` +
    `${r.params.flows} flows (one UDP 5-tuple, allocation and channel each, set up by real Allocate + ChannelBind with TURN REST credentials), ChannelData client → relay → UDP to the peer, ` +
    `${r.params.runs} run(s) of ${r.params.seconds} s per size; figures are median (min–max); ×N is the ratio to coturn.`, '');
  L.push(`CPU per relayed packet = (utime+stime of the relay's processes and their children + softirq time of all CPUs) / packets relayed to the peer. The generator's and sink's own process time is not counted; the softirq part is global (it includes the kernel's receive work for the sink). Ticks are 10 ms samples (no IRQ time accounting on this kernel).`, '');
  for (const size of r.params.sizes) {
    L.push(`## ${size}-byte payload`, '');
    L.push('| contender | offered pps | relayed pps | loss % | relay CPU-µs/pkt | softirq µs/pkt | total CPU-µs/pkt | RTT p50 µs | RTT p99 µs |');
    L.push('|---|---|---|---|---|---|---|---|---|');
    const b = base?.sizes.find((x) => x.size === size);
    for (const c of r.contenders) {
      if (c.status !== 'ok') {
        L.push(`| ${c.name} | failed to start: ${(c.error ?? '').replace(/\|/g, '/').slice(0, 160)} | | | | | | | |`);
        continue;
      }
      const s = c.sizes.find((x) => x.size === size);
      if (!s) continue;
      const capped = s.generatorCapped ? ' (generator-capped)' : '';
      L.push(`| ${c.name} | ${range(s.offeredPps, k)} | ${range(s.relayedPps, k)}${ratio(s.relayedPps?.median, b?.relayedPps?.median)}${capped} | ${range(s.lossPct, f1)} | ${range(s.processUs, f1)} | ${range(s.softirqUs, f1)} | ${range(s.totalUs, f1)}${ratio(s.totalUs?.median, b?.totalUs?.median)} | ${range(s.rttP50, f1)} | ${range(s.rttP99, f1)} |`);
    }
    L.push('');
  }
  L.push(`RTT at ${r.params.rttRate} pps offered (all flows together): the peer echoes each datagram to the allocation, the relay returns it to the client as ChannelData.`, '');
  L.push('## Control plane and memory', '');
  L.push(`| contender | allocations/s | channel binds/s | RSS idle | RSS with ${r.params.memoryAllocations} allocations |`);
  L.push('|---|---|---|---|---|');
  for (const c of r.contenders) {
    if (c.status !== 'ok') { L.push(`| ${c.name} | failed to start | | | |`); continue; }
    const ctl = c.control;
    const rss = (m: Record<string, number> | undefined) => (m ? Object.entries(m).map(([role, b]) => `${role} ${mib(b)}`).join(', ') : (c.memoryError ? `error: ${c.memoryError.slice(0, 80)}` : '—'));
    L.push(`| ${c.name} | ${ctl ? f1(ctl.allocationsPerSecond) + ratio(ctl.allocationsPerSecond, base?.control?.allocationsPerSecond) : c.controlError ?? '—'} | ${ctl ? f1(ctl.bindsPerSecond) + ratio(ctl.bindsPerSecond, base?.control?.bindsPerSecond) : '—'} | ${rss(c.memory?.idle)} | ${rss(c.memory?.loaded)} |`);
  }
  L.push('', `Control plane: ${r.params.controlCount} Allocate exchanges (including the 401 challenge round trip), then as many ChannelBinds, 64 at a time, from one Node.js client process.`, '');
  if (r.mapMemory.length > 0) {
    L.push('## Kernel map memory (XDP binding maps)', '', '| capacity | binding maps | all maps |', '|---|---|---|');
    for (const m of r.mapMemory) {
      if ('error' in m) L.push(`| ${m.capacity} | error: ${m.error.slice(0, 100)} | |`);
      else L.push(`| ${m.capacity} | ${mib(m.bindingBytes)} | ${mib(m.totalBytes)} |`);
    }
    L.push('');
  }
  L.push('## Targets', '', '| target | measured | verdict |', '|---|---|---|');
  for (const t of r.targets) L.push(`| ${t.what} | ${t.value} | ${t.verdict} |`);
  L.push('');
  for (const c of r.contenders) L.push(`- ${c.name}: ${c.describe}`);
  L.push('');
  return L.join('\n');
}
