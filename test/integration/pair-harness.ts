// Runs the turnpike pair (`src/cmd/turnpike.ts`: the launcher, which starts the
// sidecar and the relay) inside the relay namespace of a test topology, the
// way an operator runs `npm start` on a host. The launcher is started with
// nsenter, not `ip netns exec`: the latter remounts /sys, and pins made in
// bpffs by the sidecar would vanish with the process (the fast path must
// outlive a sidecar restart).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, chmodSync, readdirSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { before, after, type TestContext } from 'node:test';
import { createTopology, type Topology, type Role } from '../helpers/netns.ts';
import { readPinnedBindings } from '../../src/sidecar/bpf/bindings.ts';
import { libbpf } from '../../src/sidecar/bpf/libbpf.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { hasCommand, relayUserForTests, requireCapability, requireRoot } from '../helpers/env.ts';

const execFileP = promisify(execFile);
export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export const USER = 'e2e';
export const PASS = 'e2e-password';

export interface PairOptions {
  ebpf: 'off' | 'auto' | 'required';
  /** As `npm start` on a fresh host: no eBPF mode, interface, attach mode or public addresses set (only what the test network needs). */
  bare?: boolean;
  xdpMode?: 'native' | 'skb';
  keepPinned?: boolean;
  env?: Record<string, string>;
  /** Run the built launcher (dist/, as `npm start` does) instead of the sources under tsx. */
  built?: boolean;
}

export interface LogLine {
  process?: string;
  module?: string;
  msg?: string;
  level?: number;
  [k: string]: unknown;
}

export interface Pair {
  readonly listenPort: number;
  readonly stateDir: string;
  readonly pinDir: string;
  output(): string;
  lines(): LogLine[];
  /** The current pid of a child, from the launcher's latest "started" line. */
  childPid(name: 'sidecar' | 'relay'): number | undefined;
  /** Waits until the launcher has (re)started the child `count` times in all. */
  waitForStart(name: 'sidecar' | 'relay', count: number, ms?: number): Promise<number>;
  /** GET on the admin HTTP server inside the relay namespace. */
  get(path: string): Promise<{ status: number; body: string }>;
  status(): Promise<Status>;
  /** The environment the pair was started with (to start a lone sidecar on the same pins). */
  readonly env: Readonly<Record<string, string>>;
  /** SIGKILLs the launcher and both children at once, leaving pins and the state dir (a host crash). */
  killAll(): Promise<void>;
  waitReady(ms?: number): Promise<void>;
  /** Sends a signal to the launcher (stop() still cleans up after). */
  signal(sig: NodeJS.Signals): void;
  /** Resolves with the launcher's exit code once it exited, or undefined after `ms`. */
  exited(ms: number): Promise<number | null | undefined>;
  /** One Allocate from the client namespace (test/integration/fixtures/allocate.ts): its success or error code. */
  tryAllocate(topo: Topology): Promise<{ ok: boolean; code?: number }>;
  /** SIGTERM to the launcher; reports how it ended and what it left behind, then removes the leftovers. */
  stop(): Promise<StopReport>;
}

export interface StopReport {
  exitCode: number | null;
  /** Entries left in the pin directory after the pair exited. */
  pinsLeft: string[];
  /** Bindings left in the pinned channel map (undefined: the map is not pinned). */
  channelEntriesLeft?: number;
}

/** The parts of GET /status the tests read. */
export interface Status {
  mode: 'xdp' | 'userspace';
  maps: Record<string, { entries: number; capacity: number }>;
  kernel: { paths: { path: string; packets: string | number; bytes: string | number }[]; reasons: Record<string, string | number> } | null;
  relay: { relayConnected: boolean; packetsToRelay: number; packetsFromRelay: number; resyncs: number; disconnectCleanups: number };
  relayCounters?: { channels: number; allocations: number; relayed: { toPeer: { packets: number }; toClient: { packets: number } } } | null;
  /** The sidecar's userspace fast path (issue 13). */
  fastPath?: { paths: Record<string, { packets: number; bytes: number }> } | null;
  [k: string]: unknown;
}

export const nsPath = (topo: Topology, role: Role) => `/run/netns/${topo.ns[role]}`;

