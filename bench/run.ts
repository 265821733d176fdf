// `npm run bench`: turnpike against coturn, side by side, in one run.
// Needs root (network namespaces). Progress goes to stderr, one line per step;
// results go to bench/results/<date>.json and bench/results/latest.md.
//
//   npm run bench -- [--contenders coturn,turnpike-standalone,...]
//                    [--sizes 100,1000] [--sizes6 100] [--families 4,6]
//                    [--runs 3] [--seconds 5] [--flows 4] [--quick]
//                    [--skip baseline,forward,throughput,rtt,control,memory,maps,profile] [--profile]
//                    [--topology bridge|routed|both] [--routed-sizes 100]
//
// Topologies (bench/lib/topology.ts; default both, bridge first): "bridge" puts
// client, relay and peer on one bridge; "routed" puts client and peer each
// behind a router, the relay on a LAN reaching them through its gateways with
// IP forwarding off, and its flows are one-way (the peer sends nothing back,
// so no RTT there). The routed topology runs the throughput cases only
// (coturn, XDP native, XDP skb, eBPF off; --routed-sizes in each family of
// --families, default 100 B), with its own baseline and
// forwarding-hop reference; control plane, memory and profile run on the
// bridge.
//
// Profile (on by default, off with --quick unless --profile is given): after
// the measured runs of the first case, one more run per contender under a
// system-wide `perf record` (not counted in the figures); the top symbols go
// into the report's "Where the time goes" section.
//
// --sizes are the IPv4 payload sizes, --sizes6 the IPv6 ones (default 100 only,
// to keep the default run near a quarter of an hour); --families 4 drops IPv6.
// Before the contenders, a "no relay" baseline floods the same datagrams from
// the client straight to the sink: its softirq per packet is subtracted from
// each contender's to give the relay's own cost. A second reference run sends
// them through the relay namespace's kernel IP forwarding (no TURN): the cost
// of a relay-shaped hop on this topology, for scale.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import type { Topology } from '../test/helpers/netns.ts';
import type { Contender, ContenderHandle, ContenderOptions } from './contenders/types.ts';
import { coturn, coturnVersion } from './contenders/coturn.ts';
import { turnpikeStandalone, turnpikeUserspace, turnpikeXdpNative, turnpikeXdpSkb } from './contenders/turnpike.ts';
import { buildTools, ensureRelayUser } from './lib/build.ts';
import { baselineFlows, controlRun, memoryRun, rttRun, setupFlows, throughputRun, type Family, type Flow, type RttRun, type Setup, type ThroughputRun, type Tools } from './lib/measure.ts';
import { measureMapMemory } from './lib/map-memory.ts';
import { caseKey, summarizeCase, type SizeResult } from './lib/aggregate.ts';
import { checkTargets } from './lib/targets.ts';
import { processesInNetns, startPerf, summarizePerf, threadsOf } from './lib/profile.ts';
import { withDescendants } from './lib/procfs.ts';
import { sleep } from './lib/process.ts';
import { benchTopology, parseTopologies, routePeerViaRelay, type TopologyKind } from './lib/topology.ts';
import { renderMarkdown, type BenchResults, type ContenderResult, type TopologyResults } from './lib/report.ts';

const ALL: Contender[] = [coturn, turnpikeXdpNative, turnpikeXdpSkb, turnpikeUserspace, turnpikeStandalone];
/** The routed topology's contenders (issue 11): the relay alone is left out there. */
const ROUTED = new Set([coturn, turnpikeXdpNative, turnpikeXdpSkb, turnpikeUserspace].map((c) => c.name));

const { values } = parseArgs({
  options: {
    contenders: { type: 'string' },
    sizes: { type: 'string' },
    sizes6: { type: 'string' },
    families: { type: 'string' },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    flows: { type: 'string' },
    'rtt-rate': { type: 'string' },
    'control-count': { type: 'string' },
    'memory-allocations': { type: 'string' },
    skip: { type: 'string', default: '' },
    quick: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    out: { type: 'string' },
    topology: { type: 'string', default: 'both' },
    'routed-sizes': { type: 'string' },
  },
});

