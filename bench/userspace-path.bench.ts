// End-to-end throughput of turnpike's userspace datapath on loopback, beside
// coturn in the same run. No namespaces: quick to run while working on the
// relay, sidecar and link; the netns harness (bench/ run by the benchmark
// issue) is the one whose numbers go in the README.
//
// For each contender: start it on 127.0.0.1 (random ports), make --flows
// allocations with a channel each through a real TURN exchange
// (bench/turn-driver.ts, REST secret auth), then flood ChannelData at the
// listen port with bench/flood.c (sendmmsg) and count what reaches the peer
// sink (bench/sink.c, recvmmsg). Reported per run: offered and relayed
// packets per second, loss, and the contender's CPU per relayed packet
// (utime+stime of its processes and descendants from /proc, in
// CPU-microseconds; kernel softirq work is not in it). Median of --runs with
// min-max.
//
// Contenders:
//   standalone  src/cmd/relay.ts with its own UDP sockets (TURNPIKE_RELAY_TRANSPORT=standalone)
//   pair        src/cmd/turnpike.ts (sidecar + relay over the link), TURNPIKE_EBPF=off
//   coturn      turnserver (Debian package), UDP only, REST secret
//
// Run: node --import tsx bench/userspace-path.bench.ts [--contenders standalone,pair,coturn]
//        [--flows 4] [--size 100] [--seconds 5] [--runs 3] [--rate 0 (= as fast as possible)]
// A 2-core machine shares its cores between generator, relay and sink, so
// "relayed pps" is partly a scheduling result; CPU-us per packet compares fairly.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureRelayUser } from './lib/build.ts';
import { cmdline, cpuDelta, cpuSnapshot, withDescendants } from './lib/procfs.ts';

const root = new URL('../', import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    contenders: { type: 'string', default: 'standalone,pair,coturn' },
    flows: { type: 'string', default: '4' },
    size: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
    rate: { type: 'string', default: '0' },
    batch: { type: 'string', default: '64' },
    keep: { type: 'boolean', default: false },
  },
});
const FLOWS = Number(values.flows);
const SIZE = Number(values.size);
const SECONDS = Number(values.seconds);
const RUNS = Number(values.runs);
const RATE = Number(values.rate);
const SECRET = 'bench-secret-' + Math.random().toString(36).slice(2);
const REALM = 'bench';
const HOST = '127.0.0.1';

const progress = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// Own copies of bench/flood.c and bench/sink.c, so a concurrent rebuild of bench/bin cannot pull them away mid-run.
ensureRelayUser();
const BIN_DIR = mkdtempSync(join(tmpdir(), 'tp-uspath-bin-'));

function ensureBinaries(): void {
  for (const b of ['flood', 'sink']) {
    execFileSync('gcc', ['-O2', '-Wall', '-o', join(BIN_DIR, b), join(root, 'bench', `${b}.c`)], { stdio: 'inherit' });
  }
}

/** A free port on 127.0.0.1 (TCP probe; good enough for loopback UDP in practice). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err.trim().slice(-500)}`))));
  });
}

async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

async function waitForStun(port: number, child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const probe = `const d=require('dgram');const s=d.createSocket('udp4');const b=Buffer.alloc(20);b.writeUInt16BE(1,0);` +
    `b.writeUInt32BE(0x2112a442,4);b.fill(7,8);s.on('message',()=>process.exit(0));setTimeout(()=>process.exit(1),300);s.send(b,${port},'${HOST}')`;
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited early (${child.exitCode ?? child.signalCode})`);
    try {
      await run(process.execPath, ['-e', probe]);
      return;
    } catch {
      await sleep(200);
    }
  }
  throw new Error(`no STUN answer on ${port}`);
}

interface Started {
  child: ChildProcess;
  /** pid -> role name, resolved after start. */
  roles(): Record<string, number>;
}

interface Contender {
  name: string;
  start(port: number, minPort: number, maxPort: number, work: string): Promise<Started>;
}

function turnpikeEnv(port: number, minPort: number, maxPort: number, work: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TURNPIKE_LISTEN_PORT: String(port),
    TURNPIKE_LISTEN_ADDRESSES: HOST,
    TURNPIKE_PUBLIC_IPV4: HOST,
    TURNPIKE_PORT_RANGE: `${minPort}-${maxPort}`,
    TURNPIKE_REST_SECRET: SECRET,
    TURNPIKE_REALM: REALM,
    TURNPIKE_ALLOWED_PEERS: '127.0.0.1/32',
    TURNPIKE_STATE_DIR: join(work, 'state'),
    TURNPIKE_LOG: 'warn',
    TURNPIKE_ADMIN: '127.0.0.1:0',
  };
  for (const k of ['TURNPIKE_POSTHOG_KEY', 'TURNPIKE_SENTRY_DSN', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'TURNPIKE_INTERFACE']) delete env[k];
  return env;
}

