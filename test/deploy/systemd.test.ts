// The systemd deployment, as an operator gets it from deploy/systemd/install.sh,
// run here the way systemd would run it (CI has no systemd as PID 1):
// install.sh installs into a temporary root (its TURNPIKE_INSTALL_ROOT) with
// users of the test's own; the test then reads the installed units and runs
// each service's ExecStartPre/ExecStart with the unit's User=, Group=,
// SupplementaryGroups=, capabilities (setpriv), Environment= and
// EnvironmentFile= (systemd's precedence), WorkingDirectory=, and the relay
// inside a network namespace of its own (PrivateNetwork=yes: unshare --net).
// The sidecar runs in a test topology's relay namespace with XDP required, in a
// mount namespace with a fresh bpffs at /sys/fs/bpf (what systemd mounts at boot),
// so its capability set is proven by loading, pinning and attaching for real.
// A TURN allocation with a channel relays both ways through the pair. TURN
// over TCP comes by socket activation as the relay's socket unit says: the
// test binds listening sockets outside the relay's network (as systemd does
// for turnpike-relay-tcp.socket) and passes them the sd_listen_fds way (fds
// from 3, LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID set to the relay's own pid by
// the shell that execs it); coturn's uclient -t relays through them, 0 lost.
// Also: install.sh is idempotent, and `systemd-analyze verify` accepts the units.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, requireCapability, hasCommand, openCheckoutToOtherUsers } from '../helpers/env.ts';
import { createTopology, type Topology } from '../helpers/netns.ts';
import { inNs, nsPath, repoRoot, strictChecksums, waitUntil, USER, PASS, type Status } from '../integration/pair-harness.ts';
import { one, parseExec, parseUnit, serviceEnvironment, type Unit } from './systemd-unit.ts';
import { closeFd, listenTcp } from '../../src/net/tcp-listen.ts';
import { parseUclient, describe as describeRun } from '../interop/harness.ts';

const TOOLS = ['setpriv', 'unshare', 'nsenter', 'runuser', 'useradd', 'userdel', 'mountpoint', 'curl', 'ip', 'turnutils_uclient'];
const haveTools = TOOLS.every(hasCommand);
const tag = randomBytes(3).toString('hex');
const SIDECAR_USER = `tp-sc-${tag}`;
const RELAY_USER = `tp-rl-${tag}`;
const CAP_BITS: Record<string, bigint> = { CAP_NET_ADMIN: 12n, CAP_PERFMON: 38n, CAP_BPF: 39n };
/** What systemd puts in every service's environment before the unit's own (PATH, and the User='s identity). */
const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

let root: string | undefined;
let installOutput = '';
let topo: Topology | undefined;

const install = (args: string[] = ['--no-build']) =>
  execFileSync('bash', ['deploy/systemd/install.sh', ...args], {
    cwd: repoRoot,
    env: { ...process.env, TURNPIKE_INSTALL_ROOT: root, TURNPIKE_SIDECAR_USER: SIDECAR_USER, TURNPIKE_RELAY_USER: RELAY_USER },
    encoding: 'utf8',
  });

let closeCheckout: (() => void) | undefined;

before(async () => {
  if (!(process.getuid?.() === 0 && haveTools)) return;
  // The relay runs as a user of its own, who must reach the code in this checkout.
  closeCheckout = openCheckoutToOtherUsers();
  root = mkdtempSync(join(tmpdir(), 'tp-systemd-'));
  // The relay (another user) walks down to the link socket under this root.
  chmodSync(root, 0o711);
  installOutput = install();
});

after(async () => {
  await topo?.destroy();
  closeCheckout?.();
  for (const user of [SIDECAR_USER, RELAY_USER]) {
    try {
      execFileSync('userdel', [user], { stdio: 'ignore' });
    } catch {
      // never created
    }
  }
  if (root) rmSync(root, { recursive: true, force: true });
});

function gate(t: TestContext): string | undefined {
  if (!requireRoot(t) || !requireCapability(t, haveTools && root !== undefined, `needs ${TOOLS.join(', ')}`)) return undefined;
  return root;
}

const unitPath = (r: string, name: string) => join(r, 'etc/systemd/system', name.includes('.') ? `turnpike-${name}` : `turnpike-${name}.service`);
const readUnit = (r: string, name: string): Unit => parseUnit(readFileSync(unitPath(r, name), 'utf8'));
const UNITS = ['sidecar', 'relay', 'relay-tcp.socket', 'relay-tls.socket'];
const passwd = (user: string) => execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).trim().split(':');
const gidOf = (group: string) => Number(execFileSync('getent', ['group', group], { encoding: 'utf8' }).split(':')[2]);
const ownerMode = (p: string) => {
  const st = statSync(p);
  return { uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8) };
};

