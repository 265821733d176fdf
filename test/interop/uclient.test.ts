// coturn's turnutils_uclient -> relay -> turnutils_peer on loopback, one case
// per client feature, each with 0 lost messages. The relay is turnpike's
// standalone relay (TURNPIKE_INTEROP_SERVER=coturn runs the same cases against
// coturn's turnserver to validate the harness).
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { requireCapability } from '../helpers/env.ts';
import { repoRoot, haveCoturnTools, startPeer, startRelay, runUclient, describe, serverKind, type Peer, type Relay, type RelayOptions, type UclientCase, type UclientSummary } from './harness.ts';

const USER = 'alice';
const PASS = 'interop-pass';
const SECRET = 'interop-rest-secret';

let peer: Peer | undefined;

before(async () => {
  if (haveCoturnTools) peer = await startPeer();
});
after(async () => {
  await peer?.stop();
});

async function withRelay(t: TestContext, opts: RelayOptions, run: (relay: Relay, peer: Peer) => Promise<void>): Promise<void> {
  if (!requireCapability(t, haveCoturnTools && peer !== undefined, 'needs coturn (turnutils_uclient, turnutils_peer)')) return;
  const relay = await startRelay(opts);
  try {
    await run(relay, peer!);
  } catch (e) {
    // The relay's own log is the first thing to read when a case fails.
    t.diagnostic(`${relay.kind} output (tail):\n${relay.output().split('\n').slice(-40).join('\n')}`);
    throw e;
  } finally {
    await relay.stop();
  }
}

function mintWithCli(stateDir: string, user: string): Promise<{ username: string; password: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cmd/credential.ts', '--user', user, '--ttl', '600', '--json'],
      { cwd: repoRoot, env: { PATH: process.env.PATH, TURNPIKE_STATE_DIR: stateDir } },
      (err, stdout, stderr) => (err ? reject(new Error(`credential-cli: ${stderr}`)) : resolve(JSON.parse(stdout))),
    );
  });
}

function assertNoLoss(s: UclientSummary): void {
  assert.deepEqual(s.errors, [], `TURN errors: ${describe(s)}`);
  assert.ok(s.sent > 0, `nothing sent: ${describe(s)}\n${s.output.slice(-2000)}`);
  assert.equal(s.lost, 0, `lost packets: ${describe(s)}`);
  assert.equal(s.received, s.sent, `received != sent: ${describe(s)}`);
}

const staticUser: RelayOptions = { users: [`${USER}:${PASS}`], allowLoopback: true };
const asUser: UclientCase = { user: USER, password: PASS };

const cases: { name: string; relay: RelayOptions; client: UclientCase }[] = [
  { name: 'channels (default)', relay: staticUser, client: asUser },
  { name: 'Send indications (-s)', relay: staticUser, client: { ...asUser, flags: ['-s'] } },
  { name: 'client-to-client with TURNPIKE_ALLOW_RELAYED_PEERS (-y)', relay: { ...staticUser, env: { TURNPIKE_ALLOW_RELAYED_PEERS: 'true' } }, client: { ...asUser, flags: ['-y'] } },
  { name: 'IPv6 relay over ::1 (-x)', relay: staticUser, client: { ...asUser, family: 6 } },
  { name: '10 clients at once (-m 10)', relay: staticUser, client: { ...asUser, flags: ['-m', '10'] } },
  { name: 'REST secret (-W)', relay: { restSecret: SECRET, allowLoopback: true }, client: { restSecret: SECRET, user: USER } },
  { name: 'static user (-u -w), no RTCP (-c), DONT-FRAGMENT (-g)', relay: staticUser, client: { ...asUser, flags: ['-c', '-g'] } },
  { name: 'padded channels (-D)', relay: staticUser, client: { ...asUser, flags: ['-D'] } },
];

for (const c of cases) {
  test(`uclient ${c.name} through ${serverKind}: 0 lost`, async (t) => {
    await withRelay(t, c.relay, async (relay, p) => {
      const s = await runUclient(relay, p, c.client);
      t.diagnostic(describe(s));
      assertNoLoss(s);
    });
  });
}

// -y makes each client's peer the other client's relayed address on the same
// relay. By default turnpike refuses its own transport addresses as peers (no
// chaining allocations through it, even with loopback allowed); coturn relays
// them, and so does turnpike with TURNPIKE_ALLOW_RELAYED_PEERS (case above).
test(`uclient client-to-client (-y) through ${serverKind}: ${serverKind === 'turnpike' ? 'refused (403)' : '0 lost'}`, async (t) => {
  await withRelay(t, staticUser, async (relay, p) => {
    const s = await runUclient(relay, p, { ...asUser, flags: ['-y'], ...(serverKind === 'turnpike' ? { messages: 5, timeoutMs: 15000 } : {}) });
    t.diagnostic(describe(s));
    if (serverKind !== 'turnpike') return assertNoLoss(s);
    assert.ok(s.errors.some((e) => /error 403\b/.test(e)), `expected a 403: ${describe(s)}\n${s.output.slice(-1500)}`);
    assert.equal(s.received, 0, `nothing may be relayed between allocations of one relay: ${describe(s)}`);
  });
});

test(`loopback peers are refused (403) without TURNPIKE_ALLOWED_PEERS (${serverKind})`, async (t) => {
  await withRelay(t, { users: [`${USER}:${PASS}`], allowLoopback: false }, async (relay, p) => {
    const s = await runUclient(relay, p, { ...asUser, flags: ['-c'], messages: 5, timeoutMs: 15000 });
    t.diagnostic(describe(s));
    assert.ok(s.errors.some((e) => /error 403\b/.test(e)), `expected a 403: ${describe(s)}\n${s.output.slice(-1500)}`);
    assert.equal(s.received, 0, `nothing may reach a loopback peer: ${describe(s)}`);
  });
});

test('no credentials configured: a credential minted by the CLI from the generated secret works', async (t) => {
  if (serverKind !== 'turnpike') return t.skip('turnpike defaults only');
  await withRelay(t, { allowLoopback: true }, async (relay, p) => {
    assert.match(relay.output(), /created a TURN REST secret/);
    const minted = await mintWithCli(relay.stateDir!, 'bob');
    assert.match(minted.username, /^\d+:bob$/);
    const s = await runUclient(relay, p, { user: minted.username, password: minted.password, flags: ['-c'] });
    t.diagnostic(describe(s));
    assertNoLoss(s);
    // A wrong password is refused: the relay is not open.
    const bad = await runUclient(relay, p, { user: minted.username, password: 'wrong', flags: ['-c'], messages: 5, timeoutMs: 15000 });
    assert.equal(bad.received, 0, describe(bad));
  });
});