/** TP_BENCH_CPU_PROF=DIR profiles the turnpike processes (the launcher passes its flags to both children). */
const PROFILE = process.env.TP_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.TP_BENCH_CPU_PROF}`] : [];

function nodeArgs(file: string): string[] {
  const built = join(root, 'dist', file.replace(/\.ts$/, '.js'));
  return [...PROFILE, ...(existsSync(built) ? [built] : ['--import', 'tsx', join(root, file)])];
}

function spawnLogged(cmd: string, args: string[], env: NodeJS.ProcessEnv, log: string): ChildProcess {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = createWriteStream(log, { flags: 'a' });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  return child;
}

const contenders: Record<string, Contender> = {
  standalone: {
    name: 'turnpike standalone',
    async start(port, minPort, maxPort, work) {
      const env = { ...turnpikeEnv(port, minPort, maxPort, work), TURNPIKE_RELAY_TRANSPORT: 'standalone' };
      const child = spawnLogged(process.execPath, nodeArgs('src/cmd/relay.ts'), env, join(work, 'relay.log'));
      await waitForStun(port, child);
      return { child, roles: () => ({ relay: child.pid! }) };
    },
  },
  pair: {
    name: 'turnpike pair (eBPF off)',
    async start(port, minPort, maxPort, work) {
      const env = { ...turnpikeEnv(port, minPort, maxPort, work), TURNPIKE_EBPF: 'off' };
      const child = spawnLogged(process.execPath, nodeArgs('src/cmd/turnpike.ts'), env, join(work, 'turnpike.log'));
      await waitForStun(port, child);
      // The relay connects after the sidecar answers STUN: wait until it relays (allocations need it).
      await sleep(1500);
      return {
        child,
        roles: () => {
          const out: Record<string, number> = { launcher: child.pid! };
          for (const p of withDescendants([child.pid!])) {
            const c = cmdline(p);
            if (/cmd[/\\]sidecar\.(ts|js)/.test(c)) out.sidecar = p;
            else if (/cmd[/\\]relay\.(ts|js)/.test(c)) out.relay = p;
          }
          return out;
        },
      };
    },
  },
  coturn: {
    name: 'coturn turnserver',
    async start(port, minPort, maxPort, work) {
      const args = [
        '-n', '--listening-port', String(port), '--listening-ip', HOST, '--relay-ip', HOST,
        '--min-port', String(minPort), '--max-port', String(maxPort),
        '--no-tcp', '--no-tls', '--no-dtls', '--no-tcp-relay',
        '--use-auth-secret', `--static-auth-secret=${SECRET}`, '--realm', REALM,
        '--no-cli', '--allow-loopback-peers', '--log-file', join(work, 'turnserver.log'), '--simple-log', '--no-stdout-log',
        '--pidfile', join(work, 'turnserver.pid'),
      ];
      const child = spawnLogged('turnserver', args, process.env, join(work, 'turnserver.out'));
      await waitForStun(port, child);
      return { child, roles: () => ({ turnserver: child.pid! }) };
    },
  },
};

interface RunResult {
  offeredPps: number;
  relayedPps: number;
  loss: number;
  cpuUsPerPacket: number;
  /** CPU-us per relayed packet by process, and the kernel (stime) part of it. */
  perRole: Record<string, number>;
  perRoleSys: Record<string, number>;
}

/** utime and stime ticks of one process (all threads). */
function ticksOf(pid: number): [number, number] {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return [Number(f[11]), Number(f[12])];
  } catch {
    return [0, 0];
  }
}

async function oneRun(c: Contender, work: string): Promise<RunResult> {
  const port = await freePort();
  const minPort = 20000 + Math.floor(Math.random() * 30000);
  const maxPort = minPort + 999;
  const started = await c.start(port, minPort, maxPort, work);
  try {
    const sinkPort = await freePort();
    const sink = spawn(join(BIN_DIR, 'sink'), ['--bind', `${HOST}:${sinkPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let sinkOut = '';
    sink.stdout!.on('data', (d: Buffer) => (sinkOut += d.toString()));
    await sleep(100);
    const setup = JSON.parse(
      await run(process.execPath, [
        '--import', 'tsx', join(root, 'bench/turn-driver.ts'),
        '--mode', 'flows', '--server', `${HOST}:${port}`, '--peer', `${HOST}:${sinkPort}`, '--secret', SECRET,
        '--count', String(FLOWS), '--bind-address', HOST,
      ]),
    ) as { flows: { port: number; channel: number }[] };
    const flowSpec = setup.flows.map((f) => `${f.port}:${f.channel}`).join(',');
    const roles = started.roles();
    const pids = Object.values(roles);
    const before = cpuSnapshot(pids);
    const roleBefore = Object.fromEntries(Object.entries(roles).map(([k, p]) => [k, ticksOf(p)]));
    const floodOut = JSON.parse(
      await run(join(BIN_DIR, 'flood'), [
        '--server', `${HOST}:${port}`, '--flows', flowSpec, '--size', String(SIZE), '--seconds', String(SECONDS),
        '--rate', String(RATE), '--batch', values.batch!, '--bind', HOST,
      ]),
    ) as { sent: number; elapsed_s: number };
    await sleep(300); // let queues drain into the sink
    const after = cpuSnapshot(pids);
    const perRoleTicks = Object.fromEntries(Object.entries(roles).map(([k, p]) => {
      const [u, s] = ticksOf(p);
      return [k, [u - roleBefore[k]![0], s - roleBefore[k]![1]] as const];
    }));
    const sinkDone = new Promise<void>((r) => sink.once('exit', () => r()));
    sink.kill('SIGTERM');
    await sinkDone;
    const got = JSON.parse(sinkOut) as { packets: number };
    const cpu = cpuDelta(before, after);
    const relayed = got.packets;
    return {
      offeredPps: floodOut.sent / floodOut.elapsed_s,
      relayedPps: relayed / floodOut.elapsed_s,
      loss: floodOut.sent > 0 ? 1 - relayed / floodOut.sent : 0,
      cpuUsPerPacket: relayed > 0 ? (cpu.processSeconds * 1e6) / relayed : NaN,
      perRole: Object.fromEntries(Object.entries(perRoleTicks).map(([k, [u, s]]) => [k, relayed > 0 ? ((u + s) * 1e4) / relayed : NaN])),
      perRoleSys: Object.fromEntries(Object.entries(perRoleTicks).map(([k, [, s]]) => [k, relayed > 0 ? (s * 1e4) / relayed : NaN])),
    };
  } finally {
    await stopChild(started.child);
  }
}

