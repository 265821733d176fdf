// Interop harness: runs coturn's turnutils_uclient against turnutils_peer
// through a relay on loopback and parses uclient's summary. The relay under
// test is turnpike's standalone relay (a child process, as an operator runs
// it) or, with TURNPIKE_INTEROP_SERVER=coturn, coturn's own turnserver, which
// validates the harness itself: the same cases must pass against both.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasCommand } from '../helpers/env.ts';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const serverKind: 'turnpike' | 'coturn' = process.env.TURNPIKE_INTEROP_SERVER === 'coturn' ? 'coturn' : 'turnpike';
export const haveCoturnTools = hasCommand('turnutils_uclient') && hasCommand('turnutils_peer');

function canBind(type: 'udp4' | 'udp6', address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket({ type, ipv6Only: type === 'udp6' });
    s.once('error', () => {
      s.close();
      resolve(false);
    });
    s.bind({ port, address, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A port free on both 127.0.0.1 and ::1, below the ephemeral range so the OS will not hand it out meanwhile. */
export async function freePort(low = 20000, high = 29999): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = randomInt(low, high + 1);
    if ((await canBind('udp4', '127.0.0.1', p)) && (await canBind('udp6', '::1', p))) return p;
  }
  throw new Error('no free UDP port found');
}

/** A small random allocation port range in 10000-19999 (outside the listen-port and ephemeral ranges). */
export function randomPortRange(size = 40): { min: number; max: number } {
  const min = randomInt(10000, 20000 - size);
  return { min, max: min + size - 1 };
}

async function stopChild(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      p.kill('SIGKILL');
    }, 3000);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

/** Sends a datagram and waits for an echo: the peer is ready when it answers. */
function echoes(type: 'udp4' | 'udp6', address: string, port: number, timeoutMs = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket(type);
    const t = setTimeout(() => finish(false), timeoutMs);
    const finish = (ok: boolean) => {
      clearTimeout(t);
      s.close();
      resolve(ok);
    };
    s.on('error', () => finish(false));
    s.on('message', () => finish(true));
    s.send(Buffer.from('ping'), port, address);
  });
}

export interface Peer {
  readonly port: number;
  stop(): Promise<void>;
}

export async function startPeer(): Promise<Peer> {
  const port = await freePort(30000, 32000);
  const proc = spawn('turnutils_peer', ['-p', String(port), '-L', '127.0.0.1', '-L', '::1'], { stdio: 'ignore' });
  for (let i = 0; i < 30; i++) {
    if ((await echoes('udp4', '127.0.0.1', port)) && (await echoes('udp6', '::1', port))) {
      return { port, stop: () => stopChild(proc) };
    }
    if (proc.exitCode !== null) break;
  }
  await stopChild(proc);
  throw new Error(`turnutils_peer did not start on port ${port}`);
}

export interface RelayOptions {
  /** Static users `user:pass`. */
  users?: readonly string[];
  restSecret?: string;
  realm?: string;
  /** Allow loopback peers (denied by default). */
  allowLoopback?: boolean;
  /** Extra environment for turnpike. */
  env?: Record<string, string>;
}

export interface Relay {
  readonly kind: 'turnpike' | 'coturn';
  readonly port: number;
  readonly portRange: { min: number; max: number };
  /** turnpike's state directory (a temporary one, removed on stop). */
  readonly stateDir?: string;
  /** Everything the relay printed (JSON log lines for turnpike). */
  output(): string;
  stop(): Promise<void>;
}

function collect(proc: ChildProcess): () => string {
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return () => out;
}

