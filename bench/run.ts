// `npm run bench`: turnpike against coturn, side by side, in one run.
// Needs root (network namespaces). Progress goes to stderr, one line per step;
// results go to bench/results/<date>.json and bench/results/latest.md.
//
//   npm run bench -- [--contenders coturn,turnpike-standalone,...] [--sizes 100,1000]
//                    [--runs 3] [--seconds 5] [--flows 4] [--quick]
//                    [--skip control,memory,maps,rtt]
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { createTopology, type Topology } from '../test/helpers/netns.ts';
import type { Contender, ContenderHandle, ContenderOptions } from './contenders/types.ts';
import { coturn, coturnVersion } from './contenders/coturn.ts';
import { turnpikeStandalone, turnpikeUserspace, turnpikeXdpNative, turnpikeXdpSkb } from './contenders/turnpike.ts';
import { buildTools } from './lib/build.ts';
import { controlRun, memoryRun, rttRun, setupFlows, throughputRun, type Setup } from './lib/measure.ts';
import { measureMapMemory } from './lib/map-memory.ts';
import { summarize } from './lib/stats.ts';
import { renderMarkdown, type BenchResults, type ContenderResult, type SizeResult, type Target } from './lib/report.ts';

const ALL: Contender[] = [coturn, turnpikeXdpNative, turnpikeXdpSkb, turnpikeUserspace, turnpikeStandalone];

