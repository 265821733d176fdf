// A browser through turnpike over TURN/TLS: Debian's Chromium, headless, in a
// client network namespace, with one ICE server `turns:turn.test:PORT` and
// iceTransportPolicy 'relay', opens a data channel between two
// RTCPeerConnections of one page and messages go both ways, all of it relayed
// by the pair (`npm start`'s launcher, sidecar and relay) in the relay
// namespace. The certificate comes from a CA made by the test and trusted
// only in an NSS database under the browser's temporary HOME; the browser
// verifies it as it would any server's (no --ignore-certificate-errors), and
// a second browser that does not trust the CA gets no relay candidate.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, requireCapability, hasCommand } from '../helpers/env.ts';
import { createTopology, type Topology } from '../helpers/netns.ts';
import { startPair, nsPath, waitUntil } from '../integration/pair-harness.ts';
import { launchBrowser, type Browser } from './cdp.ts';
import { makeTestCertificate, type TestCertificate } from '../helpers/test-ca.ts';
import { trustCaForBrowser } from './test-ca.ts';

const CHROMIUM = '/usr/bin/chromium';
const HOSTNAME = 'turn.test';
const TLS_PORT = 5349;
const REST_SECRET = 'chromium-interop-secret';
const MESSAGES = 20;
const haveTools = ['certutil', 'openssl', 'nsenter', 'curl', 'unshare', 'ip'].every(hasCommand) && hasCommand(CHROMIUM);
const pageScript = readFileSync(new URL('./datachannel.page.js', import.meta.url), 'utf8').replace(/^(\s*\/\/.*\n)+/, '');

let topo: Topology | undefined;
let ca: TestCertificate | undefined;
const work = mkdtempSync(join(tmpdir(), 'tp-chromium-'));

before(async () => {
  if (!(process.getuid?.() === 0 && haveTools)) return;
  topo = await createTopology({ prefix: 'tpcr', ipv6: false });
  // The relay reads the certificate as its own user, through this directory.
  chmodSync(work, 0o711);
  ca = makeTestCertificate(mkdtempSync(join(work, 'certs-')), HOSTNAME);
});

after(async () => {
  await topo?.destroy();
  rmSync(work, { recursive: true, force: true });
});

function gate(t: TestContext): { topo: Topology; ca: TestCertificate } | undefined {
  if (!requireRoot(t)) return undefined;
  if (!requireCapability(t, haveTools && topo !== undefined && ca !== undefined, `needs ${CHROMIUM} (Debian chromium), certutil (libnss3-tools), openssl, nsenter, curl, unshare and ip`)) return undefined;
  return { topo: topo!, ca: ca! };
}

/** A coturn-style TURN REST credential (username "expiry:user", password base64 HMAC-SHA1 of it), as an application server hands out. */
function restCredential(user: string): { username: string; credential: string } {
  const username = `${Math.floor(Date.now() / 1000) + 600}:${user}`;
  return { username, credential: createHmac('sha1', REST_SECRET).update(username).digest('base64') };
}

interface CandidateStats {
  candidateType?: string;
  protocol?: string;
  relayProtocol?: string;
  address?: string;
  port?: number;
  url?: string;
}

interface PairStats {
  state?: string;
  nominated?: boolean;
  bytesSent?: number;
  bytesReceived?: number;
  local?: CandidateStats;
  remote?: CandidateStats;
}

interface PageResult {
  ok: boolean;
  error?: string;
  receivedByA?: string[];
  receivedByB?: string[];
  selected: { a?: PairStats; b?: PairStats };
  events: string[];
  candidateErrors: { pc: string; url: string; errorCode: number; errorText: string }[];
}

/** Starts Chromium in the client namespace with its own HOME (whose NSS database decides what it trusts). */
async function browserIn(topo: Topology, name: string, trustCa: string | undefined): Promise<Browser> {
  const home = mkdtempSync(join(work, `${name}-home-`));
  if (trustCa) trustCaForBrowser(home, trustCa);
  return launchBrowser({
    executable: CHROMIUM,
    wrapper: ['nsenter', `--net=${nsPath(topo, 'client')}`],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home },
    userDataDir: join(home, 'profile'),
    args: [
      // The test runs as root, where Chromium's sandbox refuses to start.
      '--no-sandbox',
      `--host-resolver-rules=MAP ${HOSTNAME} ${topo.addr.relay4}`,
      '--disable-features=WebRtcHideLocalIpsWithMdns',
    ],
  });
}

const iceServers = () => [{ urls: `turns:${HOSTNAME}:${TLS_PORT}?transport=tcp`, ...restCredential('chromium') }];
const inPage = <T>(browser: Browser, call: string, args: object, timeoutMs: number) =>
  browser.evaluate<T>(`(${pageScript}).${call}(${JSON.stringify(args)})`, timeoutMs + 5000);

interface GatherResult {
  completed: boolean;
  candidates: string[];
  candidateErrors: { url: string; errorCode: number; errorText: string }[];
}

/** The relay's last line, "relay stopped", with the transport's stream counters (src/relay/transport/stream-connections.ts). */
interface RelayStopped {
  transport?: { streams?: { accepted: { tcp: number; tls: number }; closed: Record<string, number> } };
}