test('install.sh: system users, directories, env files and units; a second run changes nothing', (t) => {
  const r = gate(t);
  if (!r) return;
  t.diagnostic(installOutput);
  for (const user of [SIDECAR_USER, RELAY_USER]) {
    const [, , uid, gid, , home, shell] = passwd(user);
    assert.ok(Number(uid) > 0 && Number(uid) < 1000, `${user}: a system uid, got ${uid}`);
    assert.equal(execFileSync('getent', ['group', gid!], { encoding: 'utf8' }).split(':')[0], user, `${user}: a group of its own`);
    assert.equal(shell, '/usr/sbin/nologin');
    assert.equal(home, '/nonexistent');
  }
  const sidecarUid = Number(passwd(SIDECAR_USER)[2]);
  assert.deepEqual(ownerMode(join(r, 'var/lib/turnpike')), { uid: sidecarUid, gid: gidOf(SIDECAR_USER), mode: '711' });
  assert.deepEqual(ownerMode(join(r, 'etc/turnpike')), { uid: 0, gid: 0, mode: '755' });
  for (const f of ['turnpike.env', 'sidecar.env']) assert.deepEqual(ownerMode(join(r, 'etc/turnpike', f)), { uid: 0, gid: 0, mode: '600' });
  assert.match(readFileSync(join(r, 'etc/turnpike/turnpike.env'), 'utf8'), /^TURNPIKE_REST_SECRET=[0-9a-f]{64}$/m, 'the relay is not open: a REST secret was generated');
  for (const name of UNITS) {
    assert.equal(ownerMode(unitPath(r, name)).mode, '644');
    assert.doesNotMatch(readFileSync(unitPath(r, name), 'utf8'), /@[A-Z_]+@/, 'every placeholder filled');
  }
  const again = install();
  assert.doesNotMatch(again, /created|wrote|installed|set up/, `a second run changed something:\n${again}`);
});

