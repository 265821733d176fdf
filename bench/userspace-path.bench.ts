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
// A turnpike contender may carry settings: `pair+TURNPIKE_UDP_GSO=off` is the
// pair with that variable set (before/after rows in one run).
//
// With --rtt RATE each run is followed by a round-trip run: ChannelData paced
// at RATE pps over the flows, the sink echoing each datagram back through the
// relay, the generator timing each one (p50/p99 of all samples). turnpike's
// processes run with --trace-gc: the GC pause time per second and the longest
// pause, by process, are read from their output for the flood and RTT windows.
//
// Run: node --import tsx bench/userspace-path.bench.ts [--contenders standalone,pair,coturn]
//        [--flows 4] [--size 100] [--seconds 5] [--runs 3] [--rate 0 (= as fast as possible)]
//        [--family 4|6] [--rtt 10000]
// A 2-core machine shares its cores between generator, relay and sink, so
// "relayed pps" is partly a scheduling result; CPU-us per packet compares fairly.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, createWriteStream, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
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
    family: { type: 'string', default: '4' },
    rtt: { type: 'string', default: '0' },
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
const FAMILY = values.family === '6' ? 6 : 4;
const HOST = FAMILY === 6 ? '::1' : '127.0.0.1';
const RTT_RATE = Number(values.rtt);
/** HOST:PORT as flood, sink and the TURN driver take it. */
const at = (port: number) => (FAMILY === 6 ? `[${HOST}]:${port}` : `${HOST}:${port}`);

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

/** A free port on HOST (TCP probe; good enough for loopback UDP in practice). */
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
  const probe = `const d=require('dgram');const s=d.createSocket('udp${FAMILY}');const b=Buffer.alloc(20);b.writeUInt16BE(1,0);` +
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
  /** Extra environment (a `name+KEY=VALUE` variant). */
  env?: Record<string, string>;
  /** Another checkout to run (a `name@DIR` variant). */
  checkout?: string;
  start(port: number, minPort: number, maxPort: number, work: string): Promise<Started>;
  /** Where its processes' --trace-gc lines go. */
  gcLog?: (work: string) => string;
}

function turnpikeEnv(port: number, minPort: number, maxPort: number, work: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TURNPIKE_LISTEN_PORT: String(port),
    TURNPIKE_LISTEN_ADDRESSES: HOST,
    [FAMILY === 6 ? 'TURNPIKE_PUBLIC_IPV6' : 'TURNPIKE_PUBLIC_IPV4']: HOST,
    TURNPIKE_PORT_RANGE: `${minPort}-${maxPort}`,
    TURNPIKE_REST_SECRET: SECRET,
    TURNPIKE_REALM: REALM,
    TURNPIKE_ALLOWED_PEERS: FAMILY === 6 ? '::1/128' : '127.0.0.1/32',
    TURNPIKE_STATE_DIR: join(work, 'state'),
    TURNPIKE_LOG: 'warn',
    TURNPIKE_ADMIN: '127.0.0.1:0',
  };
  for (const k of ['TURNPIKE_POSTHOG_KEY', 'TURNPIKE_SENTRY_DSN', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'TURNPIKE_INTERFACE']) delete env[k];
  return env;
}

