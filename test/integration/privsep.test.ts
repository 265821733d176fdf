// Privilege separation on a running pair, as `npm start` runs it as root
// (the launcher in the relay namespace of a client / relay / peer topology):
// - the relay's user is the one set-up creates for it (a system user with no
//   login shell and no home; this test creates its own and removes it), not
//   root and not nobody;
// - its network namespace is its own and has nothing but loopback;
// - its environment holds none of the launcher's secrets (Sentry, PostHog,
//   OTLP, or anything else the operator's shell had);
// - coturn's uclient through the pair still loses nothing;
// - SIGKILL on the launcher takes both children down; eBPF required but not
//   loadable stops the pair with the reason; a child that keeps dying makes
//   the launcher give up with a non-zero exit.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { requireRoot, requireCapability, hasCommand, openCheckoutToOtherUsers } from '../helpers/env.ts';
import { createTopology, type Topology } from '../helpers/netns.ts';
import { parseUclient, describe as describeRun } from '../interop/harness.ts';
import { startPair, inNs, repoRoot, waitUntil, sleep, type Pair, type PairOptions, USER, PASS } from './pair-harness.ts';

const PEER_PORT = 3480;
const haveTools = ['turnutils_uclient', 'turnutils_peer', 'nsenter', 'curl', 'useradd', 'userdel', 'unshare', 'ip'].every(hasCommand);
const RELAY_USER = `tp-relay-${randomBytes(3).toString('hex')}`;
/** What the operator's shell holds for the sidecar (and for nobody else). */
const SECRETS = {
  TURNPIKE_SENTRY_DSN: 'http://sentrysecretkey@127.0.0.1:9/1',
  TURNPIKE_POSTHOG_KEY: 'phc_posthogsecretkey',
  TURNPIKE_POSTHOG_HOST: 'http://127.0.0.1:9',
  OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer otlpsecretheader',
  AWS_SECRET_ACCESS_KEY: 'launchersecretvalue',
};
let topo: Topology | undefined;
let userMade = false;

let closeCheckout: (() => void) | undefined;

before(async () => {
  if (!(process.getuid?.() === 0 && haveTools)) return;
  // The relay runs as a user of its own, who must reach the code in this checkout.
  closeCheckout = openCheckoutToOtherUsers();
  // The user as set-up makes it (`npm start` as root creates turnpike-relay the same way).
  execFileSync('bash', ['scripts/setup.sh', '--relay-user', RELAY_USER], { cwd: repoRoot, stdio: 'ignore' });
  userMade = true;
  topo = await createTopology({ prefix: 'tpps', ipv6: false });
  topo.spawn('peer', 'turnutils_peer', ['-p', String(PEER_PORT), '-L', topo.addr.peer4]);
  await sleep(300);
});

after(async () => {
  await topo?.destroy();
  closeCheckout?.();
  if (userMade) execFileSync('userdel', [RELAY_USER], { stdio: 'ignore' });
});