/** Runs a command in a namespace via nsenter (no /sys remount). */
export async function inNs(topo: Topology, role: Role, cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
  const { stdout } = await execFileP('nsenter', [`--net=${nsPath(topo, role)}`, cmd, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 });
  return stdout;
}

export { sleep, waitUntil };

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function startPair(topo: Topology, opts: PairOptions): Promise<Pair> {
  // The pin directory is per listen port and bpffs is global, so a random
  // listen port keeps parallel runs (and other helpers' tests) apart.
  const listenPort = randomInt(21000, 29000);
  const stateDir = mkdtempSync(join(tmpdir(), 'tp-e2e-'));
  // The relay runs as nobody and must reach the link socket inside.
  chmodSync(stateDir, 0o711);
  const pinDir = `/sys/fs/bpf/turnpike-${listenPort}`;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? '/root',
    TURNPIKE_LISTEN_PORT: String(listenPort),
    ...(opts.bare ? {} : { TURNPIKE_PUBLIC_IPV4: topo.addr.relay4 }),
    ...(topo.addr.relay6 && !opts.bare ? { TURNPIKE_PUBLIC_IPV6: topo.addr.relay6 } : {}),
    TURNPIKE_ALLOWED_PEERS: [topo.addr.subnet4, topo.addr.subnet6].filter(Boolean).join(','),
    TURNPIKE_USERS: `${USER}:${PASS}`,
    TURNPIKE_REALM: 'e2e',
    ...(opts.bare ? {} : { TURNPIKE_EBPF: opts.ebpf }),
    TURNPIKE_STATE_DIR: stateDir,
    TURNPIKE_ADMIN: '127.0.0.1:9469',
    TURNPIKE_LOG: 'info',
    TURNPIKE_RELAY_USER: relayUserForTests(),
    ...(opts.ebpf !== 'off' && !opts.bare ? { TURNPIKE_INTERFACE: topo.dev.relay, TURNPIKE_XDP_MODE: opts.xdpMode ?? 'native' } : {}),
    ...(opts.keepPinned ? { TURNPIKE_KEEP_PINNED: 'true' } : {}),
    ...opts.env,
  };
  const entry = opts.built ? ['dist/src/cmd/turnpike.js'] : ['--import', 'tsx', 'src/cmd/turnpike.ts'];
  const proc: ChildProcess = spawn('nsenter', [`--net=${nsPath(topo, 'relay')}`, process.execPath, ...entry], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const lines = (): LogLine[] =>
    out.split('\n').flatMap((l) => {
      if (!l.startsWith('{')) return [];
      try {
        return [JSON.parse(l) as LogLine];
      } catch {
        return [];
      }
    });
  const starts = (name: string) => lines().filter((l) => l.msg === 'started' && l.child === name);
  const childPid = (name: 'sidecar' | 'relay') => starts(name).at(-1)?.pid as number | undefined;
  const seenPids = new Set<number>();

  const get = async (path: string) => {
    const raw = await inNs(topo, 'relay', 'curl', ['-s', '-m', '3', '-w', '\n%{http_code}', `http://127.0.0.1:9469${path}`]);
    const i = raw.lastIndexOf('\n');
    return { status: Number(raw.slice(i + 1)), body: raw.slice(0, i) };
  };

  const pair: Pair = {
    listenPort,
    stateDir,
    pinDir,
    output: () => out,
    lines,
    childPid,
    async waitForStart(name, count, ms = 20_000) {
      return waitUntil(`${name} start #${count}`, () => {
        const s = starts(name);
        for (const l of s) seenPids.add(l.pid as number);
        return s.length >= count ? (s.at(-1)!.pid as number) : undefined;
      }, ms);
    },
    get,
    async status() {
      const r = await get('/status');
      if (r.status !== 200) throw new Error(`/status answered ${r.status}: ${r.body}`);
      return JSON.parse(r.body) as Status;
    },
    async waitReady(ms = 30_000) {
      await waitUntil('/readyz 200', async () => {
        if (proc.exitCode !== null) throw new Error(`launcher exited with ${proc.exitCode}:\n${out.slice(-3000)}`);
        return (await get('/readyz')).status === 200 || undefined;
      }, ms, 200).catch((e: Error) => {
        throw new Error(`${e.message}\n--- pair output (tail) ---\n${out.split('\n').slice(-30).join('\n')}`);
      });
    },
    env,
    signal(sig) {
      proc.kill(sig);
    },
    async exited(ms) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      return Promise.race([new Promise<number | null>((r) => proc.once('exit', (code) => r(code))), sleep(ms).then(() => undefined)]);
    },
    async tryAllocate(topo) {
      const args = { server: topo.addr.relay4, port: listenPort, username: USER, password: PASS };
      const out = await inNs(topo, 'client', process.execPath, ['--import', 'tsx', join(repoRoot, 'test/integration/fixtures/allocate.ts'), JSON.stringify(args)], 20_000);
      return JSON.parse(out.trim().split('\n').at(-1)!) as { ok: boolean; code?: number };
    },
    async killAll() {
      const pids = [proc.pid, childPid('sidecar'), childPid('relay')].filter((p): p is number => p !== undefined);
      for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
      await waitUntil('pair processes gone', () => pids.every((p) => !alive(p)) || undefined, 5000, 20);
    },
    async stop() {
      for (const l of starts('sidecar').concat(starts('relay'))) seenPids.add(l.pid as number);
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(12_000)]);
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      }
      // Children of a launcher that did not stop cleanly must not outlive the test.
      for (const pid of seenPids) if (alive(pid)) process.kill(pid, 'SIGKILL');
      const pinsLeft = existsSync(pinDir) ? readdirSync(pinDir) : [];
      const report: StopReport = { exitCode: proc.exitCode, pinsLeft };
      if (pinsLeft.includes('tp_chan_to_peer')) {
        report.channelEntriesLeft = readPinnedBindings(libbpf(), pinDir).chanToPeer.length;
      }
      if (existsSync(pinDir)) rmSync(pinDir, { recursive: true, force: true });
      rmSync(stateDir, { recursive: true, force: true });
      return report;
    },
  };
  return pair;
}

