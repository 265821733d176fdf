// The results file's shape and its markdown rendering (bench/results/latest.md,
// which the README shows: it has to stand on its own).
import type { Summary } from './stats.ts';
import type { ControlRun, Family, MemoryRun } from './measure.ts';
import type { MapMemoryResult } from './map-memory.ts';
import { caseKey, type SizeResult } from './aggregate.ts';

export type { SizeResult } from './aggregate.ts';

export interface ContenderResult {
  name: string;
  describe: string;
  status: 'ok' | 'failed';
  error?: string;
  sizes: SizeResult[];
  /** Cases (e.g. "IPv6/100") that could not be measured, with the reason. */
  caseErrors?: Record<string, string>;
  control?: ControlRun;
  memory?: MemoryRun;
  memoryError?: string;
  controlError?: string;
}

export interface Target {
  what: string;
  value: string;
  /** How far under/over (or above/short of) the limit. */
  margin: string;
  verdict: 'PASS' | 'MISS' | 'n/a';
  /** Shown for reference: not the figure the target is judged on. */
  reference?: boolean;
}

export interface BaselineResult {
  status: 'ok' | 'failed';
  error?: string;
  sizes: SizeResult[];
}

/** One topology's references and contenders. */
export interface TopologyResults {
  /** The no-relay run: the same datagrams from the client straight to the sink. */
  baseline?: BaselineResult;
  /** Reference: the same datagrams through the relay namespace's kernel IP forwarding (net of `baseline`). */
  forwardHop?: BaselineResult;
  contenders: ContenderResult[];
}

/** The bridge topology's results are the top-level fields (the file's shape from before there were two). */
export interface BenchResults extends TopologyResults {
  startedAt: string;
  finishedAt?: string;
  command: string;
  machine: {
    cpu: string; cores: number; kernel: string; node: string; coturn: string; memoryGiB: number;
    /** 1-minute load average when the run started and ended. */
    loadAtStart?: number; loadAtEnd?: number;
  };
  params: {
    cases: { family: Family; size: number }[];
    /** The routed topology's cases (absent in files from before: then `cases`). */
    routedCases?: { family: Family; size: number }[];
    runs: number; seconds: number; flows: number; rttRate: number; controlCount: number; memoryAllocations: number;
  };
  /** Topologies this run measured (absent in files from before: bridge only). */
  topologies?: ('bridge' | 'routed')[];
  /** The routed topology (client and peer behind routers, forwarding off on the relay, one-way flows). */
  routed?: TopologyResults;
  mapMemory: (MapMemoryResult | { capacity: number; error: string })[];
  targets: Target[];
}