test('Chromium with only a turns: ICE server and relay policy opens a data channel through the pair; it verifies the certificate (trusted: test CA in its NSS db; untrusted: no relay candidate)', { timeout: 150_000 }, async (t) => {
  const g = gate(t);
  if (!g) return;
  const { topo, ca } = g;
  const t0 = Date.now();
  const phases: string[] = [];
  const phase = (name: string) => phases.push(`${name} ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  const pair = await startPair(topo, {
    ebpf: 'off',
    env: {
      TURNPIKE_TLS_CERT: ca.cert,
      TURNPIKE_TLS_KEY: ca.key,
      TURNPIKE_TLS_PORT: String(TLS_PORT),
      TURNPIKE_REST_SECRET: REST_SECRET,
      // Both peer connections relay through this one server: each one's peer is the other's allocation.
      TURNPIKE_ALLOW_RELAYED_PEERS: 'true',
    },
  });
  // The browsers start while the pair does (each takes seconds on a loaded machine); neither talks to it before it is ready.
  const launches = [browserIn(topo, 'untrusting', undefined), browserIn(topo, 'trusting', ca.ca)] as const;
  const launched = async () => (await Promise.allSettled(launches)).flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  try {
    const [untrusting, trusting] = (await Promise.all([Promise.all(launches), pair.waitReady(60_000)]))[0];
    phase('pair ready, browsers started');

    // A browser that does not trust the test CA refuses the server: no allocation, no relay candidate.
    const refused = await inPage<GatherResult>(untrusting, 'gather', { iceServers: iceServers(), timeoutMs: 10_000 }, 10_000);
    phase('untrusting gathered');
    t.diagnostic(`without the CA: ${JSON.stringify(refused)}`);
    assert.deepEqual(refused.candidates.filter((c) => / typ relay /.test(c)), [], 'no relay candidate from a server the browser does not trust');
    assert.ok(refused.candidateErrors.length > 0, 'the browser reports the failed TURN server');

    const r = await inPage<PageResult>(trusting, 'dataChannel', { iceServers: iceServers(), messages: MESSAGES, timeoutMs: 20_000 }, 20_000);
    phase('data channel');
    t.diagnostic(JSON.stringify({ selected: r.selected, candidateErrors: r.candidateErrors }));
    assert.ok(r.ok, `${r.error}\n${r.events.join('\n')}\ncandidate errors: ${JSON.stringify(r.candidateErrors)}`);
    assert.deepEqual(r.receivedByB, Array.from({ length: MESSAGES }, (_, i) => `a->b ${i}`));
    assert.deepEqual(r.receivedByA, Array.from({ length: MESSAGES }, (_, i) => `b->a ${i}`));
    for (const side of ['a', 'b'] as const) {
      const s = r.selected[side];
      assert.equal(s?.local?.candidateType, 'relay', `${side}: local candidate ${JSON.stringify(s)}`);
      assert.equal(s?.remote?.candidateType, 'relay', `${side}: remote candidate ${JSON.stringify(s)}`);
      assert.equal(s?.local?.relayProtocol, 'tls', `${side}: relayProtocol ${JSON.stringify(s)}`);
      assert.equal(s?.local?.address, topo.addr.relay4, `${side}: relayed address`);
    }

    // turnpike's side, while the connections are open: their allocations, and
    // the data channel's packets relayed; nothing came to the UDP listen port.
    const status = await waitUntil('the relay reports the allocations', async () => {
      const s = await pair.status();
      return (s.relayCounters?.allocations ?? 0) >= 2 && (s.relayCounters?.relayed.toPeer.packets ?? 0) > 0 ? s : undefined;
    }, 5000, 200);
    const sockets = status.sockets as { in: { listen: { packets: number } } };
    assert.equal(sockets.in.listen.packets, 0, 'no TURN over UDP');
    await inPage(trusting, 'close', {}, 5000);
  } catch (e) {
    t.diagnostic(`pair output (tail):\n${pair.output().split('\n').slice(-40).join('\n')}`);
    for (const b of await launched()) t.diagnostic(`chromium stderr (tail):\n${b.stderr().split('\n').slice(-20).join('\n')}`);
    throw e;
  } finally {
    // Every launch settles first: one may still be starting when something else failed.
    await Promise.all((await launched()).map((b) => b.close()));
    await pair.stop();
    phase('stopped');
    t.diagnostic(phases.join(', '));
  }
  // The relay's last word: TLS connections accepted (the allocations' transport), one refused by the untrusting browser's handshake.
  const stopped = pair.lines().find((l) => l.process === 'relay' && l.msg === 'relay stopped') as RelayStopped | undefined;
  assert.ok(stopped, `relay stopped line:\n${pair.output().split('\n').slice(-10).join('\n')}`);
  t.diagnostic(`relay streams: ${JSON.stringify(stopped.transport?.streams)}`);
  const streams = stopped.transport?.streams;
  assert.ok((streams?.accepted.tls ?? 0) >= 2, `TLS connections: ${JSON.stringify(streams)}`);
  assert.equal(streams?.accepted.tcp, 0, 'no TURN over plain TCP');
  assert.ok((streams?.closed['tls:tls-error'] ?? 0) >= 1, `the untrusting browser aborted the handshake: ${JSON.stringify(streams)}`);
});