function gate(t: TestContext): Topology | undefined {
  if (!requireRoot(t) || !requireCapability(t, haveTools && topo !== undefined, 'needs coturn, nsenter, curl, useradd/userdel, unshare and ip')) return undefined;
  return topo;
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
const statusField = (pid: number, field: string) => new RegExp(`^${field}:\\s+(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!.split(/\s+/).map(Number);
const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);

async function withPair(t: TestContext, topo: Topology, opts: PairOptions, run: (pair: Pair) => Promise<void>): Promise<number | null> {
  const pair = await startPair(topo, { ...opts, env: { TURNPIKE_RELAY_USER: RELAY_USER, ...opts.env } });
  try {
    await run(pair);
  } catch (e) {
    t.diagnostic(`pair output (tail):\n${pair.output().split('\n').slice(-40).join('\n')}`);
    await pair.stop();
    throw e;
  }
  return (await pair.stop()).exitCode;
}

test('set-up makes the relay a system user with no login shell and no home, once', (t) => {
  if (!gate(t)) return;
  const [name, , uid, gid, , home, shell] = execFileSync('getent', ['passwd', RELAY_USER]).toString().trim().split(':');
  assert.equal(name, RELAY_USER);
  assert.ok(Number(uid) > 0 && Number(uid) < 1000, `a system uid, got ${uid}`);
  assert.notEqual(Number(uid), 65534);
  assert.equal(execFileSync('getent', ['group', gid!]).toString().split(':')[0], RELAY_USER, 'a group of its own');
  assert.equal(shell, '/usr/sbin/nologin');
  assert.equal(existsSync(home!), false, `no home directory (${home})`);
  // Idempotent: a second run leaves the user alone.
  execFileSync('bash', ['scripts/setup.sh', '--relay-user', RELAY_USER], { cwd: repoRoot, stdio: 'ignore' });
  assert.equal(execFileSync('id', ['-u', RELAY_USER]).toString().trim(), uid);
});

test('the running relay: its own user, a network namespace with only loopback, none of the launcher\'s secrets; uclient loses 0; SIGKILL on the launcher stops both', async (t) => {
  const topo = gate(t);
  if (!topo) return;
  const relayUid = Number(execFileSync('id', ['-u', RELAY_USER]).toString().trim());
  const exitCode = await withPair(t, topo, { ebpf: 'off', env: SECRETS }, async (pair) => {
    await pair.waitReady();
    const relay = pair.childPid('relay')!;
    const sidecar = pair.childPid('sidecar')!;

    const uids = statusField(relay, 'Uid');
    assert.deepEqual(uids, [relayUid, relayUid, relayUid, relayUid], 'real, effective, saved and fs uid');
    assert.ok(!uids.includes(0) && !uids.includes(65534), 'neither root nor nobody');
    assert.deepEqual(statusField(relay, 'CapEff'), [0], 'no capabilities');

    assert.notEqual(readlinkSync(`/proc/${relay}/ns/net`), readlinkSync(`/proc/${sidecar}/ns/net`), 'a network namespace of its own');
    const links = execFileSync('nsenter', [`--net=/proc/${relay}/ns/net`, 'ip', '-o', 'link']).toString().trim().split('\n');
    assert.equal(links.length, 1, links.join('\n'));
    assert.match(links[0]!, /^1: lo:/);

    const env = environ(relay);
    const text = env.join('\n');
    for (const [name, value] of Object.entries(SECRETS)) {
      assert.ok(!text.includes(value), `${name}'s value reached the relay`);
      assert.ok(!env.some((e) => e.startsWith(`${name}=`)), `${name} reached the relay`);
    }
    assert.ok(env.every((e) => e.startsWith('TURNPIKE_')), `only its own settings: ${env.map((e) => e.split('=')[0]).join(', ')}`);
    assert.ok(environ(sidecar).includes(`TURNPIKE_SENTRY_DSN=${SECRETS.TURNPIKE_SENTRY_DSN}`), 'the sidecar has them (the test set them)');

    const args = ['-p', String(pair.listenPort), '-u', USER, '-w', PASS, '-e', topo.addr.peer4, '-r', String(PEER_PORT), '-n', '50', '-l', '120', topo.addr.relay4];
    const out = await inNs(topo, 'client', 'turnutils_uclient', args, 30_000).catch((e: { stdout?: string; stderr?: string }) => `${e.stdout}\n${e.stderr}`);
    const run = parseUclient(out, 0);
    t.diagnostic(describeRun(run));
    assert.ok(run.sent > 0 && run.lost === 0 && run.received === run.sent && run.errors.length === 0, `uclient: ${describeRun(run)}`);
    const status = await pair.status();
    assert.deepEqual(status.security, {}, 'no refusals along the way');

    // The launcher dies the hard way: its children notice the lifeline close and stop.
    const launcher = statusField(sidecar, 'PPid')[0]!;
    assert.equal(statusField(relay, 'PPid')[0], launcher);
    process.kill(launcher, 'SIGKILL');
    await waitUntil('both children gone after SIGKILL on the launcher', () => (!alive(relay) && !alive(sidecar)) || undefined, 15_000, 50);
    assert.ok(pair.lines().some((l) => l.process === 'sidecar' && l.msg === 'shutting down' && l.signal === 'launcher gone'), 'the sidecar stopped cleanly');
  });
  assert.equal(exitCode, null, 'the launcher was killed');
});

test('TURNPIKE_EBPF=required that cannot load stops the pair with the reason, non-zero, without restarting', async (t) => {
  const topo = gate(t);
  if (!topo) return;
  const exitCode = await withPair(t, topo, { ebpf: 'required', env: { TURNPIKE_INTERFACE: 'tpnosuchif0' } }, async (pair) => {
    const fatal = await waitUntil('the launcher gives up', () => pair.lines().find((l) => l.process === 'launcher' && l.level === 60), 20_000);
    assert.equal(fatal.msg, 'child cannot start; stopping');
    assert.equal(fatal.child, 'sidecar');
    assert.match(String(fatal.reason), /tpnosuchif0/);
    await sleep(1500);
    assert.equal(pair.lines().filter((l) => l.msg === 'started' && l.child === 'sidecar').length, 1, 'not restarted');
  });
  assert.equal(exitCode, 1);
});

test('a child that keeps dying: after TURNPIKE_RESTART_LIMIT restarts the launcher exits non-zero', async (t) => {
  const topo = gate(t);
  if (!topo) return;
  const exitCode = await withPair(t, topo, { ebpf: 'off', env: { TURNPIKE_RESTART_LIMIT: '1' } }, async (pair) => {
    await pair.waitReady();
    process.kill(pair.childPid('relay')!, 'SIGKILL');
    const second = await pair.waitForStart('relay', 2);
    process.kill(second, 'SIGKILL');
    const fatal = await waitUntil('the launcher gives up', () => pair.lines().find((l) => l.process === 'launcher' && l.level === 60), 20_000);
    assert.equal(fatal.msg, 'child keeps failing: cannot keep the pair up; stopping');
    assert.equal(fatal.child, 'relay');
    const sidecar = pair.childPid('sidecar')!;
    await waitUntil('sidecar stopped', () => !alive(sidecar) || undefined, 15_000, 50);
  });
  assert.equal(exitCode, 1);
});
