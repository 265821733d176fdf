// `npm start`: runs the pair on one host. The sidecar (this process's
// privileges: sockets, XDP, telemetry) and the relay run as two child
// processes joined by the link socket. Started as root, the relay runs as its
// own user (relayUser, created by scripts/setup.sh), in a network namespace
// of its own with nothing but loopback (the link is a path-based Unix socket,
// which reaches across namespaces), with an environment holding only its own
// settings. TURN over TCP/TLS listens on sockets made here, in this network
// namespace, which the relay inherits and accepts on (relay-streams.ts).
// Each child holds a lifeline pipe from this process and stops when it
// closes, so no child outlives the launcher, whatever killed it. The
// relay's output passes through the launcher, marked as the relay's. A child
// that dies is restarted at once (the userspace path is down until it is
// back), and with backoff only when it keeps dying, up to restartLimit quick
// failures in a row; one that cannot start (bad configuration, eBPF required
// but not loadable, ...) stops the pair with its reason. A sidecar that
// stopped on purpose (exit 0: SIGTERM to it, or a drain that ended) stops the
// pair; one that stopped for an upgrade (SIGUSR2, EXIT_UPGRADE) and a relay
// that stopped cleanly are restarted at once. SIGTERM or SIGINT stops both:
// with a drain deadline the sidecar drains first (readyz 503, new Allocates
// refused, existing ones served until they end or the deadline) and stops,
// then the relay; without one the relay stops first (its state is saved with
// the sidecar), then the sidecar, which clears what the relay held. A second
// signal during a drain stops at once. In production, deploy/systemd runs the
// two as separate units instead.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { delimiter, dirname, join, extname } from 'node:path';
import { loadConfig, ConfigError } from '../config/load.ts';
import { linkSocketPath, readableBy, stateDir } from '../config/paths.ts';
import { relayEnvironment } from '../config/relay-env.ts';
import { resolveUser } from '../config/users.ts';
import { createLogHub } from '../shared/logger.ts';
import { ensureCredentials } from '../relay/defaults.ts';
import { LIFELINE_FD, readLifeline, sendGo } from './lifeline.ts';
import { onChildExit } from './child-exit.ts';
import { passRelayOutput } from './relay-output.ts';
import { openRelayStreams, type RelayStreams } from './relay-streams.ts';
import { idleCommand, wakeUp } from './idle-standby.ts';
import { CHILD_NODE_FLAGS, SIDECAR_NODE_FLAGS, withNodeFlags } from './node-flags.ts';

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
const relayIdentity = isRoot ? resolveUser(config.relayUser) : undefined;
if (isRoot && !relayIdentity) {
  log.fatal(
    { relayUser: config.relayUser },
    'relay user does not exist; `npm start` creates turnpike-relay (scripts/setup.sh), or set TURNPIKE_RELAY_USER to an unprivileged user',
  );
  process.exit(2);
}
if (relayIdentity?.uid === 0) log.warn({ relayUser: config.relayUser }, 'the relay runs as root: privilege separation is off; use a user of its own');
else if (relayIdentity?.uid === 65534) log.warn({ relayUser: config.relayUser }, 'the relay runs as the shared nobody user; a user of its own (turnpike-relay) keeps it apart from other services');
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

/** An executable on the launcher's PATH (the relay's environment has none). */
function onPath(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    try {
      accessSync(join(d, cmd), constants.X_OK);
      return join(d, cmd);
    } catch {
      // not here
    }
  }
  return undefined;
}

