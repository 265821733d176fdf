// TURN over TCP and TLS through the pair as `npm start` runs it as root: the
// launcher makes the listening sockets (TCP on the listen port, TLS on 443,
// which needs root) in the host's namespace and the relay, in a network
// namespace with only loopback and as its own user, accepts on them and
// parses TLS and TURN framing itself; the peer leg is UDP through the
// sidecar. coturn's uclient over TCP (-t) and TLS (-t -S), several clients,
// against a UDP turnutils_peer: 0 lost. A relay restarted by the launcher
// finds the same sockets again.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, requireCapability, hasCommand } from '../helpers/env.ts';
import { createTopology, type Topology } from '../helpers/netns.ts';
import { parseUclient, describe as describeRun, type UclientSummary } from '../interop/harness.ts';
import { makeTestCertificate } from '../helpers/test-ca.ts';
import { startPair, inNs, sleep, waitUntil, type Pair, USER, PASS } from './pair-harness.ts';

const PEER_PORT = 3480;
const TLS_PORT = 443;
const haveTools = ['turnutils_uclient', 'turnutils_peer', 'nsenter', 'curl', 'unshare', 'ip', 'openssl'].every(hasCommand);
let topo: Topology | undefined;
const certDir = mkdtempSync(join(tmpdir(), 'tp-pair-tls-'));
const cert = join(certDir, 'cert.pem');
const key = join(certDir, 'key.pem');

before(async () => {
  if (!(process.getuid?.() === 0 && haveTools)) return;
  topo = await createTopology({ prefix: 'tpst', ipv6: false });
  topo.spawn('peer', 'turnutils_peer', ['-p', String(PEER_PORT), '-L', topo.addr.peer4]);
  // A test CA and a server certificate it signed, for the relay's address (readable by the relay's user).
  makeTestCertificate(certDir, topo.addr.relay4);
  await sleep(300);
});

after(async () => {
  await topo?.destroy();
  rmSync(certDir, { recursive: true, force: true });
});

function gate(t: TestContext): Topology | undefined {
  if (!requireRoot(t) || !requireCapability(t, haveTools && topo !== undefined, 'needs coturn, nsenter, curl, unshare, ip and openssl')) return undefined;
  return topo;
}

async function uclient(topo: Topology, port: number, flags: string[]): Promise<UclientSummary> {
  const args = ['-p', String(port), '-u', USER, '-w', PASS, '-e', topo.addr.peer4, '-r', String(PEER_PORT), '-n', '50', '-l', '120', ...flags, topo.addr.relay4];
  const out = await inNs(topo, 'client', 'turnutils_uclient', args, 40_000).catch((e: { stdout?: string; stderr?: string }) => `${e.stdout}\n${e.stderr}`);
  return parseUclient(out, 0);
}

function assertNoLoss(t: TestContext, name: string, run: UclientSummary): void {
  t.diagnostic(`${name}: ${describeRun(run)}`);
  assert.deepEqual(run.errors, [], `${name}: TURN errors: ${describeRun(run)}`);
  assert.ok(run.sent > 0, `${name}: nothing sent: ${describeRun(run)}\n${run.output.slice(-2000)}`);
  assert.equal(run.lost, 0, `${name}: lost packets: ${describeRun(run)}`);
  assert.equal(run.received, run.sent, `${name}: received != sent: ${describeRun(run)}`);
}