function stat(xs: number[]): { med: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { med: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]! };
}

async function main(): Promise<void> {
  ensureBinaries();
  const names = values.contenders!.split(',').map((s) => s.trim()).filter(Boolean);
  const rows: { name: string; runs: RunResult[] }[] = [];
  for (const n of names) {
    const c = contenders[n];
    if (!c) throw new Error(`unknown contender ${n} (have ${Object.keys(contenders).join(', ')})`);
    const runs: RunResult[] = [];
    for (let r = 0; r < RUNS; r++) {
      const work = mkdtempSync(join(tmpdir(), 'tp-uspath-'));
      chmodSync(work, 0o711); // the pair's relay runs as an unprivileged user and must reach the link socket
      try {
        const res = await oneRun(c, work);
        runs.push(res);
        progress(`${c.name} run ${r + 1}/${RUNS}: offered ${(res.offeredPps / 1000).toFixed(1)}k pps, relayed ${(res.relayedPps / 1000).toFixed(1)}k pps, ` +
          `loss ${(res.loss * 100).toFixed(1)}%, ${res.cpuUsPerPacket.toFixed(2)} CPU-us/pkt, by process (of it kernel): ` +
          Object.entries(res.perRole).map(([k, v]) => `${k} ${v.toFixed(2)} (${res.perRoleSys[k]!.toFixed(2)})`).join(', '));
      } catch (e) {
        progress(`${c.name} run ${r + 1}/${RUNS} failed: ${(e as Error).message} (work dir ${work})`);
        continue;
      } finally {
        if (!values.keep) rmSync(work, { recursive: true, force: true });
      }
    }
    if (runs.length > 0) rows.push({ name: c.name, runs });
  }
  const ref = rows.find((r) => r.name.startsWith('coturn'));
  const refPps = ref ? stat(ref.runs.map((r) => r.relayedPps)).med : undefined;
  const refCpu = ref ? stat(ref.runs.map((r) => r.cpuUsPerPacket)).med : undefined;
  console.log(`\nuserspace path on loopback: ${FLOWS} flows, ${SIZE} B payload, ${SECONDS} s x ${RUNS} runs, offered ${RATE === 0 ? 'as fast as possible' : `${RATE} pps`}; node ${process.version}`);
  console.log('| contender | relayed kpps (min-max) | x coturn | loss % | CPU-us/pkt (min-max) | x coturn | per process CPU-us/pkt |');
  console.log('|---|---|---|---|---|---|---|');
  const fmt = (s: { med: number; min: number; max: number }, d: number, k = 1) => `${(s.med / k).toFixed(d)} (${(s.min / k).toFixed(d)}-${(s.max / k).toFixed(d)})`;
  for (const row of rows) {
    const pps = stat(row.runs.map((r) => r.relayedPps));
    const cpu = stat(row.runs.map((r) => r.cpuUsPerPacket));
    const loss = stat(row.runs.map((r) => r.loss * 100));
    const roles = Object.keys(row.runs[0]!.perRole);
    const per = roles.map((k) => `${k} ${stat(row.runs.map((r) => r.perRole[k] ?? NaN)).med.toFixed(2)}`).join(', ');
    console.log(`| ${row.name} | ${fmt(pps, 1, 1000)} | ${refPps ? (pps.med / refPps).toFixed(2) : '-'} | ${loss.med.toFixed(1)} | ${fmt(cpu, 2)} | ${refCpu ? (cpu.med / refCpu).toFixed(2) : '-'} | ${per} |`);
  }
}

main()
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => rmSync(BIN_DIR, { recursive: true, force: true }));