const quick = values.quick ?? false;
const numbers = (text: string) => text.split(',').filter(Boolean).map(Number);
const families = numbers(values.families ?? '4,6').filter((f): f is Family => f === 4 || f === 6);
const sizesOf: Record<Family, number[]> = {
  4: numbers(values.sizes ?? (quick ? '100' : '100,1000')),
  6: numbers(values.sizes6 ?? '100'),
};
const params: BenchResults['params'] = {
  cases: families.flatMap((family) => sizesOf[family].map((size) => ({ family, size }))),
  // 100 B in each family by default: the routed rows are about the XDP path's next hops and cost, not payload copies.
  routedCases: families.flatMap((family) => numbers(values['routed-sizes'] ?? '100').map((size) => ({ family, size }))),
  runs: Number(values.runs ?? (quick ? 1 : 3)),
  seconds: Number(values.seconds ?? (quick ? 2 : 5)),
  flows: Number(values.flows ?? 4),
  rttRate: Number(values['rtt-rate'] ?? 10_000),
  controlCount: Number(values['control-count'] ?? (quick ? 500 : 2000)),
  memoryAllocations: Number(values['memory-allocations'] ?? (quick ? 1000 : 10_000)),
};
const skip = new Set((values.skip ?? '').split(',').filter(Boolean));
const profile = !skip.has('profile') && (values.profile === true || !quick);
const chosen = values.contenders
  ? values.contenders.split(',').map((n) => {
    const c = ALL.find((x) => x.name === n);
    if (!c) throw new Error(`unknown contender ${n}; known: ${ALL.map((x) => x.name).join(', ')}`);
    return c;
  })
  : ALL;
const topologies = parseTopologies(values.topology ?? 'both');
const outDir = values.out ?? new URL('./results', import.meta.url).pathname;

const progress = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const kpps = (n: number) => `${(n / 1000).toFixed(1)}k pps`;

if (process.getuid?.() !== 0) {
  process.stderr.write('bench: needs root (it creates network namespaces)\n');
  process.exit(2);
}

const PORT = 3478;
const secret = randomBytes(12).toString('hex');
const baseOpts = { port: PORT, minPort: 49152, maxPort: 65535, secret, realm: 'bench' };

function runLine(r: ThroughputRun): string {
  return `offered ${kpps(r.offeredPps)}, relayed ${kpps(r.relayedPps)}, loss ${r.lossPct.toFixed(1)}%, ` +
    `${r.totalUsPerPkt.toFixed(2)} CPU-µs/pkt (process ${r.processUsPerPkt.toFixed(2)} + softirq ${r.softirqUsPerPkt.toFixed(2)})` +
    `${r.gcMsPerSecond !== undefined ? `, GC ${r.gcMsPerSecond.toFixed(2)} ms/s (${Object.entries(r.gcMsPerSecondByProcess ?? {}).map(([p, v]) => `${p} ${v.toFixed(2)}`).join(', ')})` : ''}` +
    `${r.peerCsumErrors ? `, ${r.peerCsumErrors} CHECKSUM ERRORS at the peer` : ''}`;
}

/** Throughput runs, each followed by an RTT run, for one case. */
async function measureCase(kind: TopologyKind, name: string, setup: Setup, h: ContenderHandle | undefined, flows: Flow[], size: number): Promise<{ runs: ThroughputRun[]; rtt: RttRun[] }> {
  const runs: ThroughputRun[] = [];
  const rtt: RttRun[] = [];
  const label = `${kind === 'routed' ? 'routed ' : ''}${name}: ${caseKey(setup.family, size)} B`;
  for (let i = 1; i <= params.runs; i++) {
    const r = await throughputRun(setup, h, flows, size, params.seconds);
    runs.push(r);
    progress(`${label} run ${i}/${params.runs}: ${runLine(r)}`);
    // Routed flows are one-way: an echo would make the peer send.
    if (!skip.has('rtt') && kind === 'bridge') {
      const t = await rttRun(setup, h, flows, size, params.rttRate, Math.min(3, params.seconds));
      rtt.push(t);
      progress(`${label} RTT at ${params.rttRate} pps: p50 ${t.p50Us.toFixed(0)} µs, p99 ${t.p99Us.toFixed(0)} µs, echo loss ${t.lossPct.toFixed(2)}%${t.gcMsPerSecond !== undefined ? `, GC ${t.gcMsPerSecond.toFixed(2)} ms/s` : ''}`);
    }
  }
  return { runs, rtt };
}

/** Where --profile writes perf.data files (kept after the run, for `perf report -i`). */
let profileDir: string | undefined;

/** One more throughput run under `perf record -a`; its figures are discarded. */
async function profiledRun(name: string, setup: Setup, h: ContenderHandle, flows: Flow[], size: number) {
  profileDir ??= mkdtempSync('/tmp/tpbench-profiles-');
  const file = join(profileDir, `${name}-${caseKey(setup.family, size).replace('/', '-')}.perf.data`);
  progress(`${name}: profiling one extra ${caseKey(setup.family, size)} B run (perf record -a, not counted)`);
  const relay = threadsOf(withDescendants(h.pids()));
  const perf = startPerf(file, params.seconds);
  const run = throughputRun(setup, h, flows, size, params.seconds);
  // Generator and sink are found by name inside this run's namespaces once they are up.
  await sleep(500);
  const generator = threadsOf(processesInNetns('flood', setup.topo.ns.client));
  const sink = threadsOf(processesInNetns('sink', setup.topo.ns.peer));
  await run;
  await perf;
  const summary = await summarizePerf(file, { relay, generator, sink });
  progress(`${name}: ${Object.entries(summary.groups).map(([g, p]) => `${g} ${p.toFixed(0)}%`).join(', ')}; top: ${summary.top.slice(0, 5).map((t) => `${t.symbol} ${t.pct.toFixed(1)}%`).join(', ')}`);
  return summary;
}

