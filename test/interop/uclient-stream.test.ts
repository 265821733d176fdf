// coturn's turnutils_uclient over TCP (-t) and over TLS (-t -S) -> relay ->
// UDP turnutils_peer on loopback: several clients at once, channels and Send
// indications, 0 lost. TLS uses a certificate made here (uclient does not
// verify it; the browser test is where verification is exercised).
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireCapability } from '../helpers/env.ts';
import { haveCoturnTools, startPeer, startRelay, runUclient, describe, freePort, serverKind, type Peer, type Relay, type UclientCase } from './harness.ts';

const USER = 'alice';
const PASS = 'interop-pass';
const asUser: UclientCase = { user: USER, password: PASS };

let peer: Peer | undefined;
const certDir = mkdtempSync(join(tmpdir(), 'tpinterop-tls-'));
const cert = join(certDir, 'cert.pem');
const key = join(certDir, 'key.pem');

before(async () => {
  if (haveCoturnTools) peer = await startPeer();
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,IP:::1'], { stdio: 'ignore' });
});
after(async () => {
  await peer?.stop();
  rmSync(certDir, { recursive: true, force: true });
});

async function withRelay(t: TestContext, tls: boolean, run: (relay: Relay, tlsPort: number) => Promise<void>): Promise<void> {
  if (!requireCapability(t, haveCoturnTools && peer !== undefined, 'needs coturn (turnutils_uclient, turnutils_peer)')) return;
  if (tls && serverKind !== 'turnpike') return void t.skip('TLS: turnpike only (the coturn harness runs --no-tls)');
  const tlsPort = await freePort();
  const relay = await startRelay({
    users: [`${USER}:${PASS}`],
    allowLoopback: true,
    env: tls ? { TURNPIKE_TLS_CERT: cert, TURNPIKE_TLS_KEY: key, TURNPIKE_TLS_PORT: String(tlsPort) } : {},
  });
  try {
    await run(relay, tlsPort);
  } catch (e) {
    t.diagnostic(`${relay.kind} output (tail):\n${relay.output().split('\n').slice(-40).join('\n')}`);
    throw e;
  } finally {
    await relay.stop();
  }
}

const cases: { name: string; tls: boolean; client: UclientCase }[] = [
  { name: 'TCP (-t), 10 clients at once, channels', tls: false, client: { ...asUser, flags: ['-t', '-m', '10'] } },
  { name: 'TCP (-t), Send indications (-s)', tls: false, client: { ...asUser, flags: ['-t', '-s', '-m', '3'] } },
  { name: 'TCP (-t) over IPv6 (-x)', tls: false, client: { ...asUser, family: 6, flags: ['-t', '-m', '3'] } },
  { name: 'TLS (-t -S), 10 clients at once, channels', tls: true, client: { ...asUser, flags: ['-t', '-S', '-m', '10'] } },
  { name: 'TLS (-t -S), Send indications (-s)', tls: true, client: { ...asUser, flags: ['-t', '-S', '-s', '-m', '3'] } },
];

for (const c of cases) {
  test(`uclient ${c.name} through ${serverKind}: 0 lost`, async (t) => {
    await withRelay(t, c.tls, async (relay, tlsPort) => {
      const s = await runUclient(c.tls ? { ...relay, port: tlsPort } : relay, peer!, c.client);
      t.diagnostic(describe(s));
      assert.deepEqual(s.errors, [], `TURN errors: ${describe(s)}`);
      assert.ok(s.sent > 0, `nothing sent: ${describe(s)}\n${s.output.slice(-2000)}`);
      assert.equal(s.lost, 0, `lost packets: ${describe(s)}`);
      assert.equal(s.received, s.sent, `received != sent: ${describe(s)}`);
      if (relay.kind === 'turnpike') {
        // Every connection's allocation went with it: the relay's stop line shows none left.
        await relay.stop();
        const stopped = relay.output().split('\n').find((l) => l.includes('"msg":"relay stopped"'));
        assert.ok(stopped, 'relay stopped line');
        assert.match(stopped!, /"allocations":0\b/);
      }
    });
  });
}