test('the pair serves TURN over TCP and TLS (port 443) from a relay with no network: uclient -t and -t -S, several clients, 0 lost; again after a relay restart', async (t) => {
  const topo = gate(t);
  if (!topo) return;
  const pair: Pair = await startPair(topo, { ebpf: 'off', env: { TURNPIKE_TLS_CERT: cert, TURNPIKE_TLS_KEY: key, TURNPIKE_TLS_PORT: String(TLS_PORT) } });
  try {
    await pair.waitReady();
    const relay = pair.childPid('relay')!;
    const sidecar = pair.childPid('sidecar')!;
    assert.notEqual(readlinkSync(`/proc/${relay}/ns/net`), readlinkSync(`/proc/${sidecar}/ns/net`), 'the relay has a network namespace of its own');
    // /readyz can answer before the relay's start-up line has crossed the link.
    const ready = await waitUntil('relay ready line', () => pair.lines().find((l) => l.process === 'relay' && l.msg === 'relay ready'));
    assert.deepEqual(
      [...(ready.streams as string[])].sort(),
      [`tcp:0.0.0.0:${pair.listenPort}`, `tcp:[::]:${pair.listenPort}`, `tls:0.0.0.0:${TLS_PORT}`, `tls:[::]:${TLS_PORT}`].sort(),
      'the relay serves the sockets the launcher made',
    );

    assertNoLoss(t, 'TCP, 5 clients, channels', await uclient(topo, pair.listenPort, ['-t', '-m', '5']));
    assertNoLoss(t, 'TCP, Send indications', await uclient(topo, pair.listenPort, ['-t', '-s', '-m', '3']));
    assertNoLoss(t, 'TLS, 5 clients, channels', await uclient(topo, TLS_PORT, ['-t', '-S', '-m', '5']));
    assertNoLoss(t, 'TLS, Send indications', await uclient(topo, TLS_PORT, ['-t', '-S', '-s', '-m', '3']));

    // The sidecar's metrics name the client transport of what the relay relayed and of its connections.
    const metric = (text: string, name: string, labels: Record<string, string>) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
        .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    const text = await waitUntil('per-transport metrics', async () => {
      const body = (await pair.get('/metrics')).body;
      return metric(body, 'turnpike_stream_connections_accepted_total', { transport: 'tls' }) >= 8 ? body : undefined;
    });
    for (const transport of ['tcp', 'tls']) {
      // 8 clients of 50 messages each way per transport (uclient -m 5 and -m 3; `-n 50`).
      assert.ok(metric(text, 'turnpike_relayed_packets_total', { datapath: 'userspace', direction: 'to_peer', transport }) >= 400, `${transport} to_peer`);
      assert.ok(metric(text, 'turnpike_relayed_bytes_total', { datapath: 'userspace', direction: 'to_client', transport }) >= 400 * 120, `${transport} to_client bytes`);
      assert.ok(metric(text, 'turnpike_stream_connections_accepted_total', { transport }) >= 8, `${transport} accepted`);
      assert.ok(metric(text, 'turnpike_stream_connections_closed_total', { transport, reason: 'peer-closed' }) >= 1, `${transport} closed by the client`);
      assert.ok(metric(text, 'turnpike_responses_errors_total', { transport }) >= 8, `${transport}: each client's 401 challenge`);
    }
    assert.equal(metric(text, 'turnpike_relayed_packets_total', { datapath: 'userspace', transport: 'udp' }), 0, 'no UDP client ran');

    // The sockets belong to the launcher: a relay it restarts serves them again.
    process.kill(relay, 'SIGKILL');
    await pair.waitForStart('relay', 2);
    await pair.waitReady();
    await waitRelayConnected(pair);
    assertNoLoss(t, 'TCP after a relay restart', await uclient(topo, pair.listenPort, ['-t', '-m', '3']));
    assertNoLoss(t, 'TLS after a relay restart', await uclient(topo, TLS_PORT, ['-t', '-S', '-m', '3']));

    const status = await pair.status();
    assert.deepEqual(status.security, {}, 'no refusals along the way');
  } catch (e) {
    const st = await pair.status().catch(() => undefined);
    if (st) t.diagnostic(`status: relay ${JSON.stringify(st.relay)}; relay counters ${JSON.stringify(st.relayCounters)}`);
    t.diagnostic(`pair output (tail):\n${pair.output().split('\n').slice(-40).join('\n')}`);
    throw e;
  } finally {
    await pair.stop();
  }
});

async function waitRelayConnected(pair: Pair): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await pair.status()).relay.relayConnected) return;
    await sleep(100);
  }
  throw new Error('the restarted relay did not reconnect');
}