const k = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${(n / 1e3).toFixed(1)}k`);
const f2 = (n: number) => (!Number.isFinite(n) ? '—' : Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));
const mib = (b: number | undefined) => (b === undefined ? '—' : `${(b / 1048576).toFixed(1)} MiB`);
const cell = (text: string) => text.replace(/\|/g, '/').replace(/\n/g, ' ');

function range(s: Summary | undefined, fmt: (n: number) => string): string {
  if (!s) return '—';
  return s.n > 1 ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : fmt(s.median);
}

/** ` ×r` against coturn's median, or nothing for coturn itself and missing figures. */
function ratio(a: number | undefined, b: number | undefined, self: boolean): string {
  if (self || a === undefined || b === undefined || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return '';
  return ` ×${(a / b).toFixed(a / b < 0.1 ? 3 : 2)}`;
}

const rel = (s: Summary | undefined, b: Summary | undefined, fmt: (n: number) => string, self: boolean) => `${range(s, fmt)}${ratio(s?.median, b?.median, self)}`;

function roleSplit(s: SizeResult): string {
  const r = s.processByRole;
  if (!r) return '';
  const parts = Object.entries(r).filter(([, v]) => v.median > 0.005).map(([role, v]) => `${role} ${f2(v.median)}`);
  return parts.length > 1 ? ` (${parts.join(' + ')})` : '';
}

function header(r: BenchResults): string[] {
  const m = r.machine;
  const L: string[] = [];
  L.push('# turnpike vs coturn: relay benchmark', '');
  L.push('| | |', '|---|---|');
  L.push(`| run | ${r.startedAt}${r.finishedAt ? ` – ${r.finishedAt}` : ''} |`);
  L.push(`| machine | ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB |`);
  L.push(`| kernel | Linux ${m.kernel} |`);
  L.push(`| Node.js | ${m.node} |`);
  L.push(`| coturn | ${m.coturn} |`);
  const load = (n: number | undefined) => (n === undefined ? '?' : n.toFixed(2));
  L.push(`| load average (1 min) | ${load(m.loadAtStart)} at start, ${load(m.loadAtEnd)} at end${(m.loadAtStart ?? 0) > 0.5 ? ' — **the machine was not quiet**: other work adds to the global softirq time and takes CPU from generator and relay; compare contenders within this run only' : ''} |`);
  const bgs = [...(r.baseline?.sizes ?? []), ...r.contenders.flatMap((c) => c.sizes)].flatMap((s) => s.runs.map((x) => x.backgroundSoftirqPerSecond)).filter((x) => Number.isFinite(x));
  if (bgs.length > 0) {
    L.push(`| background softirq | ${(Math.min(...bgs) * 1000).toFixed(0)}–${(Math.max(...bgs) * 1000).toFixed(0)} ms per second across runs (machine-wide with no benchmark traffic, the lower of 0.5 s samples before and after each run; subtracted from every softirq figure) |`);
  }
  L.push(`| reproduce | \`${r.command}\` as root (needs network namespaces; \`make -C bpf\` first for the XDP contenders) |`);
  const cases = r.params.cases.map((c) => `IPv${c.family} ${c.size} B`).join(', ');
  const routed = r.routed ? `; routed topology: ${(r.params.routedCases ?? r.params.cases).map((c) => `IPv${c.family} ${c.size} B`).join(', ')}, one-way` : '';
  L.push(`| parameters | ${cases}; ${r.params.runs} run(s) of ${r.params.seconds} s each; ${r.params.flows} flows; RTT at ${r.params.rttRate} pps${routed} |`);
  L.push('');
  return L;
}

