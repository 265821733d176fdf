// Runs the real pair on loopback for the telemetry tests: turnpike-sidecar
// (eBPF off: userspace datapath) and turnpike-relay with the sidecar
// transport, as two child processes joined by a link socket in a temporary
// state directory. Each process's stdout is kept apart, so a test can tell
// which process printed a line (relay lines forwarded over the link are
// printed by the sidecar).
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, randomPortRange, repoRoot } from '../interop/harness.ts';
import { METHOD, classify, decodeMessage, encodeMessage, newTransactionId } from '../../src/relay/stun/index.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';

export const USER = 'tele';
export const PASS = 'tele-password';
export const REALM = 'telemetry';

export { sleep, waitUntil };

export async function freeTcpPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface LogLine {
  level?: number;
  process?: string;
  module?: string;
  msg?: string;
  [k: string]: unknown;
}

export interface ProcOut {
  text(): string;
  lines(): LogLine[];
}

function collect(proc: ChildProcess): ProcOut {
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return {
    text: () => out,
    lines: () =>
      out.split('\n').flatMap((l) => {
        if (!l.startsWith('{')) return [];
        try {
          return [JSON.parse(l) as LogLine];
        } catch {
          return [];
        }
      }),
  };
}

async function stopChild(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

export interface PairOptions {
  /** Extra environment for the sidecar (PostHog, Sentry, OTLP settings). */
  sidecarEnv?: Record<string, string>;
  relayEnv?: Record<string, string>;
}

export interface LoopbackPair {
  readonly listenPort: number;
  readonly adminPort: number;
  readonly portRange: { min: number; max: number };
  readonly sidecar: ProcOut;
  readonly relay: ProcOut;
  /** HTTP to the sidecar's admin server. */
  http(method: 'GET' | 'POST', path: string, body?: string): Promise<{ status: number; body: string }>;
  status(): Promise<Record<string, any>>;
  /** Stops the relay first (its last counters go out), then the sidecar. */
  stop(): Promise<void>;
}

export async function startLoopbackPair(opts: PairOptions = {}): Promise<LoopbackPair> {
  const listenPort = await freePort();
  const adminPort = await freeTcpPort();
  const portRange = randomPortRange();
  const stateDir = mkdtempSync(join(tmpdir(), 'tptele-'));
  const base: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    TURNPIKE_LISTEN_PORT: String(listenPort),
    TURNPIKE_LISTEN_ADDRESSES: '127.0.0.1',
    TURNPIKE_PUBLIC_IPV4: '127.0.0.1',
    TURNPIKE_PORT_RANGE: `${portRange.min}-${portRange.max}`,
    TURNPIKE_USERS: `${USER}:${PASS}`,
    TURNPIKE_REALM: REALM,
    TURNPIKE_ALLOWED_PEERS: '127.0.0.0/8',
    TURNPIKE_EBPF: 'off',
    TURNPIKE_STATE_DIR: stateDir,
    TURNPIKE_SOCKET: join(stateDir, 'link.sock'),
    TURNPIKE_ADMIN: `127.0.0.1:${adminPort}`,
    TURNPIKE_LOG: 'info',
  };
  const run = (file: string, env: Record<string, string>) =>
    spawn(process.execPath, ['--import', 'tsx', file], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });

  const sidecarProc = run('src/cmd/sidecar.ts', { ...base, ...opts.sidecarEnv });
  const sidecar = collect(sidecarProc);
  let relayProc: ChildProcess | undefined;
  const cleanup = async () => {
    if (relayProc) await stopChild(relayProc);
    await stopChild(sidecarProc);
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    await waitUntil('sidecar ready', () => {
      if (sidecarProc.exitCode !== null) throw new Error(`sidecar exited ${sidecarProc.exitCode}:\n${sidecar.text()}`);
      return sidecar.lines().some((l) => l.msg === 'sidecar ready');
    }, 20_000);
    relayProc = run('src/cmd/relay.ts', { ...base, TURNPIKE_RELAY_TRANSPORT: 'sidecar', ...opts.relayEnv });
    const relay = collect(relayProc);
    const rp = relayProc;
    await waitUntil('relay connected and resynced', () => {
      if (rp.exitCode !== null) throw new Error(`relay exited ${rp.exitCode}:\n${relay.text()}`);
      return sidecar.lines().some((l) => l.msg === 'relay state resynced');
    }, 20_000);

    // State-changing admin requests carry the token the sidecar keeps in its state directory.
    const token = readFileSync(join(stateDir, 'admin-token'), 'utf8').trim();
    const http = async (method: 'GET' | 'POST', path: string, body?: string) => {
      const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, {
        method,
        ...(body !== undefined ? { body } : {}),
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(5000),
      });
      return { status: res.status, body: await res.text() };
    };
    return {
      listenPort,
      adminPort,
      portRange,
      sidecar,
      relay,
      http,
      async status() {
        const r = await http('GET', '/status');
        if (r.status !== 200) throw new Error(`/status answered ${r.status}`);
        return JSON.parse(r.body) as Record<string, any>;
      },
      stop: cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Sends a STUN Binding request to the listen port; resolves with the mapped port, or undefined without an answer. */
export async function bindingRequest(port: number, timeoutMs = 2000): Promise<number | undefined> {
  const sock = createSocket('udp4');
  try {
    return await new Promise<number | undefined>((resolve) => {
      const tid = newTransactionId();
      const req = encodeMessage({ method: METHOD.BINDING, cls: 'request', transactionId: tid, attributes: {} }, { fingerprint: true });
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      sock.on('message', (buf) => {
        const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
        if (classify(bytes) !== 'stun') return;
        const r = decodeMessage(bytes);
        if (r.kind === 'message' && r.message.cls === 'success' && Buffer.from(r.message.transactionId).equals(Buffer.from(tid))) {
          clearTimeout(timer);
          resolve(r.message.attributes.xorMappedAddress?.port);
        }
      });
      sock.send(req, port, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
}

/** A line with this message and (if given) this field value, printed by `who`. */
export function hasLine(who: ProcOut, msg: string, pred: (l: LogLine) => boolean = () => true): boolean {
  return who.lines().some((l) => l.msg === msg && pred(l));
}
