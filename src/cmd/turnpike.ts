// `npm start`: runs the pair on one host. The sidecar (this process's
// privileges: sockets, XDP, telemetry) and the relay (dropped to an
// unprivileged user when started as root) run as two child processes joined
// by the link socket. Each is restarted with backoff if it dies; SIGTERM or
// SIGINT stops both (relay first, so the sidecar can clear its maps).
// In production, deploy/systemd runs the two as separate units instead.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, extname } from 'node:path';
import { loadConfig, ConfigError } from '../config/load.ts';
import { linkSocketPath, readableBy, stateDir } from '../config/paths.ts';
import { createLogHub } from '../shared/logger.ts';
import { ensureCredentials } from '../relay/defaults.ts';

const here = dirname(fileURLToPath(import.meta.url));
const ext = extname(fileURLToPath(import.meta.url)); // .ts under tsx, .js when built
const argv = process.argv.slice(2);

let loaded;
try {
  loaded = loadConfig({ argv });
} catch (e) {
  if (e instanceof ConfigError) {
    process.stderr.write(`turnpike: ${e.message}\n`);
    process.exit(2);
  }
  throw e;
}
const { config } = loaded;
const hub = createLogHub({ filter: config.log, name: 'turnpike', base: { process: 'launcher' } });
const log = hub.get('launcher');

const dir = stateDir(config);
mkdirSync(dir, { recursive: true, mode: 0o711 });

const isRoot = process.getuid?.() === 0;
function resolveUser(user: string): { uid: number; gid: number } | undefined {
  try {
    const uid = /^\d+$/.test(user) ? Number(user) : Number(execFileSync('id', ['-u', user]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', String(uid)]).toString().trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}
const relayIdentity = isRoot ? resolveUser(config.relayUser) : undefined;
if (isRoot && !relayIdentity) {
  log.fatal({ relayUser: config.relayUser }, 'relay user does not exist; set TURNPIKE_RELAY_USER to an unprivileged user');
  process.exit(2);
}
// The relay loads its code as that user: an install it cannot read (e.g. a
// checkout under a 0700 directory) would only crash-loop, so say why now.
const relayEntry = join(here, `relay${ext}`);
if (relayIdentity && !readableBy(relayEntry, relayIdentity.uid, relayIdentity.gid)) {
  log.fatal(
    { relayUser: config.relayUser, file: relayEntry },
    'the relay user cannot read the installation; make it readable (directories o+x, files o+r) or set TURNPIKE_RELAY_USER',
  );
  process.exit(2);
}

// The relay (another user) connects to the link socket: the directories on
// its path must be searchable by others. The socket itself is 0660, owned by
// the relay's group, so traversal alone grants nothing else.
if (relayIdentity) {
  for (const d of new Set([dir, dirname(linkSocketPath(config))])) {
    mkdirSync(d, { recursive: true, mode: 0o711 });
    const mode = statSync(d).mode & 0o7777;
    if ((mode & 0o001) === 0) {
      chmodSync(d, mode | 0o111);
      log.info({ dir: d, mode: (mode | 0o111).toString(8) }, 'made the directory searchable so the relay user can reach the link socket');
    }
  }
}

// Credentials are settled here (as the launcher may be root and the relay is
// not): a generated REST secret is handed to the relay through its environment.
const creds = ensureCredentials(config, dir, log);
const relayEnv: NodeJS.ProcessEnv = { ...process.env, TURNPIKE_RELAY_TRANSPORT: 'sidecar', TURNPIKE_STATE_DIR: dir };
if (creds.generatedSecret) relayEnv.TURNPIKE_REST_SECRET = creds.generatedSecret;
const sidecarEnv: NodeJS.ProcessEnv = { ...process.env, TURNPIKE_STATE_DIR: dir };
if (relayIdentity) sidecarEnv.TURNPIKE_RELAY_GID = String(relayIdentity.gid);

interface Child {
  name: 'sidecar' | 'relay';
  file: string;
  env: NodeJS.ProcessEnv;
  identity?: { uid: number; gid: number };
  proc?: ChildProcess;
  restarts: number;
  startedAt: number;
}

const children: Child[] = [
  { name: 'sidecar', file: join(here, `sidecar${ext}`), env: sidecarEnv, restarts: 0, startedAt: 0 },
  { name: 'relay', file: relayEntry, env: relayEnv, identity: relayIdentity, restarts: 0, startedAt: 0 },
];
let stopping = false;

function start(c: Child): void {
  c.startedAt = Date.now();
  const proc = spawn(process.execPath, [...process.execArgv, c.file, ...argv], {
    env: c.env,
    stdio: ['ignore', 'inherit', 'inherit'],
    ...(c.identity ?? {}),
  });
  c.proc = proc;
  log.info({ child: c.name, pid: proc.pid, uid: c.identity?.uid ?? process.getuid?.() }, 'started');
  proc.on('exit', (code, signal) => {
    c.proc = undefined;
    if (stopping) return;
    // A child that ran a while restarts at once; one that keeps failing backs off up to 30 s.
    c.restarts = Date.now() - c.startedAt > 30_000 ? 0 : c.restarts + 1;
    const delay = Math.min(30_000, 250 * 2 ** Math.min(c.restarts, 7));
    if (code === 2) {
      log.fatal({ child: c.name, code }, 'child refused its configuration; stopping');
      void stop(2);
      return;
    }
    log.error({ child: c.name, code, signal, restartInMs: delay }, 'child exited; restarting');
    setTimeout(() => !stopping && start(c), delay).unref();
  });
}

async function stop(exitCode: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const name of ['relay', 'sidecar'] as const) {
    const c = children.find((x) => x.name === name)!;
    const p = c.proc;
    if (!p) continue;
    p.kill('SIGTERM');
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        p.kill('SIGKILL');
        resolve();
      }, 5000);
      p.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
  log.info('stopped');
  process.exit(exitCode);
}

process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => void stop(0));
// The relay starts once the sidecar listens (it would retry with backoff
// anyway, but then its first lines are connection failures).
start(children[0]!);
const socketPath = linkSocketPath(config);
const since = Date.now();
const waitForSocket = setInterval(() => {
  if (stopping) return clearInterval(waitForSocket);
  if (existsSync(socketPath) || Date.now() - since > 10_000) {
    clearInterval(waitForSocket);
    start(children[1]!);
  }
}, 50);