function legend(r: BenchResults): string[] {
  return [
    '## How it is measured',
    '',
    'Topology, the same for every contender: client, relay and peer network namespaces, each with one veth into a Linux bridge in a fourth namespace. ' +
      'The load generator (`bench/flood.c`, sendmmsg) and the TURN driver run in the client namespace, the sink (`bench/sink.c`, recvmmsg) in the peer namespace, the relay alone in the relay namespace ' +
      '(IP forwarding on and neighbours resolved there for every contender: the XDP program\'s next-hop lookup needs both). ' +
      `Each of the ${r.params.flows} flows is one client UDP 5-tuple with its own allocation and channel, made by a real Allocate + ChannelBind with TURN REST credentials; ` +
      'the generator then floods ChannelData (4-byte header + payload) as fast as it can, round-robin over the flows, and the relay sends each payload as UDP to the sink. ' +
      'IPv6 rows use IPv6 end to end (client → relay, relayed address, peer).',
    '',
    '**No relay (baseline)**: the generator sends the same datagrams (ChannelData header and all) from the client straight to the sink through the same bridge. ' +
      'Its softirq time per packet is what any contender pays anyway: the generator\'s transmit into the bridge, bridge forwarding and the sink\'s UDP receive. ' +
      'It runs at the generator\'s full rate, usually higher than any relay\'s; per-packet softirq falls somewhat with rate (larger NAPI batches), so the subtraction is approximate.',
    '',
    '**Kernel forwarding hop (reference)**: the same datagrams, addressed to the sink, routed through the relay namespace, whose kernel forwards them back out of the same interface (IP forwarding, no TURN, no XDP). ' +
      'It passes the bridge twice and the relay\'s interface in both directions, as every relay here does, so its net cost is what a relay-shaped hop costs through the kernel\'s own forwarding path, with no relay logic at all: a scale for the contenders\' own cost (XDP can come in under it, since it skips the stack). Nothing is subtracted with it. Its RTT goes through the hop one way only (the echo returns directly).',
    '',
    'Columns:',
    '',
    '- **offered pps**: datagrams per second the generator sent. On these 2 cores the generator shares the CPUs with the relay, so the offered rate varies by contender.',
    '- **relayed pps**: datagrams per second that reached the peer namespace\'s sink (those its socket dropped for a full buffer included). **generator-capped**: every run lost < 0.5 %: the relay relayed all it was offered, so its own ceiling is higher than the figure (a lower bound).',
    '- **loss %**: 1 − relayed / offered.',
    '- **process µs/pkt**: user + system CPU time of the relay\'s processes (all threads and children) per relayed packet; for the pair, split into relay, sidecar and launcher.',
    '- **softirq µs/pkt (raw)**: softirq time of ALL CPUs per relayed packet (less the machine\'s background rate, see below): the relay\'s kernel packet work (receive, XDP program or socket path, transmit, the second pass through the bridge) AND the work any relay causes (generator transmit, bridge, the sink\'s receive).',
    '- **raw total**: process + raw softirq (the harness\'s earlier headline figure).',
    '- **net softirq**: raw softirq minus the baseline\'s softirq per packet (same family and size): the kernel work the relay adds.',
    '- **relay\'s own cost**: process + net softirq, CPU-µs per relayed packet. The XDP CPU target is judged on this figure; the raw one is shown beside it.',
    '- **pps per CPU-second**: 1,000,000 / relay\'s own cost: packets relayed per second of CPU the relay consumed, i.e. what one fully busy core would relay at this per-packet cost.',
    '- **vs forwarding hop**: the relay\'s own cost ÷ the kernel forwarding hop\'s own cost on the same topology (×1 = as cheap as the kernel forwarding the datagram with no TURN at all).',
    '- **GC ms/s**: garbage-collection time of turnpike\'s Node.js processes (sidecar + relay) per second of wall time during the flood, and during the RTT runs at their paced rate, from the sidecar\'s `v8js.gc.duration` histogram (both processes\' GC, the relay\'s reported over the link) read from /metrics before and after each run (the relay\'s arrive with its counters once a second, so they are placed within ±1 s); GC durations are wall time, so on a loaded machine they include time the process waited for a CPU; — for coturn (C) and the relay alone (no sidecar, no metrics).',
    `- **RTT p50 / p99**: round trip client → relay → peer → relay → client at ${r.params.rttRate} pps offered over all flows (the sink echoes each datagram to the allocation, which returns it as ChannelData); the generator timestamps each packet. The baseline row is client → peer → client without a relay.`,
    '- **×N**: ratio to coturn\'s median in the same table (for CPU lower is better, for pps higher is better).',
    '- Figures are the median of the runs with (min–max) when there was more than one.',
    '',
    'On veth, the receiving side\'s softirq (bridge, the relay\'s receive and its XDP program) runs on the CPU of the process that sent the packet. ' +
      'So the generator shares its core with the kernel\'s work on its packets, and a relay whose work is all in softirq (XDP) slows the generator itself: ' +
      'XDP\'s relayed pps here is what one core could do for generator and kernel path together, not the XDP program\'s ceiling. The per-packet CPU figures do not depend on this.',
    '',
    'CPU times come from /proc (`utime`+`stime` of the relay\'s processes, the `softirq` column of /proc/stat). This kernel has no IRQ time accounting, so both are 10 ms tick samples: small differences are noise. ' +
      'The softirq column of /proc/stat is machine-wide: anything else running adds to it. Each run samples the machine\'s softirq rate for 0.5 s before and after the flood, with no benchmark traffic, and subtracts the lower rate × the run\'s length (the JSON keeps the uncorrected figure as softirqRawUsPerPkt); bursty other load still gets through, hence the load average above.',
    '',
  ];
}

/** ` ×r` of the relay's own cost against the forwarding hop's (a positive hop cost only). */
function hopRatio(s: SizeResult, hop: SizeResult | undefined): string {
  const a = s.netTotalUs?.median;
  const b = hop?.netTotalUs?.median;
  return a === undefined || b === undefined || !(b > 0) ? '—' : `×${(a / b).toFixed(2)}`;
}

/** GC ms per second of the turnpike processes, under the flood and during the RTT runs (— for a contender without a GC metric). */
function gc(s: SizeResult): string {
  const parts = [s.gcMsPerSecond ? range(s.gcMsPerSecond, f2) : '—'];
  if (s.rttGcMsPerSecond) parts.push(`${range(s.rttGcMsPerSecond, f2)} at RTT rate`);
  return parts.join('; ');
}