const { values } = parseArgs({
  options: {
    contenders: { type: 'string' },
    sizes: { type: 'string' },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    flows: { type: 'string' },
    'rtt-rate': { type: 'string' },
    'control-count': { type: 'string' },
    'memory-allocations': { type: 'string' },
    skip: { type: 'string', default: '' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});

const quick = values.quick ?? false;
const params = {
  sizes: (values.sizes ?? (quick ? '100' : '100,1000')).split(',').map(Number),
  runs: Number(values.runs ?? (quick ? 1 : 3)),
  seconds: Number(values.seconds ?? (quick ? 2 : 5)),
  flows: Number(values.flows ?? 4),
  rttRate: Number(values['rtt-rate'] ?? 10_000),
  controlCount: Number(values['control-count'] ?? (quick ? 500 : 2000)),
  memoryAllocations: Number(values['memory-allocations'] ?? (quick ? 1000 : 10_000)),
};
const skip = new Set((values.skip ?? '').split(',').filter(Boolean));
const chosen = values.contenders
  ? values.contenders.split(',').map((n) => {
    const c = ALL.find((x) => x.name === n);
    if (!c) throw new Error(`unknown contender ${n}; known: ${ALL.map((x) => x.name).join(', ')}`);
    return c;
  })
  : ALL;
const outDir = values.out ?? new URL('./results/', import.meta.url).pathname;

const progress = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const kpps = (n: number) => `${(n / 1000).toFixed(1)}k pps`;

if (process.getuid?.() !== 0) {
  process.stderr.write('bench: needs root (it creates network namespaces)\n');
  process.exit(2);
}

const PORT = 3478;
const secret = randomBytes(12).toString('hex');
const baseOpts = { port: PORT, minPort: 49152, maxPort: 65535, secret, realm: 'bench' };

async function withContender<T>(c: Contender, topo: Topology, workDir: string, fn: (h: ContenderHandle) => Promise<T>): Promise<T> {
  const opts: ContenderOptions = { ...baseOpts, workDir };
  const h = await c.start(topo, opts);
  try {
    return await fn(h);
  } finally {
    await h.stop();
  }
}

async function benchContender(c: Contender, tools: { flood: string; sink: string }): Promise<ContenderResult> {
  const result: ContenderResult = { name: c.name, describe: c.describe, status: 'ok', sizes: [] };
  progress(`${c.name}: creating topology`);
  const topo = await createTopology({ prefix: 'tpbench' });
  const workDir = mkdtempSync('/tmp/tpbench-');
  chmodSync(workDir, 0o755); // the pair's relay runs as an unprivileged user and must reach its state dir
  // Resolved neighbours for every contender alike: the XDP fast path takes
  // next-hop MACs from the kernel's FIB and neighbour tables.
  await topo.seedNeighbours();
  // bpf_fib_lookup answers FWD_DISABLED unless forwarding is on for the
  // ingress interface, and the XDP program then cannot learn next-hop MACs.
  // Enabled in the relay namespace for every contender alike (a no-op for
  // coturn, which relays through sockets).
  await topo.exec('relay', 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1']);
  const setup: Setup = { topo, tools, port: PORT, secret };
  try {
    try {
      await withContender(c, topo, workDir, async (h) => {
        progress(`${c.name}: started (pids ${h.pids().join(',')}); setting up ${params.flows} flows`);
        const flows = await setupFlows(setup, params.flows);
        for (const size of params.sizes) {
          const s: SizeResult = { size, runs: [], rtt: [], generatorCapped: false };
          for (let i = 1; i <= params.runs; i++) {
            const r = await throughputRun(setup, h, flows, size, params.seconds);
            s.runs.push(r);
            progress(`${c.name}: ${size} B run ${i}/${params.runs}: offered ${kpps(r.offeredPps)}, relayed ${kpps(r.relayedPps)}, loss ${r.lossPct.toFixed(1)}%, ` +
              `${r.totalUsPerPkt.toFixed(2)} CPU-µs/pkt (process ${r.processUsPerPkt.toFixed(2)} + softirq ${r.softirqUsPerPkt.toFixed(2)})` +
              `${r.peerCsumErrors ? `, ${r.peerCsumErrors} CHECKSUM ERRORS at the peer` : ''}`);
            if (!skip.has('rtt')) {
              const t = await rttRun(setup, flows, size, params.rttRate, Math.min(3, params.seconds));
              s.rtt.push(t);
              progress(`${c.name}: ${size} B RTT at ${params.rttRate} pps: p50 ${t.p50Us.toFixed(0)} µs, p99 ${t.p99Us.toFixed(0)} µs, echo loss ${t.lossPct.toFixed(2)}%`);
            }
          }
          s.offeredPps = summarize(s.runs.map((r) => r.offeredPps));
          s.relayedPps = summarize(s.runs.map((r) => r.relayedPps));
          s.lossPct = summarize(s.runs.map((r) => r.lossPct));
          s.processUs = summarize(s.runs.map((r) => r.processUsPerPkt));
          s.softirqUs = summarize(s.runs.map((r) => r.softirqUsPerPkt));
          s.totalUs = summarize(s.runs.map((r) => r.totalUsPerPkt));
          s.rttP50 = summarize(s.rtt.map((r) => r.p50Us));
          s.rttP99 = summarize(s.rtt.map((r) => r.p99Us));
          s.generatorCapped = s.runs.every((r) => r.generatorCapped);
          result.sizes.push(s);
        }
        if (!skip.has('control')) {
          progress(`${c.name}: control plane, ${params.controlCount} allocations + channel binds`);
          try {
            result.control = await controlRun(setup, params.controlCount, 64);
            progress(`${c.name}: ${result.control.allocationsPerSecond.toFixed(0)} allocations/s, ${result.control.bindsPerSecond.toFixed(0)} binds/s (${result.control.failed} failed)`);
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
    if (!skip.has('memory')) {
      progress(`${c.name}: memory with ${params.memoryAllocations} allocations (fresh start)`);
      try {
        result.memory = await withContender(c, topo, workDir, (h) => memoryRun(setup, h, params.memoryAllocations));
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

function checkTargets(r: BenchResults): Target[] {
  const out: Target[] = [];
  const base = r.contenders.find((c) => c.name === 'coturn' && c.status === 'ok');
  const find = (name: string) => r.contenders.find((c) => c.name === name);
  for (const name of ['turnpike-xdp-native', 'turnpike-xdp-skb']) {
    const c = find(name);
    for (const size of r.params.sizes) {
      const s = c?.sizes.find((x) => x.size === size);
      const b = base?.sizes.find((x) => x.size === size);
      if (!s || !b || !s.totalUs || !b.totalUs || !s.relayedPps || !b.relayedPps) {
        out.push({ what: `${name} ${size} B: CPU/pkt ≤ 1/10 coturn`, value: c ? (c.status === 'failed' ? 'failed to start' : 'no data') : 'not run', verdict: 'n/a' });
        continue;
      }
      const cr = s.totalUs.median / b.totalUs.median;
      out.push({ what: `${name} ${size} B: CPU/pkt ≤ 1/10 coturn`, value: `${s.totalUs.median.toFixed(2)} vs ${b.totalUs.median.toFixed(2)} µs (×${cr.toFixed(3)})`, verdict: cr <= 0.1 ? 'PASS' : 'MISS' });
      const pr = s.relayedPps.median / b.relayedPps.median;
      const verdict = pr >= 1 ? 'PASS' : s.generatorCapped ? 'n/a' : 'MISS';
      out.push({ what: `${name} ${size} B: pps ≥ coturn (where not generator-capped)`, value: `${kpps(s.relayedPps.median)} vs ${kpps(b.relayedPps.median)} (×${pr.toFixed(2)})${s.generatorCapped ? ', generator-capped' : ''}`, verdict });
    }
  }
  for (const name of ['turnpike-userspace', 'turnpike-standalone']) {
    const c = find(name);
    for (const size of r.params.sizes) {
      const s = c?.sizes.find((x) => x.size === size);
      const b = base?.sizes.find((x) => x.size === size);
      if (!s?.relayedPps || !b?.relayedPps) {
        out.push({ what: `${name} ${size} B: pps ≥ 0.5× coturn`, value: c ? (c.status === 'failed' ? 'failed to start' : 'no data') : 'not run', verdict: 'n/a' });
        continue;
      }
      const pr = s.relayedPps.median / b.relayedPps.median;
      out.push({ what: `${name} ${size} B: pps ≥ 0.5× coturn`, value: `${kpps(s.relayedPps.median)} vs ${kpps(b.relayedPps.median)} (×${pr.toFixed(2)})`, verdict: pr >= 0.5 ? 'PASS' : 'MISS' });
    }
  }
  const m = r.mapMemory.find((x) => x.capacity === 65_536);
  if (m && !('error' in m)) {
    out.push({ what: 'binding maps at 65,536 ≤ 16 MiB', value: `${(m.bindingBytes / 1048576).toFixed(1)} MiB`, verdict: m.bindingBytes <= 16 * 1048576 ? 'PASS' : 'MISS' });
  } else {
    out.push({ what: 'binding maps at 65,536 ≤ 16 MiB', value: m ? m.error : 'not run', verdict: 'n/a' });
  }
  return out;
}

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  progress(`building bench/flood.c and bench/sink.c`);
  const tools = buildTools();
  const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const results: BenchResults = {
    startedAt,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cpu: cpuModel, cores: cpus().length, kernel: release(), node: process.version, coturn: coturnVersion(), memoryGiB: Math.round(totalmem() / 2 ** 30), loadAtStart: loadavg()[0]! },
    params,
    contenders: [],
    mapMemory: [],
    targets: [],
  };
  for (const c of chosen) results.contenders.push(await benchContender(c, tools));
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
  mkdirSync(outDir, { recursive: true });
  const stamp = startedAt.replace(/[:]/g, '-').replace(/\..*$/, '');
  writeFileSync(join(outDir, `${stamp}.json`), `${JSON.stringify(results, null, 2)}\n`);
  const md = renderMarkdown(results);
  writeFileSync(join(outDir, 'latest.md'), md);
  process.stdout.write(md);
  progress(`wrote ${join(outDir, `${stamp}.json`)} and ${join(outDir, 'latest.md')}`);
  for (const t of results.targets) progress(`${t.verdict.padEnd(4)} ${t.what}: ${t.value}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