test('systemd-analyze verify accepts the installed units', (t) => {
  const r = gate(t);
  if (!r) return;
  if (!requireCapability(t, hasCommand('systemd-analyze'), 'systemd-analyze not installed (Debian package systemd)')) return;
  const units = UNITS.map((n) => unitPath(r, n));
  let stderr = '';
  try {
    execFileSync('systemd-analyze', ['verify', ...units], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    stderr = String((e as { stderr?: string }).stderr ?? e);
    assert.fail(`systemd-analyze verify failed:\n${stderr}`);
  }
});

/** The unit's service environment with what systemd adds for User= (HOME, USER, LOGNAME, SHELL, PATH). */
function environmentOf(unit: Unit): Record<string, string> {
  const user = one(unit, 'Service.User');
  const [, , , , , home, shell] = passwd(user);
  return { PATH: SYSTEMD_PATH, USER: user, LOGNAME: user, HOME: home!, SHELL: shell!, ...serviceEnvironment(unit) };
}

/** setpriv arguments for the unit's User=, Group=, SupplementaryGroups=, capabilities and NoNewPrivileges=. */
function credentialsOf(unit: Unit): string[] {
  const user = one(unit, 'Service.User');
  const group = one(unit, 'Service.Group');
  const groups = (unit.get('Service.SupplementaryGroups') ?? []).flatMap((v) => v.split(/\s+/)).map(gidOf);
  const caps = (key: string) => (unit.get(`Service.${key}`) ?? []).flatMap((v) => v.split(/\s+/)).filter(Boolean).map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`);
  const ambient = ['-all', ...caps('AmbientCapabilities')].join(',');
  return [
    `--reuid=${passwd(user)[2]}`,
    `--regid=${gidOf(group)}`,
    groups.length > 0 ? `--groups=${groups.join(',')}` : '--clear-groups',
    `--inh-caps=${ambient}`,
    `--ambient-caps=${ambient}`,
    `--bounding-set=${['-all', ...caps('CapabilityBoundingSet')].join(',')}`,
    ...(one(unit, 'Service.NoNewPrivileges') === 'yes' ? ['--no-new-privs'] : []),
  ];
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The shell script that runs the unit's ExecStartPre= lines (as root for `+`) and then execs its ExecStart= as the unit's user. */
function serviceScript(unit: Unit, env: Record<string, string>): string {
  const dropTo = ['setpriv', ...credentialsOf(unit), '--'];
  const pre = (unit.get('Service.ExecStartPre') ?? []).map((v) => parseExec(v, env)).map((e) => (e.privileged ? e.argv : [...dropTo, ...e.argv]));
  const start = parseExec(one(unit, 'Service.ExecStart'), env);
  return [...pre.map((argv) => argv.map(shq).join(' ')), `exec ${[...dropTo, ...start.argv].map(shq).join(' ')}`].join(' && ');
}

interface Service {
  proc: ChildProcess;
  output(): string;
}

/** Starts a process and keeps its output (stdout and stderr together); `fds` become its fds 3, 4, ... */
function spawnKeeping(command: string, args: string[], opts: SpawnOptions, fds: number[] = []): Service {
  const proc = spawn(command, args, { ...opts, stdio: ['pipe', 'pipe', 'pipe', ...fds] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { proc, output: () => out };
}

const runService = (command: string, args: string[], unit: Unit, env: Record<string, string>, fds: number[] = []): Service =>
  spawnKeeping(command, args, { cwd: one(unit, 'Service.WorkingDirectory'), env }, fds);

async function stopService(s: Service | undefined): Promise<void> {
  if (!s || s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  s.proc.kill('SIGTERM');
  const exited = new Promise((r) => s.proc.once('exit', r));
  const t = setTimeout(() => s.proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

const statusField = (pid: number, field: string) => new RegExp(`^${field}:\\s+(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!.trim();

/** Replaces or adds KEY=VALUE lines in an env file. */
function setEnv(file: string, values: Record<string, string>): void {
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => !Object.keys(values).some((k) => l.startsWith(`${k}=`)));
  writeFileSync(file, [...lines, ...Object.entries(values).map(([k, v]) => `${k}=${v}`), ''].join('\n'));
}

/** Runs test/integration/telemetry-pair-udp.ts (an echo peer or a TURN client) in a namespace. */
const udpTool = (t: Topology, role: 'client' | 'peer', args: string[]): Service =>
  spawnKeeping('nsenter', [`--net=${nsPath(t, role)}`, process.execPath, '--import', 'tsx', 'test/integration/telemetry-pair-udp.ts', ...args], { cwd: repoRoot });
const jsonLines = (s: Service) => s.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, number>);

test('the two services, run as their units say, relay a TURN allocation through a channel both ways, XDP on', async (t) => {
  const r = gate(t);
  if (!r) return;
  topo = await createTopology({ prefix: 'tpsd', ipv6: false });
  await strictChecksums(topo);
  await topo.enableRelayXdpTx();
  await inNs(topo, 'relay', 'sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/conf/all/forwarding']);

  const listenPort = randomInt(21000, 29000);
  setEnv(join(r, 'etc/turnpike/turnpike.env'), {
    TURNPIKE_LISTEN_PORT: String(listenPort),
    TURNPIKE_USERS: `${USER}:${PASS}`,
    TURNPIKE_REALM: 'systemd',
    TURNPIKE_ALLOWED_PEERS: topo.addr.subnet4,
  });
  setEnv(join(r, 'etc/turnpike/sidecar.env'), {
    TURNPIKE_EBPF: 'required',
    TURNPIKE_INTERFACE: topo.dev.relay,
    TURNPIKE_XDP_MODE: 'native',
    TURNPIKE_PUBLIC_IPV4: topo.addr.relay4,
    TURNPIKE_SENTRY_DSN: 'http://sidecaronlysecret@127.0.0.1:9/1',
  });

  const sidecarUnit = readUnit(r, 'sidecar');
  const relayUnit = readUnit(r, 'relay');
  const sidecarEnv = environmentOf(sidecarUnit);
  const relayEnv = environmentOf(relayUnit);
  assert.equal(relayEnv.TURNPIKE_SENTRY_DSN, undefined, 'the relay unit does not read sidecar.env');
  assert.equal(relayEnv.TURNPIKE_RELAY_TRANSPORT, 'sidecar');
  assert.equal(one(relayUnit, 'Service.PrivateNetwork'), 'yes');
  assert.equal(one(relayUnit, 'Service.CapabilityBoundingSet'), '');

  // The sidecar: in the relay's namespace; a mount namespace with bpffs as systemd mounts it at boot.
  const sidecarScript = `mount -t bpf -o mode=0700 bpf /sys/fs/bpf && ${serviceScript(sidecarUnit, sidecarEnv)}`;
  const sidecar = runService('nsenter', [`--net=${nsPath(topo, 'relay')}`, 'unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', sidecarScript], sidecarUnit, sidecarEnv);
  // turnpike-relay-tcp.socket as systemd binds it: one v6-only socket per
  // family, named tcp, in the host's network (here on loopback at a test port).
  const tcpSocket = readUnit(r, 'relay-tcp.socket');
  assert.deepEqual(tcpSocket.get('Socket.ListenStream'), ['0.0.0.0:3478', '[::]:3478']);
  assert.equal(one(tcpSocket, 'Socket.BindIPv6Only'), 'ipv6-only');
  assert.equal(one(tcpSocket, 'Socket.FileDescriptorName'), 'tcp');
  assert.equal(one(tcpSocket, 'Socket.Service'), 'turnpike-relay.service');
  const tcpPort = randomInt(21000, 29000);
  const listening = [listenTcp(4, '127.0.0.1', tcpPort), listenTcp(6, '::1', tcpPort)];
  // The relay: PrivateNetwork=yes, a network namespace of its own with nothing
  // in it; the sockets as fds 3 and 4, LISTEN_PID the pid that execs into it.
  const activation = `export LISTEN_PID=$$ LISTEN_FDS=${listening.length} LISTEN_FDNAMES=${listening.map(() => 'tcp').join(':')} && `;
  const relay = runService('unshare', ['--net', '--', '/bin/sh', '-c', activation + serviceScript(relayUnit, relayEnv)], relayUnit, relayEnv, listening);
  // The relay holds its own copies now.
  for (const fd of listening) closeFd(fd);
  let peer: Service | undefined;
  try {
    const status = async (): Promise<Status> => JSON.parse(await inNs(topo!, 'relay', 'curl', ['-s', '-m', '3', 'http://127.0.0.1:9469/status'])) as Status;
    await waitUntil('the sidecar ready with the relay connected', async () => {
      for (const s of [sidecar, relay]) if (s.proc.exitCode !== null) throw new Error(`a service exited (${s.proc.exitCode})`);
      const ready = await inNs(topo!, 'relay', 'curl', ['-s', '-m', '3', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:9469/readyz']).catch(() => '');
      return ready === '200' || undefined;
    }, 30_000, 200);

    // Each runs as its unit says: users, capabilities, no new privileges, the relay's empty network.
    const sidecarPid = sidecar.proc.pid!;
    const relayPid = relay.proc.pid!;
    const sidecarUid = passwd(SIDECAR_USER)[2]!;
    const relayUid = passwd(RELAY_USER)[2]!;
    assert.deepEqual(statusField(sidecarPid, 'Uid').split(/\s+/), [sidecarUid, sidecarUid, sidecarUid, sidecarUid]);
    assert.deepEqual(statusField(relayPid, 'Uid').split(/\s+/), [relayUid, relayUid, relayUid, relayUid]);
    const expectedCaps = Object.values(CAP_BITS).reduce((a, b) => a | (1n << b), 0n);
    assert.equal(BigInt(`0x${statusField(sidecarPid, 'CapEff')}`), expectedCaps, 'the sidecar holds CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and nothing else');
    assert.equal(BigInt(`0x${statusField(relayPid, 'CapEff')}`), 0n);
    assert.equal(BigInt(`0x${statusField(relayPid, 'CapBnd')}`), 0n);
    for (const pid of [sidecarPid, relayPid]) assert.equal(statusField(pid, 'NoNewPrivs'), '1');
    assert.notEqual(readlinkSync(`/proc/${relayPid}/ns/net`), readlinkSync(`/proc/${sidecarPid}/ns/net`));
    const links = execFileSync('nsenter', [`--net=/proc/${relayPid}/ns/net`, 'ip', '-o', 'link'], { encoding: 'utf8' }).trim().split('\n');
    assert.equal(links.length, 1, links.join('\n'));
    const socket = ownerMode(join(r, 'var/lib/turnpike/link.sock'));
    assert.deepEqual(socket, { uid: Number(sidecarUid), gid: gidOf(RELAY_USER), mode: '660' }, 'the link socket is the relay group\'s');

    const before = await status();
    assert.equal(before.mode, 'xdp');

    const peerPort = randomInt(30000, 32000);
    peer = udpTool(topo, 'peer', ['peer', String(peerPort)]);
    await waitUntil('echo peer ready', () => jsonLines(peer!).some((l) => l.ready) || undefined, 15_000);
    const N = 50;
    const client = udpTool(topo, 'client', ['client', topo.addr.relay4, String(listenPort), topo.addr.peer4, String(peerPort), String(N), '200', USER, PASS]);
    const result = await waitUntil('the client done', () => jsonLines(client).find((l) => 'sent' in l), 30_000).catch((e: Error) => {
      throw new Error(`${e.message}\nclient:\n${client.output()}`);
    });
    t.diagnostic(JSON.stringify(result));
    assert.equal(result.sent, N);
    assert.equal(result.received, N, 'every ChannelData came back through the pair');

    const after = await status();
    assert.equal(after.relay.relayConnected, true);
    const kernel = (after.kernel?.paths ?? []).filter((p) => p.path.startsWith('chan_to_udp')).reduce((n, p) => n + Number(p.packets), 0);
    assert.ok(kernel > 0, `the kernel fast path relayed (chan_to_udp packets: ${kernel})`);
    assert.deepEqual((after as { security?: unknown }).security, {}, 'no link refusals');

    // TURN over TCP on the sockets systemd would have passed: the relay serves both, 0 lost
    // (-c: no RTCP sessions, which would send to the echo peer's port + 1).
    // Its lines travel over the link once it is up: the sidecar prints them.
    const ready = [...sidecar.output().split('\n'), ...relay.output().split('\n')]
      .filter((l) => l.startsWith('{') && l.includes('"relay ready"'))
      .map((l) => JSON.parse(l) as { streams?: string[] })
      .at(-1);
    assert.deepEqual([...(ready?.streams ?? [])].sort(), [`tcp:127.0.0.1:${tcpPort}`, `tcp:[::1]:${tcpPort}`].sort(), 'the relay serves the passed sockets');
    const uclient = await new Promise<string>((resolve) => {
      const args = ['-t', '-c', '-m', '3', '-n', '30', '-l', '100', '-u', USER, '-w', PASS, '-e', topo!.addr.peer4, '-r', String(peerPort), '-p', String(tcpPort), '127.0.0.1'];
      execFile('turnutils_uclient', args, { timeout: 40_000 }, (_e, stdout, stderr) => resolve(`${stdout}\n${stderr}`));
    });
    const run = parseUclient(uclient, 0);
    t.diagnostic(`uclient -t through the socket-activated relay: ${describeRun(run)}`);
    if (run.lost !== 0) t.diagnostic(`uclient:\n${uclient.slice(-3000)}\nstatus:\n${JSON.stringify(await status())}`);
    assert.deepEqual(run.errors, [], describeRun(run));
    assert.ok(run.sent > 0, `nothing sent:\n${uclient.slice(-2000)}`);
    assert.equal(run.lost, 0, describeRun(run));
    assert.equal(run.received, run.sent, describeRun(run));
    // The peer leg of a TCP allocation is never relayed as UDP by a fast path:
    // the XDP program and the sidecar pass it (no binding) and the relay frames it onto the connection.
    // Counters reach /status on a 1 s poll: wait for the relay's to show the session.
    const tcpToClient = (st: Status) =>
      (st.relayCounters as { byTransport?: { tcp: { relayedByFamily: { ipv4: { toClient: { packets: number } } } } } } | null | undefined)?.byTransport?.tcp.relayedByFamily.ipv4.toClient.packets ?? 0;
    const passed = (st: Status) => Number(st.kernel?.reasons.pass_no_binding ?? 0);
    const streamed = await waitUntil('counters after the TCP session', async () => {
      const st = await status();
      return tcpToClient(st) >= run.received && passed(st) - passed(after) >= run.received ? st : undefined;
    }, 10_000).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify((await status()).relayCounters)}`);
    });
    const kernelPath = (st: Status, prefix: string) => (st.kernel?.paths ?? []).filter((p) => p.path.startsWith(prefix)).reduce((n, p) => n + Number(p.packets), 0);
    const sidecarPath = (st: Status, prefix: string) => Object.entries(st.fastPath?.paths ?? {}).filter(([p]) => p.startsWith(prefix)).reduce((n, [, v]) => n + v.packets, 0);
    for (const prefix of ['udp_to_chan', 'chan_to_udp']) {
      assert.equal(kernelPath(streamed, prefix), kernelPath(after, prefix), `kernel ${prefix} unchanged by the TCP session`);
      assert.equal(sidecarPath(streamed, prefix), sidecarPath(after, prefix), `sidecar fast path ${prefix} unchanged by the TCP session`);
    }
    // (and `streamed` came once the kernel had passed the peer's datagrams and the relay had framed them, counted under tcp)
  } catch (e) {
    t.diagnostic(`sidecar output (tail):\n${sidecar.output().split('\n').slice(-30).join('\n')}`);
    t.diagnostic(`relay output (tail):\n${relay.output().split('\n').slice(-30).join('\n')}`);
    throw e;
  } finally {
    peer?.proc.stdin?.end();
    await stopService(relay);
    await stopService(sidecar);
    peer?.proc.kill();
  }
});