/**
 * One case's two tables on one topology. On the routed topology flows are
 * one-way, so the first table has no RTT columns.
 */
function caseTables(t: TopologyResults, family: Family, size: number, topology: 'bridge' | 'routed'): string[] {
  const L: string[] = [];
  const routed = topology === 'routed';
  const bl = t.baseline?.sizes.find((x) => x.family === family && x.size === size);
  const base = t.contenders.find((c) => c.name === 'coturn' && c.status === 'ok')?.sizes.find((x) => x.family === family && x.size === size);
  const fw = t.forwardHop?.sizes.find((x) => x.family === family && x.size === size);
  const rtt = (s: SizeResult, self: boolean) => (routed ? '' : ` ${rel(s.rttP50, base?.rttP50, f2, self)} | ${rel(s.rttP99, base?.rttP99, f2, self)} |`);
  const rttRef = (s: SizeResult) => (routed ? '' : ` ${range(s.rttP50, f2)} | ${range(s.rttP99, f2)} |`);
  const blank = routed ? ' |' : ' | | |';
  L.push(routed ? `## Routed, one-way: ${caseKey(family, size)}-byte payload` : `## ${caseKey(family, size)}-byte payload`, '');
  if (routed) L.push('| contender | offered pps | relayed pps | loss % | GC ms/s |', '|---|---|---|---|---|');
  else L.push('| contender | offered pps | relayed pps | loss % | RTT p50 µs | RTT p99 µs | GC ms/s |', '|---|---|---|---|---|---|---|');
  if (t.baseline?.status === 'failed') L.push(`| no relay (baseline) | failed: ${cell((t.baseline.error ?? '').slice(0, 160))} | |${blank}`);
  else if (bl) L.push(`| no relay (baseline) | ${range(bl.offeredPps, k)} | ${range(bl.relayedPps, k)} (delivered) | ${range(bl.lossPct, f2)} |${rttRef(bl)} — |`);
  if (t.forwardHop?.status === 'failed') L.push(`| kernel forwarding hop (reference) | failed: ${cell((t.forwardHop.error ?? '').slice(0, 160))} | |${blank}`);
  else if (fw) L.push(`| kernel forwarding hop (reference) | ${range(fw.offeredPps, k)} | ${range(fw.relayedPps, k)} (forwarded) | ${range(fw.lossPct, f2)} |${rttRef(fw)} — |`);
  for (const c of t.contenders) {
    if (c.status !== 'ok') { L.push(`| ${c.name} | failed to start: ${cell((c.error ?? '').slice(0, 160))} | |${blank}`); continue; }
    const s = c.sizes.find((x) => x.family === family && x.size === size);
    const err = c.caseErrors?.[caseKey(family, size)];
    if (!s) { if (err) L.push(`| ${c.name} | failed: ${cell(err.slice(0, 160))} | |${blank}`); continue; }
    const self = c.name === 'coturn';
    const capped = s.generatorCapped ? ' **generator-capped**' : '';
    L.push(`| ${c.name} | ${range(s.offeredPps, k)} | ${rel(s.relayedPps, base?.relayedPps, k, self)}${capped} | ${range(s.lossPct, f2)} |${rtt(s, self)} ${gc(s)} |`);
  }
  L.push('');
  L.push('| contender | process µs/pkt | softirq µs/pkt (raw) | raw total µs/pkt | net softirq µs/pkt | relay\'s own cost µs/pkt | vs forwarding hop | pps per CPU-second |', '|---|---|---|---|---|---|---|---|');
  if (bl) L.push(`| no relay (baseline) | — | ${range(bl.softirqUs, f2)} | ${range(bl.totalUs, f2)} | 0 by definition | — | — | — |`);
  if (fw) L.push(`| kernel forwarding hop (reference) | — | ${range(fw.softirqUs, f2)} | ${range(fw.totalUs, f2)} | ${range(fw.netSoftirqUs, f2)} | ${range(fw.netTotalUs, f2)} | ×1 | ${range(fw.ppsPerCpuSecond, k)} |`);
  for (const c of t.contenders) {
    if (c.status !== 'ok') continue;
    const s = c.sizes.find((x) => x.family === family && x.size === size);
    if (!s) continue;
    const self = c.name === 'coturn';
    L.push(`| ${c.name} | ${rel(s.processUs, base?.processUs, f2, self)}${roleSplit(s)} | ${rel(s.softirqUs, base?.softirqUs, f2, self)} | ${rel(s.totalUs, base?.totalUs, f2, self)} | ` +
      `${range(s.netSoftirqUs, f2)} | ${s.netTotalUs ? `**${rel(s.netTotalUs, base?.netTotalUs, f2, self)}**` : 'no baseline'} | ${hopRatio(s, fw)} | ${rel(s.ppsPerCpuSecond, base?.ppsPerCpuSecond, k, self)} |`);
  }
  L.push('');
  const csum = t.contenders.flatMap((c) => c.sizes.filter((x) => x.family === family && x.size === size).flatMap((x) => x.runs.filter((run) => run.peerCsumErrors > 0).map(() => c.name)));
  if (csum.length > 0) L.push(`**UDP checksum errors at the peer** in runs of: ${[...new Set(csum)].join(', ')}.`, '');
  return L;
}