/** TP_BENCH_RTT_DUMP=DIR writes each RTT sample (send time CLOCK_MONOTONIC ns, round trip ns) there, a file per run (flood --dump). */
/** TP_BENCH_CPU_PROF=DIR profiles the turnpike processes (the launcher passes its flags to both children). */
/** TP_BENCH_NODE_FLAGS adds node flags for them (e.g. "--heap-prof --heap-prof-dir=/tmp/hp"). */
const PROFILE = [
  ...(process.env.TP_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.TP_BENCH_CPU_PROF}`] : []),
  ...(process.env.TP_BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
  '--trace-gc',
];

/**
 * The node flags a checkout's `npm start` gives its launcher (package.json
 * scripts.start, `node FLAGS dist/src/cmd/turnpike.js`): the pair runs as that
 * checkout runs in production, whichever commit it is.
 */
function startFlags(checkout: string): string[] {
  try {
    const start = (JSON.parse(readFileSync(join(checkout, 'package.json'), 'utf8')) as { scripts?: { start?: string } }).scripts?.start ?? '';
    return /^node\s+(.*?)\s*dist\/src\/cmd\/turnpike\.js/.exec(start)?.[1]?.split(/\s+/).filter(Boolean) ?? [];
  } catch {
    return [];
  }
}

/** `checkout`: another checkout's build (a `name@DIR` contender: an older commit in the same run). */
function nodeArgs(file: string, checkout = root): string[] {
  const built = join(checkout, 'dist', file.replace(/\.ts$/, '.js'));
  const flags = file === 'src/cmd/turnpike.ts' ? startFlags(checkout) : [];
  return [...PROFILE, ...flags, ...(existsSync(built) ? [built] : ['--import', 'tsx', join(checkout, file)])];
}

function spawnLogged(cmd: string, args: string[], env: NodeJS.ProcessEnv, log: string): ChildProcess {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = createWriteStream(log, { flags: 'a' });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  return child;
}

/**
 * What a process of the pair is: `sidecar`, `relay`, or either's warm standby
 * (the launcher's idle spare, started with TURNPIKE_AWAIT_GO=true: on no packet's
 * path, but it shares the cores). Undefined for anything else, or a process gone.
 */
function turnpikeRole(pid: number): string | undefined {
  const c = cmdline(pid);
  const name = /cmd[/\\]sidecar\.(ts|js)/.test(c) ? 'sidecar' : /cmd[/\\]relay\.(ts|js)/.test(c) ? 'relay' : undefined;
  if (!name) return undefined;
  let standby = false;
  try {
    standby = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes('TURNPIKE_AWAIT_GO=true');
  } catch {
    // Gone: named by its command line alone.
  }
  return standby ? `${name} standby` : name;
}

/** A process the pair's roles do not cover, named by its command (or as gone: it exited before the window was read). */
function otherProcess(pid: number): string {
  const c = cmdline(pid);
  return c === '' ? `exited pid ${pid}` : `pid ${pid} (${c.split(' ').map((w) => w.split('/').pop()).join(' ').slice(0, 40)})`;
}

const contenders: Record<string, Contender> = {
  standalone: {
    name: 'turnpike standalone',
    gcLog: (work) => join(work, 'relay.log'),
    async start(port, minPort, maxPort, work) {
      const env = { ...turnpikeEnv(port, minPort, maxPort, work), TURNPIKE_RELAY_TRANSPORT: 'standalone', ...this.env };
      const child = spawnLogged(process.execPath, nodeArgs('src/cmd/relay.ts', this.checkout), env, join(work, 'relay.log'));
      await waitForStun(port, child);
      return { child, roles: () => ({ relay: child.pid! }) };
    },
  },
  pair: {
    name: 'turnpike pair (eBPF off)',
    gcLog: (work) => join(work, 'turnpike.log'),
    async start(port, minPort, maxPort, work) {
      const env = { ...turnpikeEnv(port, minPort, maxPort, work), TURNPIKE_EBPF: 'off', ...this.env };
      const child = spawnLogged(process.execPath, nodeArgs('src/cmd/turnpike.ts', this.checkout), env, join(work, 'turnpike.log'));
      await waitForStun(port, child);
      // The relay connects after the sidecar answers STUN: wait until it relays (allocations need it).
      await sleep(1500);
      return {
        child,
        roles: () => {
          const out: Record<string, number> = { launcher: child.pid! };
          for (const p of withDescendants([child.pid!])) {
            const role = turnpikeRole(p);
            if (role) out[role] = p;
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

interface GcWindow {
  /** Pause ms per second of the window, the longest pause, and how many were full (Mark-Compact). */
  msPerS: number;
  maxMs: number;
  full: number;
}

interface RunResult {
  offeredPps: number;
  relayedPps: number;
  loss: number;
  cpuUsPerPacket: number;
  /** CPU-us per relayed packet by process, and the kernel (stime) part of it. */
  perRole: Record<string, number>;
  perRoleSys: Record<string, number>;
  /** By role, in the flood window; and in the RTT window when --rtt. */
  gcFlood: Record<string, GcWindow>;
  rtt?: { p50: number; p99: number; lossPct: number; gc: Record<string, GcWindow> };
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

function fileSize(path: string | undefined): number {
  try {
    return path ? statSync(path).size : 0;
  } catch {
    return 0;
  }
}

/**
 * --trace-gc lines written to `path` between two sizes, summed by role:
 * "[PID:0x...]   1234 ms: Scavenge 5.1 (6.3) -> 4.2 (7.3) MB, 0.52 / 0.00 ms ...".
 * The relay's output reaches the log through the launcher, each line wrapped
 * in a launcher log line (`"line":"[PID:..."`): those count for the relay. A pid
 * the roles do not name (a standby started after they were read) is named from
 * /proc while it lives.
 */
function gcBetween(path: string | undefined, from: number, to: number, roles: Record<string, number>, seconds: number): Record<string, GcWindow> {
  const out: Record<string, GcWindow> = {};
  if (!path || to <= from) return out;
  const buf = Buffer.alloc(to - from);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, buf.length, from);
  } finally {
    closeSync(fd);
  }
  const byPid = new Map(Object.entries(roles).map(([k, p]) => [p, k]));
  const roleOf = (pid: number) => {
    let r = byPid.get(pid);
    if (r === undefined) byPid.set(pid, (r = turnpikeRole(pid) ?? otherProcess(pid)));
    return r;
  };
  for (const raw of buf.toString('utf8').split('\n')) {
    let line = raw;
    if (raw.startsWith('{') && raw.includes('"line":"[')) {
      try {
        line = String((JSON.parse(raw) as { line?: unknown }).line ?? '');
      } catch {
        continue;
      }
    }
    const m = /^\[(\d+):0x[0-9a-f]+\]\s+\d+ ms: (\S+(?: \(reduce\))?)[^,]*, ([\d.]+) \/ [\d.]+ ms/.exec(line);
    if (!m) continue;
    const role = roleOf(Number(m[1]));
    const w = (out[role] ??= { msPerS: 0, maxMs: 0, full: 0 });
    const ms = Number(m[3]);
    w.msPerS += ms / seconds;
    w.maxMs = Math.max(w.maxMs, ms);
    if (m[2]!.startsWith('Mark')) w.full++;
  }
  return out;
}

async function oneRun(c: Contender, work: string): Promise<RunResult> {
  const port = await freePort();
  // Below the ephemeral range (32768+), where the sinks' ports come from: a peer port inside the relay range is refused (403).
  const minPort = 20000 + Math.floor(Math.random() * 11000);
  const maxPort = minPort + 999;
  const started = await c.start(port, minPort, maxPort, work);
  const gcLog = c.gcLog?.(work);
  const sinks: ChildProcess[] = [];
  const startSink = async (echo: boolean) => {
    const sinkPort = await freePort();
    const sink = spawn(join(BIN_DIR, 'sink'), ['--bind', at(sinkPort), ...(echo ? ['--echo'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    sinks.push(sink);
    let out = '';
    sink.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await sleep(100);
    return {
      port: sinkPort,
      async stop(): Promise<{ packets: number }> {
        const done = new Promise<void>((r) => sink.once('exit', () => r()));
        sink.kill('SIGTERM');
        await done;
        return JSON.parse(out) as { packets: number };
      },
    };
  };
  const flows = async (peerPort: number) => {
    const setup = JSON.parse(
      await run(process.execPath, [
        '--import', 'tsx', join(root, 'bench/turn-driver.ts'),
        '--mode', 'flows', '--server', at(port), '--peer', at(peerPort), '--secret', SECRET,
        '--count', String(FLOWS), '--bind-address', HOST, '--family', String(FAMILY),
      ]),
    ) as { flows: { port: number; channel: number }[] };
    return setup.flows.map((f) => `${f.port}:${f.channel}`).join(',');
  };
  const flood = async (flowSpec: string, extra: string[], seconds: number) =>
    JSON.parse(
      await run(join(BIN_DIR, 'flood'), [
        '--server', at(port), '--flows', flowSpec, '--size', String(SIZE), '--seconds', String(seconds),
        '--batch', values.batch!, '--bind', HOST, '--family', String(FAMILY), ...extra,
      ]),
    ) as { sent: number; elapsed_s: number; echoed?: number; rtt_us?: { p50: number; p99: number } };
  try {
    const sink = await startSink(false);
    const flowSpec = await flows(sink.port);
    const roles = started.roles();
    const pids = Object.values(roles);
    const before = cpuSnapshot(pids);
    const roleBefore = Object.fromEntries(Object.entries(roles).map(([k, p]) => [k, ticksOf(p)]));
    const gc0 = fileSize(gcLog);
    const floodOut = await flood(flowSpec, ['--rate', String(RATE)], SECONDS);
    const gcFlood = gcBetween(gcLog, gc0, fileSize(gcLog), roles, floodOut.elapsed_s);
    await sleep(300); // let queues drain into the sink
    const after = cpuSnapshot(pids);
    const perRoleTicks = Object.fromEntries(Object.entries(roles).map(([k, p]) => {
      const [u, s] = ticksOf(p);
      return [k, [u - roleBefore[k]![0], s - roleBefore[k]![1]] as const];
    }));
    const got = await sink.stop();
    const cpu = cpuDelta(before, after);
    const relayed = got.packets;
    const result: RunResult = {
      offeredPps: floodOut.sent / floodOut.elapsed_s,
      relayedPps: relayed / floodOut.elapsed_s,
      loss: floodOut.sent > 0 ? 1 - relayed / floodOut.sent : 0,
      cpuUsPerPacket: relayed > 0 ? (cpu.processSeconds * 1e6) / relayed : NaN,
      perRole: Object.fromEntries(Object.entries(perRoleTicks).map(([k, [u, s]]) => [k, relayed > 0 ? ((u + s) * 1e4) / relayed : NaN])),
      perRoleSys: Object.fromEntries(Object.entries(perRoleTicks).map(([k, [, s]]) => [k, relayed > 0 ? (s * 1e4) / relayed : NaN])),
      gcFlood,
    };
    if (RTT_RATE > 0) {
      // New allocations towards an echoing sink: the flood's bindings point at a sink that is gone.
      const echo = await startSink(true);
      const echoFlows = await flows(echo.port);
      await sleep(300);
      const g0 = fileSize(gcLog);
      const dump = process.env.TP_BENCH_RTT_DUMP ? ['--dump', join(process.env.TP_BENCH_RTT_DUMP, `rtt-${c.name.replace(/\W+/g, '_')}-${process.pid}-${Date.now()}.txt`)] : [];
      const r = await flood(echoFlows, ['--rate', String(RTT_RATE), '--echo', ...dump], Math.min(3, SECONDS));
      await echo.stop();
      result.rtt = {
        p50: r.rtt_us?.p50 ?? NaN,
        p99: r.rtt_us?.p99 ?? NaN,
        lossPct: r.sent > 0 ? (1 - (r.echoed ?? 0) / r.sent) * 100 : 100,
        gc: gcBetween(gcLog, g0, fileSize(gcLog), roles, r.elapsed_s),
      };
    }
    return result;
  } finally {
    // A failed run leaves its sinks running; they would keep this process alive.
    for (const s of sinks) if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
    await stopChild(started.child);
  }
}

function stat(xs: number[]): { med: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { med: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]! };
}

/** `name`, `name+KEY=VALUE+KEY=VALUE` (extra environment) or `name@DIR` (that checkout's build). */
function contender(spec: string): Contender {
  const [name, ...sets] = spec.split('+');
  const [base, checkout] = name!.split('@');
  const c = contenders[base!];
  if (!c) throw new Error(`unknown contender ${base} (have ${Object.keys(contenders).join(', ')})`);
  if (checkout) return { ...contender([base, ...sets].join('+')), name: `${c.name} @${checkout}${sets.length ? ` ${sets.join(' ')}` : ''}`, checkout };
  if (sets.length === 0) return c;
  const env = Object.fromEntries(sets.map((kv) => {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`contender ${spec}: expected +KEY=VALUE, got +${kv}`);
    return [kv.slice(0, i), kv.slice(i + 1)];
  }));
  return { ...c, name: `${c.name} ${sets.join(' ')}`, env };
}

/** "role ms/s (max ms, full N)" for the roles that paused. */
function gcText(ws: Record<string, GcWindow>[]): string {
  const roles = [...new Set(ws.flatMap((w) => Object.keys(w)))].filter((r) => r !== 'launcher');
  if (roles.length === 0) return '-';
  return roles.map((r) => {
    const per = stat(ws.map((w) => w[r]?.msPerS ?? 0)).med;
    const max = Math.max(...ws.map((w) => w[r]?.maxMs ?? 0));
    const full = ws.reduce((a, w) => a + (w[r]?.full ?? 0), 0);
    return `${r} ${per.toFixed(1)} (max ${max.toFixed(1)}${full ? `, ${full} full` : ''})`;
  }).join(', ');
}

async function main(): Promise<void> {
  ensureBinaries();
  const specs = values.contenders!.split(',').map((s) => s.trim()).filter(Boolean);
  const chosen = specs.map(contender);
  const rows: { name: string; runs: RunResult[] }[] = [];
  for (const c of chosen) {
    const runs: RunResult[] = [];
    for (let r = 0; r < RUNS; r++) {
      const work = mkdtempSync(join(tmpdir(), 'tp-uspath-'));
      chmodSync(work, 0o711); // the pair's relay runs as an unprivileged user and must reach the link socket
      try {
        const res = await oneRun(c, work);
        runs.push(res);
        progress(`${c.name} run ${r + 1}/${RUNS}: offered ${(res.offeredPps / 1000).toFixed(1)}k pps, relayed ${(res.relayedPps / 1000).toFixed(1)}k pps, ` +
          `loss ${(res.loss * 100).toFixed(1)}%, ${res.cpuUsPerPacket.toFixed(2)} CPU-us/pkt, by process (of it kernel): ` +
          Object.entries(res.perRole).map(([k, v]) => `${k} ${v.toFixed(2)} (${res.perRoleSys[k]!.toFixed(2)})`).join(', ') +
          `; GC ms/s ${gcText([res.gcFlood])}` +
          (res.rtt ? `; RTT at ${RTT_RATE} pps p50 ${res.rtt.p50.toFixed(0)} us p99 ${res.rtt.p99.toFixed(0)} us, echo loss ${res.rtt.lossPct.toFixed(2)}%, GC ms/s ${gcText([res.rtt.gc])}` : ''));
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
  console.log(`\nuserspace path on loopback (IPv${FAMILY}): ${FLOWS} flows, ${SIZE} B payload, ${SECONDS} s x ${RUNS} runs, offered ${RATE === 0 ? 'as fast as possible' : `${RATE} pps`}; node ${process.version}; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const rttCols = RTT_RATE > 0 ? ` RTT p50 / p99 us at ${RTT_RATE / 1000}k pps | GC ms/s at ${RTT_RATE / 1000}k pps |` : '';
  console.log(`| contender | relayed kpps (min-max) | x coturn | loss % | CPU-us/pkt (min-max) | x coturn | per process CPU-us/pkt | GC ms/s under flood |${rttCols}`);
  console.log(`|---|---|---|---|---|---|---|---|${RTT_RATE > 0 ? '---|---|' : ''}`);
  const fmt = (s: { med: number; min: number; max: number }, d: number, k = 1) => `${(s.med / k).toFixed(d)} (${(s.min / k).toFixed(d)}-${(s.max / k).toFixed(d)})`;
  for (const row of rows) {
    const pps = stat(row.runs.map((r) => r.relayedPps));
    const cpu = stat(row.runs.map((r) => r.cpuUsPerPacket));
    const loss = stat(row.runs.map((r) => r.loss * 100));
    const roles = Object.keys(row.runs[0]!.perRole);
    const per = roles.map((k) => `${k} ${stat(row.runs.map((r) => r.perRole[k] ?? NaN)).med.toFixed(2)}`).join(', ');
    const gc = row.name.startsWith('coturn') ? 'n/a' : gcText(row.runs.map((r) => r.gcFlood));
    let rtt = '';
    if (RTT_RATE > 0) {
      const withRtt = row.runs.filter((r) => r.rtt);
      const p50 = stat(withRtt.map((r) => r.rtt!.p50));
      const p99 = stat(withRtt.map((r) => r.rtt!.p99));
      rtt = ` ${fmt(p50, 0)} / ${fmt(p99, 0)} | ${row.name.startsWith('coturn') ? 'n/a' : gcText(withRtt.map((r) => r.rtt!.gc))} |`;
    }
    console.log(`| ${row.name} | ${fmt(pps, 1, 1000)} | ${refPps ? (pps.med / refPps).toFixed(2) : '-'} | ${loss.med.toFixed(1)} | ${fmt(cpu, 2)} | ${refCpu ? (cpu.med / refCpu).toFixed(2) : '-'} | ${per} | ${gc} |${rtt}`);
  }
}

main()
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => rmSync(BIN_DIR, { recursive: true, force: true }));