async function waitFor(what: string, proc: ChildProcess, output: () => string, ready: (out: string) => boolean, ms = 20000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (ready(output())) return;
    if (proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode}:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not become ready in ${ms} ms:\n${output()}`);
}

export async function startTurnpike(opts: RelayOptions = {}): Promise<Relay> {
  const port = await freePort();
  const portRange = randomPortRange();
  const stateDir = mkdtempSync(join(tmpdir(), 'tpinterop-'));
  const env: Record<string, string> = {
    TURNPIKE_STATE_DIR: stateDir,
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    TURNPIKE_LISTEN_PORT: String(port),
    TURNPIKE_LISTEN_ADDRESSES: '127.0.0.1,::1',
    TURNPIKE_PUBLIC_IPV4: '127.0.0.1',
    TURNPIKE_PUBLIC_IPV6: '::1',
    TURNPIKE_PORT_RANGE: `${portRange.min}-${portRange.max}`,
    TURNPIKE_REALM: opts.realm ?? 'interop',
    TURNPIKE_RELAY_TRANSPORT: 'standalone',
    TURNPIKE_LOG: 'info',
    ...(opts.users ? { TURNPIKE_USERS: opts.users.join(',') } : {}),
    ...(opts.restSecret ? { TURNPIKE_REST_SECRET: opts.restSecret } : {}),
    ...(opts.allowLoopback ? { TURNPIKE_ALLOWED_PEERS: '127.0.0.0/8,::1/128' } : {}),
    ...opts.env,
  };
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cmd/relay.ts'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = collect(proc);
  try {
    await waitFor('turnpike relay', proc, output, (o) => o.includes('"msg":"relay ready"'));
  } catch (e) {
    await stopChild(proc);
    rmSync(stateDir, { recursive: true, force: true });
    throw e;
  }
  const stop = async () => {
    await stopChild(proc);
    rmSync(stateDir, { recursive: true, force: true });
  };
  return { kind: 'turnpike', port, portRange, stateDir, output, stop };
}

export async function startCoturn(opts: RelayOptions = {}): Promise<Relay> {
  const port = await freePort();
  const portRange = randomPortRange();
  const args = [
    '-n', '--no-cli', '--no-tls', '--no-dtls', '--log-file', 'stdout', '--simple-log',
    '--listening-port', String(port), '--listening-ip', '127.0.0.1', '--listening-ip', '::1',
    '--relay-ip', '127.0.0.1', '--relay-ip', '::1',
    '--min-port', String(portRange.min), '--max-port', String(portRange.max),
    '--realm', opts.realm ?? 'interop', '--fingerprint',
  ];
  if (opts.restSecret) args.push('--use-auth-secret', '--static-auth-secret', opts.restSecret);
  else args.push('--lt-cred-mech');
  for (const u of opts.users ?? []) args.push('--user', u);
  if (opts.allowLoopback) args.push('--allow-loopback-peers');
  const proc = spawn('turnserver', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = collect(proc);
  try {
    // coturn logs this once its relay threads are up.
    await waitFor('turnserver', proc, output, (o) => /Total (UDP|General) servers/.test(o) || o.includes('IPv6. UDP listener opened on'));
    await new Promise((r) => setTimeout(r, 300));
  } catch (e) {
    await stopChild(proc);
    throw e;
  }
  return { kind: 'coturn', port, portRange, output, stop: () => stopChild(proc) };
}

export const startRelay = (opts: RelayOptions = {}) => (serverKind === 'coturn' ? startCoturn(opts) : startTurnpike(opts));

export interface UclientSummary {
  readonly sent: number;
  readonly received: number;
  readonly lost: number | undefined;
  readonly sendDropped: number | undefined;
  readonly transmitTimeS: number | undefined;
  /** Lines reporting a TURN error response, e.g. "channel bind: error 403 (Forbidden IP)". */
  readonly errors: string[];
  readonly exitCode: number | null;
  readonly output: string;
}

/** Parses uclient's final summary (totals across all sessions). */
export function parseUclient(output: string, exitCode: number | null): UclientSummary {
  const totals = [...output.matchAll(/start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$/gm)].at(-1);
  const lost = /Total lost packets (\d+) \([^)]*\), total send dropped (\d+)/.exec(output);
  const time = /Total transmit time is (\d+)/.exec(output);
  const errors = output.split('\n').filter((l) => /error \d{3}\b/.test(l)).map((l) => l.replace(/^\d+: : /, '').trim());
  return {
    sent: totals ? Number(totals[1]) : 0,
    received: totals ? Number(totals[2]) : 0,
    lost: lost ? Number(lost[1]) : undefined,
    sendDropped: lost ? Number(lost[2]) : undefined,
    transmitTimeS: time ? Number(time[1]) : undefined,
    errors: [...new Set(errors)],
    exitCode,
    output,
  };
}

export interface UclientCase {
  /** Extra uclient flags, e.g. ['-s'], ['-y'], ['-m', '10']. */
  flags?: readonly string[];
  /** Server and peer address family (6 = ::1 and an IPv6 relay via -x). */
  family?: 4 | 6;
  user?: string;
  password?: string;
  restSecret?: string;
  messages?: number;
  length?: number;
  timeoutMs?: number;
}

export function runUclient(relay: Relay, peer: Peer, c: UclientCase): Promise<UclientSummary> {
  const host = c.family === 6 ? '::1' : '127.0.0.1';
  const args = [
    '-p', String(relay.port),
    '-e', host, '-r', String(peer.port),
    '-n', String(c.messages ?? 50), '-l', String(c.length ?? 120),
    ...(c.family === 6 ? ['-x'] : []),
    ...(c.restSecret ? ['-W', c.restSecret] : []),
    ...(c.user ? ['-u', c.user] : []),
    ...(c.password ? ['-w', c.password] : []),
    ...(c.flags ?? []),
    host,
  ];
  return new Promise((resolve) => {
    execFile('turnutils_uclient', args, { timeout: c.timeoutMs ?? 30000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? null) : 0;
      resolve(parseUclient(`${stdout}\n${stderr}`, typeof code === 'number' ? code : null));
    });
  });
}

/** One-line description for assertion messages. */
export function describe(s: UclientSummary): string {
  return `sent=${s.sent} received=${s.received} lost=${s.lost} dropped=${s.sendDropped} time=${s.transmitTimeS}s exit=${s.exitCode} errors=${JSON.stringify(s.errors)}`;
}