const ROUTED_INTRO = 'Client and peer each behind their own router namespace; the relay namespace on a LAN (a bridge) with both routers, reaching the client through its default gateway and the peer through the peer\'s router, **IP forwarding off** (as a relay host on the internet runs). ' +
  'Flows are one-way: the peer sends nothing back (so no RTT rows), and the XDP program has to take its next hops from the kernel\'s routes and neighbours (the sidecar\'s mirror), never from a frame it saw. ' +
  'Every relayed packet crosses: client → its router → LAN → relay → LAN → the peer\'s router → peer. ' +
  'Baseline: the client sends straight to the peer (client → router → LAN → peer\'s router → peer). ' +
  'Kernel forwarding hop: the client\'s router sends the peer\'s network via the relay namespace, which forwards (forwarding on there for this row only): the same path as every relay\'s, with the kernel\'s forwarding in place of the relay, so its own cost is the floor the XDP path is compared with ("vs forwarding hop").';

/** The --profile section: top symbols per contender, share of all samples on all CPUs. */
function profiles(r: BenchResults): string[] {
  const rows = r.contenders.flatMap((c) => c.sizes.filter((s) => s.profile || s.profileError).map((s) => ({ c, s })));
  if (rows.length === 0) return [];
  const L = ['## Where the time goes (perf)', '',
    `One extra ${rows[0]!.s.size}-byte IPv${rows[0]!.s.family} run per contender under \`perf record -a -e cpu-clock -F 999\` (not part of the figures above). ` +
      'Share of all samples on all CPUs (2 CPUs × the run = 100 %), by who was running: the relay\'s threads, the generator (flood), the sink, kernel threads (ksoftirqd, softirq on an otherwise idle CPU), other (the rest of the machine, not this benchmark); idle left out. ' +
      'Softirq work is charged to whichever thread it interrupted: on veth the relay\'s kernel path, XDP included, mostly lands on the generator (it runs on the sending CPU). Top symbols outside "other"; the XDP program appears as `bpf_prog_…`.', ''];
  for (const { c, s } of rows) {
    if (!s.profile) { L.push(`- **${c.name}**: profile failed: ${cell(s.profileError ?? '')}`); continue; }
    const g = Object.entries(s.profile.groups).map(([name, pct]) => `${name} ${pct.toFixed(0)}%`).join(', ');
    const top = s.profile.top.map((t) => `${t.symbol} ${t.pct.toFixed(1)}% (${t.group}${t.space === 'kernel' ? ', k' : ''})`).join('; ');
    L.push(`- **${c.name}**: ${g}, idle ${s.profile.idlePct.toFixed(0)}%. Top: ${cell(top)}`);
  }
  L.push('');
  return L;
}