/** The cases measured on a topology. */
const casesOf = (topology: TopologyKind) => (topology === 'routed' ? params.routedCases ?? params.cases : params.cases);

/**
 * Runs without a contender: 'direct' floods the sink straight through the
 * bridge (the baseline every contender's softirq is reduced by); 'forward'
 * sends the same datagrams through the relay namespace's IP forwarding (a
 * reference: what a relay-shaped hop costs the kernel with no TURN at all).
 */
async function benchBaseline(topology: TopologyKind, tools: Tools, kind: 'direct' | 'forward', direct?: BenchResults['baseline']): Promise<NonNullable<BenchResults['baseline']>> {
  const name = kind === 'direct' ? 'no relay' : 'forwarding hop';
  progress(`${topology}: ${name} (${kind === 'direct' ? 'baseline' : 'reference'}): creating topology`);
  let topo: Topology | undefined;
  try {
    topo = await benchTopology(topology);
    if (kind === 'forward') await routePeerViaRelay(topology, topo);
    const sizes: SizeResult[] = [];
    for (const { family, size } of casesOf(topology)) {
      const setup: Setup = { topo, tools, port: PORT, secret, family };
      const { runs, rtt } = await measureCase(topology, name, setup, undefined, baselineFlows(params.flows), size);
      const base = direct?.sizes.find((x) => x.family === family && x.size === size)?.softirqUs?.median;
      sizes.push(summarizeCase(family, size, runs, rtt, base));
    }
    return { status: 'ok', sizes };
  } catch (err) {
    progress(`${name}: FAILED: ${(err as Error).message}`);
    return { status: 'failed', error: (err as Error).message, sizes: [] };
  } finally {
    await topo?.destroy();
  }
}

async function withContender<T>(c: Contender, topo: Topology, workDir: string, fn: (h: ContenderHandle) => Promise<T>): Promise<T> {
  const opts: ContenderOptions = { ...baseOpts, workDir };
  const h = await c.start(topo, opts);
  try {
    return await fn(h);
  } finally {
    await h.stop();
  }
}