/** Reads the UDP InCsumErrors counter of a namespace (Udp and Udp6 summed). */
export async function udpCsumErrors(topo: Topology, role: Role): Promise<number> {
  const snmp = await inNs(topo, role, 'cat', ['/proc/net/snmp']);
  const snmp6 = await inNs(topo, role, 'cat', ['/proc/net/snmp6']);
  const header = snmp.split('\n').find((l) => l.startsWith('Udp: In'))!.split(/\s+/);
  const values = snmp.split('\n').filter((l) => l.startsWith('Udp: ')).at(-1)!.split(/\s+/);
  const v4 = Number(values[header.indexOf('InCsumErrors')]);
  const v6 = Number(/^Udp6InCsumErrors\s+(\d+)/m.exec(snmp6)?.[1] ?? 0);
  return v4 + v6;
}

/** Turns checksum offload off (tx and rx) on every veth end, so each receiver verifies every checksum. */
export async function strictChecksums(topo: Topology): Promise<void> {
  for (const role of ['client', 'relay', 'peer'] as const) {
    await inNs(topo, role, 'ethtool', ['-K', topo.dev[role], 'tx', 'off', 'rx', 'off']);
    await inNs(topo, 'switch', 'ethtool', ['-K', topo.bridgePort[role], 'tx', 'off', 'rx', 'off']);
  }
}

export interface FlowTick {
  now: number;
  sent: number;
  received: number;
}

/** What a paced flow reports when it stops: echo silences and lost datagrams (runs of send times), epoch ms. */
export interface FlowDone {
  sent: number;
  received: number;
  silences?: { from: number; to: number }[];
  lost?: { from: number; to: number; count: number }[];
  /** Send time and echo time (0: none) of each datagram, by sequence number. */
  sentAt?: number[];
  echoAt?: number[];
}

export interface Flow {
  /** Resolves once the channel is bound (rejects if the fixture exits first). */
  bound: Promise<{ relayed: { address: string; port: number } }>;
  ticks(): FlowTick[];
  /** Echoes received by the latest tick. */
  received(): number;
  output(): string;
  stop(): Promise<FlowDone | undefined>;
}