// As root the relay gets a network namespace of its own (unshare from
// util-linux), entered before it drops to its user: say now if that fails.
const unshare = relayIdentity ? onPath('unshare') : undefined;
if (relayIdentity) {
  try {
    if (!unshare) throw new Error('unshare (util-linux) not found on PATH');
    execFileSync(unshare, ['--net', '--', 'true'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const reason = (e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message;
    log.fatal({ reason }, 'cannot give the relay a network namespace of its own (unshare --net)');
    process.exit(2);
  }
} else {
  log.warn('not started as root: the relay runs as this user, with this network (development only)');
}

// Warm standbys wait under SCHED_IDLE (idle-standby.ts): only a root launcher can wake them back up.
const chrt = isRoot && config.warmStandby ? onPath('chrt') : undefined;

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
// not): a generated REST secret is handed to the relay through its environment,
// which holds the relay's own settings and nothing else of ours.
const creds = ensureCredentials(config, dir, log);
// TURN over TCP/TLS listens here, in this network namespace, and the relay
// inherits the sockets on the slots after its lifeline (relay-streams.ts).
let streams: RelayStreams;
try {
  streams = openRelayStreams(config, LIFELINE_FD + 1, relayIdentity, log);
} catch (e) {
  log.fatal({ reason: (e as Error).message }, 'cannot start the relay');
  process.exit(2);
}
let relayEnv: Record<string, string>;
try {
  relayEnv = relayEnvironment({
    ...config,
    ...(streams.entries.length > 0 ? { streamFds: streams.entries } : {}),
    stateDir: dir,
    socket: linkSocketPath(config),
    relayTransport: 'sidecar',
    lifelineFd: LIFELINE_FD,
    ...(creds.generatedSecret ? { restSecret: creds.generatedSecret } : {}),
  });
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  log.fatal({ reason: e.message }, 'cannot start the relay');
  process.exit(2);
}
const sidecarEnv: NodeJS.ProcessEnv = { ...process.env, TURNPIKE_STATE_DIR: dir, TURNPIKE_LIFELINE_FD: String(LIFELINE_FD) };
if (relayIdentity) {
  sidecarEnv.TURNPIKE_RELAY_GID = String(relayIdentity.gid);
  sidecarEnv.TURNPIKE_RELAY_UID = String(relayIdentity.uid);
}

interface Child {
  name: 'sidecar' | 'relay';
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Whether a reason the child writes on its lifeline is read (the sidecar's; the relay may not stop the pair). */
  readsFatal: boolean;
  proc?: ChildProcess;
  restarts: number;
  startedAt: number;
  /** A loaded, idle copy waiting for go (warmStandby), and how often one died in a row while waiting. */
  standby?: Spawned;
  standbyFailures: number;
  standbyTimer?: NodeJS.Timeout;
}

interface Spawned {
  proc: ChildProcess;
  fatalReason: () => string | undefined;
}

const node = withNodeFlags(process.execArgv, CHILD_NODE_FLAGS);
const children: Child[] = [
  { name: 'sidecar', command: process.execPath, args: [...withNodeFlags(node, SIDECAR_NODE_FLAGS), join(here, `sidecar${ext}`), ...argv], env: sidecarEnv, readsFatal: true, restarts: 0, startedAt: 0, standbyFailures: 0 },
  {
    name: 'relay',
    // No argv: flags may hold settings that are not the relay's; its environment has all of its own.
    ...(relayIdentity
      ? { command: unshare!, args: ['--net', `--setgid=${relayIdentity.gid}`, `--setuid=${relayIdentity.uid}`, '--', process.execPath, ...node, relayEntry] }
      : { command: process.execPath, args: [...node, relayEntry] }),
    env: relayEnv,
    readsFatal: false,
    restarts: 0,
    startedAt: 0,
    standbyFailures: 0,
  },
];
let stopping = false;
let waitForSocket: NodeJS.Timeout | undefined;
/**
 * A standby is made this long after its child said it is up, so it does not
 * take CPU from a start still under way (loading a standby while a new
 * sidecar loaded its XDP object doubled that on a busy host). A second crash
 * before then starts cold (or with a standby still loading).
 */
const STANDBY_AFTER_READY_MS = 2000;
/** Standbys that die while waiting, in a row, before the launcher stops making them. */
const STANDBY_FAILURE_LIMIT = 3;

/** Spawns the child's process; as a standby it loads its code and waits for go (awaitGo). */
function spawnChild(c: Child, standby: boolean): Spawned {
  // fd 3 is the lifeline: the child stops when it closes, i.e. when this process is gone.
  // The relay's output goes through us, marked as its own; the sidecar writes ours directly.
  const output = c.name === 'relay' ? 'pipe' : 'inherit';
  const inherited = c.name === 'relay' ? streams.fds : [];
  const env = standby ? { ...c.env, TURNPIKE_AWAIT_GO: 'true' } : c.env;
  const { command, args } = standby && chrt ? idleCommand(chrt, c.command, c.args) : c;
  const proc = spawn(command, args, { env, stdio: ['ignore', output, output, 'pipe', ...inherited] });
  if (c.name === 'relay') passRelayOutput(proc.stdout!, proc.stderr!, hub, log);
  const lifeline = proc.stdio[LIFELINE_FD] as NodeJS.ReadableStream;
  // Once the child is up (its start-up no longer needs the CPU), a standby for it may load.
  const said = readLifeline(lifeline, () => c.proc === proc && scheduleStandby(c));
  const fatalReason = c.readsFatal ? said : () => undefined;
  proc.on('exit', (code, signal) => {
    if (c.standby?.proc !== proc) return;
    c.standby = undefined;
    if (stopping) return;
    c.standbyFailures++;
    log.warn({ child: c.name, pid: proc.pid, code, signal, failures: c.standbyFailures }, 'warm standby exited while waiting');
    if (c.standbyFailures < STANDBY_FAILURE_LIMIT) scheduleStandby(c);
    else log.warn({ child: c.name }, 'warm standbys keep exiting: restarts start cold');
  });
  proc.on('error', (e) => {
    if (c.standby?.proc === proc) {
      c.standby = undefined;
      log.warn({ child: c.name, reason: e.message }, 'cannot start a warm standby: restarts start cold');
      return;
    }
    log.fatal({ child: c.name, reason: e.message }, 'cannot start the child; stopping');
    void stop(1, { drain: false });
  });
  return { proc, fatalReason };
}

/** A warm standby for `c`, soon (warmStandby): the next restart skips Node's start-up and the code loading. */
function scheduleStandby(c: Child): void {
  if (!config.warmStandby || stopping || c.standby || c.standbyTimer) return;
  c.standbyTimer = setTimeout(() => {
    c.standbyTimer = undefined;
    if (stopping || c.standby || !c.proc) return;
    c.standby = spawnChild(c, true);
    log.info({ child: c.name, pid: c.standby.proc.pid }, 'warm standby started');
  }, STANDBY_AFTER_READY_MS);
  c.standbyTimer.unref();
}

function start(c: Child): void {
  c.startedAt = Date.now();
  // A waiting standby takes over at once; else a process starts cold.
  const warm = c.standby && c.standby.proc.exitCode === null && c.standby.proc.signalCode === null ? c.standby : undefined;
  c.standby = undefined;
  const { proc, fatalReason } = warm ?? spawnChild(c, false);
  if (warm) {
    // Back to the normal policy before it starts serving.
    if (chrt) {
      const woke = wakeUp(proc.pid!);
      if (woke.error !== undefined) log.warn({ child: c.name, pid: proc.pid, errno: woke.error }, 'could not lift the standby out of SCHED_IDLE');
    }
    sendGo(proc.stdio[LIFELINE_FD] as Writable);
    c.standbyFailures = 0;
  }
  c.proc = proc;
  log.info({ child: c.name, pid: proc.pid, warm: !!warm, uid: c.name === 'relay' ? relayIdentity?.uid ?? process.getuid?.() : process.getuid?.(), ownNetwork: c.name === 'relay' && !!relayIdentity }, 'started');
  proc.on('exit', (code, signal) => {
    if (c.proc !== proc) return;
    c.proc = undefined;
    if (stopping) return;
    const action = onChildExit({
      child: c.name,
      code,
      fatalReason: fatalReason(),
      ranMs: Date.now() - c.startedAt,
      quickFailures: c.restarts,
      restartLimit: config.restartLimit,
    });
    if (action.do === 'stop-pair') {
      const fields = { child: c.name, code, signal, reason: fatalReason(), restarts: c.restarts, restartLimit: config.restartLimit };
      if (action.exitCode === 0) log.info(fields, `${action.why}; stopping the pair`);
      else log.fatal(fields, `${action.why}; stopping`);
      void stop(action.exitCode, { drain: false });
      return;
    }
    c.restarts = action.quickFailures;
    if (action.crashed) log.error({ child: c.name, code, signal, restartInMs: action.delayMs }, 'child exited; restarting');
    else log.info({ child: c.name, code, signal }, 'child stopped to be replaced; restarting');
    if (action.delayMs === 0) start(c);
    else setTimeout(() => !stopping && start(c), action.delayMs).unref();
  });
}

/** Resolves when `p` has exited, or after `ms` (then it is SIGKILLed). */
function exited(p: ChildProcess, ms: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      resolve();
    }, ms);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

let drainingStop = false;

/**
 * Stops the pair. `drain` (SIGTERM or SIGINT with a drain deadline): the
 * sidecar drains and then stops by itself, the relay after it. Otherwise the
 * relay first (it saves its state with the sidecar), then the sidecar, which
 * clears the kernel bindings and closes the ports.
 */
async function stop(exitCode: number, opts: { drain: boolean }): Promise<void> {
  const sidecar = children.find((x) => x.name === 'sidecar')!;
  const relay = children.find((x) => x.name === 'relay')!;
  if (stopping) {
    // A second signal while draining: the sidecar's second SIGTERM stops it at once.
    if (drainingStop && opts.drain) {
      log.warn('second signal during the drain: stopping at once');
      sidecar.proc?.kill('SIGTERM');
    }
    return;
  }
  stopping = true;
  clearInterval(waitForSocket);
  // Standbys hold nothing: they go at once.
  for (const c of children) {
    clearTimeout(c.standbyTimer);
    c.standby?.proc.kill('SIGKILL');
  }
  const drainMs = config.drainDeadline * 1000;
  if (opts.drain && drainMs > 0 && sidecar.proc && relay.proc) {
    drainingStop = true;
    log.info({ drainDeadline: config.drainDeadline }, 'draining: the sidecar refuses new allocations and serves existing ones until they end or the deadline, then the pair stops');
    sidecar.proc.kill('SIGTERM');
    // The sidecar ends the drain itself at the deadline; the margin covers its own stop.
    await exited(sidecar.proc, drainMs + 10_000);
  }
  for (const c of [relay, sidecar]) {
    const p = c.proc;
    if (!p) continue;
    p.kill('SIGTERM');
    await exited(p, 5000);
  }
  log.info('stopped');
  process.exit(exitCode);
}

process.on('SIGTERM', () => void stop(0, { drain: true }));
process.on('SIGINT', () => void stop(0, { drain: true }));
// The relay starts once the sidecar listens (it would retry with backoff
// anyway, but then its first lines are connection failures).
start(children[0]!);
const socketPath = linkSocketPath(config);
const since = Date.now();
waitForSocket = setInterval(() => {
  if (stopping) return clearInterval(waitForSocket);
  if (existsSync(socketPath) || Date.now() - since > 10_000) {
    clearInterval(waitForSocket);
    start(children[1]!);
  }
}, 50);