async function benchContender(topology: TopologyKind, c: Contender, tools: Tools, baseline: BenchResults['baseline']): Promise<ContenderResult> {
  const result: ContenderResult = { name: c.name, describe: c.describe, status: 'ok', sizes: [] };
  const routed = topology === 'routed';
  progress(`${topology}: ${c.name}: creating topology`);
  let topo: Topology;
  try {
    topo = await benchTopology(topology);
  } catch (err) {
    // One failed topology (say, a transient spawn error) leaves the other contenders' rows standing.
    progress(`${c.name}: FAILED: ${(err as Error).message}`);
    return { ...result, status: 'failed', error: `topology: ${(err as Error).message}` };
  }
  const workDir = mkdtempSync('/tmp/tpbench-');
  chmodSync(workDir, 0o755); // the pair's relay runs as an unprivileged user and must reach its state dir
  const setupOf = (family: Family): Setup => ({ topo, tools, port: PORT, secret, family });
  const baselineSoftirq = (family: Family, size: number) =>
    baseline?.sizes.find((x) => x.family === family && x.size === size)?.softirqUs?.median;
  try {
    try {
      await withContender(c, topo, workDir, async (h) => {
        progress(`${c.name}: started (pids ${h.pids().join(',')})`);
        for (const family of skip.has('throughput') ? [] : families) {
          const cases = casesOf(topology).filter((x) => x.family === family);
          if (cases.length === 0) continue;
          const setup = setupOf(family);
          // One family's failure (say, no IPv6 relaying) leaves the other's rows standing.
          try {
            progress(`${c.name}: setting up ${params.flows} IPv${family} flows`);
            const flows = await setupFlows(setup, params.flows);
            for (const { size } of cases) {
              const { runs, rtt } = await measureCase(topology, c.name, setup, h, flows, size);
              const sum = summarizeCase(family, size, runs, rtt, baselineSoftirq(family, size));
              if (profile && !routed && family === params.cases[0]!.family && size === params.cases[0]!.size) {
                try {
                  sum.profile = await profiledRun(c.name, setup, h, flows, size);
                } catch (err) {
                  sum.profileError = (err as Error).message;
                  progress(`${c.name}: profile failed: ${sum.profileError}`);
                }
              }
              result.sizes.push(sum);
            }
          } catch (err) {
            result.caseErrors ??= {};
            for (const { size } of cases) {
              if (!result.sizes.some((x) => x.family === family && x.size === size)) result.caseErrors[caseKey(family, size)] = (err as Error).message;
            }
            progress(`${c.name}: IPv${family} FAILED: ${(err as Error).message}`);
          }
        }
        if (!skip.has('control') && !routed) {
          progress(`${c.name}: control plane, ${params.controlCount} allocations + channel binds`);
          try {
            result.control = await controlRun(setupOf(4), params.controlCount, 64);
            progress(`${c.name}: ${result.control.allocationsPerSecond.toFixed(0)} allocations/s, ${result.control.bindsPerSecond.toFixed(0)} binds/s (${result.control.failed} failed${result.control.failed ? `: ${JSON.stringify(result.control.failures)}` : ''}, ${result.control.retransmits} retransmits)`);
          } catch (err) {
            result.controlError = (err as Error).message;
            progress(`${c.name}: control plane failed: ${result.controlError}`);
          }
        }
      });
    } catch (err) {
      result.status = 'failed';
      result.error = (err as Error).message;
      progress(`${c.name}: FAILED: ${result.error}`);
      return result;
    }
    if (!skip.has('memory') && !routed) {
      progress(`${c.name}: memory with ${params.memoryAllocations} allocations (fresh start)`);
      try {
        result.memory = await withContender(c, topo, workDir, (h) => memoryRun(setupOf(4), h, params.memoryAllocations));
        progress(`${c.name}: RSS ${Object.entries(result.memory.loaded).map(([r, b]) => `${r} ${(b / 1048576).toFixed(1)} MiB`).join(', ')}`);
      } catch (err) {
        result.memoryError = (err as Error).message;
        progress(`${c.name}: memory measurement failed: ${result.memoryError}`);
      }
    }
    return result;
  } finally {
    await topo.destroy();
    rmSync(workDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  progress(`building bench/flood.c and bench/sink.c`);
  const tools = buildTools();
  ensureRelayUser();
  const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const results: BenchResults = {
    startedAt,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cpu: cpuModel, cores: cpus().length, kernel: release(), node: process.version, coturn: coturnVersion(), memoryGiB: Math.round(totalmem() / 2 ** 30), loadAtStart: loadavg()[0]! },
    params,
    topologies,
    contenders: [],
    mapMemory: [],
    targets: [],
  };
  if ((results.machine.loadAtStart ?? 0) > 1) progress(`load average ${results.machine.loadAtStart!.toFixed(2)}: the machine is busy, figures will be noisy`);
  for (const topology of topologies) {
    // The bridge's results stay at the top level of the file (as before there were two topologies).
    const into: TopologyResults = topology === 'bridge' ? results : (results.routed = { contenders: [] });
    if (!skip.has('baseline') && !skip.has('throughput') && casesOf(topology).length > 0) {
      into.baseline = await benchBaseline(topology, tools, 'direct');
      if (!skip.has('forward')) into.forwardHop = await benchBaseline(topology, tools, 'forward', into.baseline);
    }
    for (const c of chosen) {
      if (topology === 'routed' && !ROUTED.has(c.name)) continue;
      into.contenders.push(await benchContender(topology, c, tools, into.baseline));
    }
  }
  if (!skip.has('maps')) {
    for (const capacity of [65_536, 1_048_576]) {
      progress(`kernel map memory at ${capacity} bindings`);
      try {
        const m = await measureMapMemory(capacity, capacity);
        results.mapMemory.push(m);
        progress(`binding maps at ${capacity}: ${(m.bindingBytes / 1048576).toFixed(1)} MiB (all maps ${(m.totalBytes / 1048576).toFixed(1)} MiB, filled in ${m.fillSeconds.toFixed(1)} s)`);
      } catch (err) {
        results.mapMemory.push({ capacity, error: (err as Error).message });
        progress(`map memory at ${capacity} failed: ${(err as Error).message}`);
      }
    }
  }
  results.targets = checkTargets(results);
  results.finishedAt = new Date().toISOString();
  results.machine.loadAtEnd = loadavg()[0]!;
  mkdirSync(outDir, { recursive: true });
  const stamp = startedAt.replace(/[:]/g, '-').replace(/\..*$/, '');
  writeFileSync(join(outDir, `${stamp}.json`), `${JSON.stringify(results, null, 2)}\n`);
  const md = renderMarkdown(results);
  writeFileSync(join(outDir, 'latest.md'), md);
  process.stdout.write(md);
  progress(`wrote ${join(outDir, `${stamp}.json`)} and ${join(outDir, 'latest.md')}`);
  for (const t of results.targets) progress(`${t.reference ? `(${t.verdict})` : t.verdict.padEnd(4)} ${t.what}: ${t.value}${t.margin ? ` (${t.margin})` : ''}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