/** A steady ChannelData flow (test/integration/fixtures/flow.ts) from the client namespace to an echo peer. */
export function startFlow(topo: Topology, pair: Pair, opts: { family?: 4 | 6; peerPort: number; rate?: number; send?: boolean }): Flow {
  const v6 = opts.family === 6;
  const args = {
    server: v6 ? topo.addr.relay6 : topo.addr.relay4,
    port: pair.listenPort,
    username: USER,
    password: PASS,
    peer: v6 ? topo.addr.peer6 : topo.addr.peer4,
    peerPort: opts.peerPort,
    rate: opts.rate ?? 200,
    ...(opts.send ? { send: true } : {}),
  };
  const proc = spawn('nsenter', [`--net=${nsPath(topo, 'client')}`, process.execPath, '--import', 'tsx', 'test/integration/fixtures/flow.ts', JSON.stringify(args)], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const ticks: FlowTick[] = [];
  let done: FlowDone | undefined;
  let resolveBound!: (v: { relayed: { address: string; port: number } }) => void;
  let rejectBound!: (e: Error) => void;
  const bound = new Promise<{ relayed: { address: string; port: number } }>((res, rej) => ((resolveBound = res), (rejectBound = rej)));
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const m = JSON.parse(line) as { event: string } & FlowTick & FlowDone & { relayed: { address: string; port: number } };
        if (m.event === 'bound') resolveBound({ relayed: m.relayed });
        else if (m.event === 'tick') ticks.push({ now: m.now, sent: m.sent, received: m.received });
        else if (m.event === 'done') done = { sent: m.sent, received: m.received, silences: m.silences, lost: m.lost, sentAt: m.sentAt, echoAt: m.echoAt };
      } catch {
        // not a JSON line
      }
    }
  });
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  proc.once('exit', (code) => rejectBound(new Error(`flow exited (${code}) before binding:\n${out.slice(-2000)}`)));
  return {
    bound,
    ticks: () => ticks,
    received: () => ticks.at(-1)?.received ?? 0,
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(3000)]);
        if (proc.exitCode === null) proc.kill('SIGKILL');
      }
      return done;
    },
  };
}

/** Starts `src/cmd/sidecar.ts` alone (no launcher, no relay) in the relay namespace. */
export function startLoneSidecar(topo: Topology, env: Record<string, string>): { output(): string; proc: ChildProcess; stop(): Promise<void> } {
  const proc = spawn('nsenter', [`--net=${nsPath(topo, 'relay')}`, process.execPath, '--import', 'tsx', 'src/cmd/sidecar.ts'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return {
    proc,
    output: () => out,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(8000)]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
}

/** The UDP echo peer (coturn's turnutils_peer) the uclient-through-the-pair tests relay to. */
export const ECHO_PEER_PORT = 3480;

/**
 * A topology with coturn's echo peer running, made before the file's tests and
 * destroyed after them; `gate(t)` returns it, or undefined after recording why
 * the test cannot run (a skip, which CI=true turns into a failure).
 */
export function echoPeerTopology(prefix: string): { gate(t: TestContext): Topology | undefined } {
  const haveTools = hasCommand('turnutils_uclient') && hasCommand('turnutils_peer') && hasCommand('nsenter') && hasCommand('curl');
  let topo: Topology | undefined;
  before(async () => {
    if (!(process.getuid?.() === 0 && haveTools)) return;
    topo = await createTopology({ prefix, ipv6: false });
    await topo.enableRelayXdpTx();
    topo.spawn('peer', 'turnutils_peer', ['-p', String(ECHO_PEER_PORT), '-L', topo.addr.peer4]);
    await sleep(300);
  });
  after(async () => {
    await topo?.destroy();
  });
  return {
    gate(t) {
      if (!requireRoot(t) || !requireCapability(t, haveTools && topo !== undefined, 'needs coturn (turnutils_uclient, turnutils_peer), nsenter and curl')) return undefined;
      return topo;
    },
  };
}

/** Runs `run` against a pair with XDP native required, ready; its output's tail goes to the test's diagnostics on failure; always stopped. */
export async function withXdpPair(t: TestContext, topo: Topology, run: (pair: Pair) => Promise<void>, env?: Record<string, string>): Promise<void> {
  const pair = await startPair(topo, { ebpf: 'required', xdpMode: 'native', ...(env ? { env } : {}) });
  try {
    // Generous: on a host busy with other work, two Node processes loading under tsx take a while.
    await pair.waitReady(60_000);
    await run(pair);
  } catch (e) {
    t.diagnostic(`pair output (tail):\n${pair.output().split('\n').slice(-40).join('\n')}`);
    throw e;
  } finally {
    await pair.stop();
  }
}