export function renderMarkdown(r: BenchResults): string {
  const L: string[] = [...header(r)];
  if ((r.machine.loadAtStart ?? 0) > 1) {
    L.push('> **Not a quiet machine** (load average above 1 at start): the CPU figures, softirq above all, carry other work\'s noise. Negative or tiny net figures are noise, not free relaying. Rerun on an idle machine before quoting them.', '');
  }
  L.push('What each column means and how it is measured: see "How it is measured" at the end. ×N is the ratio to coturn in the same run.', '');
  L.push('## Targets', '', '| target | measured | margin | verdict |', '|---|---|---|---|');
  for (const t of r.targets) {
    const verdict = t.reference ? `(${t.verdict}) for reference` : `**${t.verdict}**`;
    L.push(`| ${cell(t.what)} | ${cell(t.value)} | ${t.margin} | ${verdict} |`);
  }
  L.push('', 'Rows marked "for reference" are not the figure a target is judged on: the raw CPU figure includes the bridge and sink work that any relay causes (see the baseline below).', '');
  const topologies = r.topologies ?? ['bridge'];
  if (topologies.includes('bridge')) for (const { family, size } of r.params.cases) L.push(...caseTables(r, family, size, 'bridge'));
  if (r.routed) {
    L.push('# Routed topology', '', ROUTED_INTRO, '');
    for (const { family, size } of r.params.routedCases ?? r.params.cases) L.push(...caseTables(r.routed, family, size, 'routed'));
  }

  if (r.contenders.length > 0) {
    L.push('## Control plane and memory', '');
    const base = r.contenders.find((c) => c.name === 'coturn' && c.status === 'ok');
    L.push(`| contender | allocations/s | channel binds/s | failed / retransmits | RSS idle | RSS with ${r.params.memoryAllocations} allocations |`, '|---|---|---|---|---|---|');
    for (const c of r.contenders) {
      if (c.status !== 'ok') { L.push(`| ${c.name} | failed to start | | | | |`); continue; }
      const ctl = c.control;
      const self = c.name === 'coturn';
      const rss = (m: Record<string, number> | undefined) => (m ? Object.entries(m).map(([role, b]) => `${role} ${mib(b)}`).join(', ') : (c.memoryError ? `error: ${cell(c.memoryError.slice(0, 80))}` : '—'));
      const failed = ctl ? `${ctl.failed}${ctl.failed > 0 ? ` (${cell(Object.entries(ctl.failures ?? {}).map(([why, n]) => `${n}× ${why}`).join('; '))})` : ''} / ${ctl.retransmits ?? '?'}` : '—';
      L.push(`| ${c.name} | ${ctl ? f2(ctl.allocationsPerSecond) + ratio(ctl.allocationsPerSecond, base?.control?.allocationsPerSecond, self) : cell(c.controlError ?? '—')} | ` +
        `${ctl ? f2(ctl.bindsPerSecond) + ratio(ctl.bindsPerSecond, base?.control?.bindsPerSecond, self) : '—'} | ${failed} | ${rss(c.memory?.idle)} | ${rss(c.memory?.loaded)} |`);
    }
    L.push('', `Control plane: ${r.params.controlCount} Allocate exchanges over IPv4 (each including the 401 challenge round trip), then as many ChannelBinds, 64 at a time, from one Node.js client process with a fixed 1 s retransmission interval. ` +
      'RSS: a fresh start of the contender, then the allocations (one channel each) held open by the driver.', '');
  }
  if (r.mapMemory.length > 0) {
    L.push('## Kernel map memory (XDP binding maps)', '', '| capacity (bindings installed) | binding maps | all maps of the object |', '|---|---|---|');
    for (const m of r.mapMemory) {
      if ('error' in m) L.push(`| ${m.capacity.toLocaleString('en')} | error: ${cell(m.error.slice(0, 100))} | |`);
      else L.push(`| ${m.capacity.toLocaleString('en')} (${m.filled.toLocaleString('en')}) | ${mib(m.bindingBytes)} | ${mib(m.totalBytes)} |`);
    }
    L.push('', 'bytes_memlock of each map as the kernel reports it (/proc/self/fdinfo), with the maps created at that capacity and filled with distinct bindings.', '');
  }
  L.push(...profiles(r));
  L.push(...legend(r));
  L.push('## Contenders', '');
  for (const c of r.contenders) L.push(`- **${c.name}**: ${c.describe}`);
  L.push('');
  return L.join('\n');
}
