// Issue 5 with the kernel fast path: the pair (launcher, sidecar with the XDP
// program attached natively, relay) in the relay namespace of a client /
// relay / peer topology. A TURN client in the client namespace sends N
// ChannelData of known size to an echo peer in the peer namespace. The OTLP
// export (in-test collector on a Unix socket, reachable from the namespace)
// and /metrics must report, per datapath, exactly what each datapath's own
// counters hold (kernel per-CPU maps for xdp, the relay's COUNTERS frames for
// userspace), the xdp series must carry the traffic, and xdp + userspace must
// equal what the client sent and the peer received. (This test found that
// the xdp series showed whichever of two kernel paths with the same
// direction/family was observed last; src/telemetry/metrics.ts now sums them.)
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { requireRoot, requireCapability, hasCommand } from '../helpers/env.ts';
import { createTopology, type Topology } from '../helpers/netns.ts';
import { startOtlpCollector, pointValue, type OtlpCollector, type DecodedExport } from '../helpers/otlp-collector.ts';
import { startPair, strictChecksums, inNs, nsPath, USER, PASS, type Pair, type Status } from './pair-harness.ts';
import { repoRoot } from '../interop/harness.ts';
import { waitUntil } from './telemetry-pair-harness.ts';

const N = 40;
const SIZE = 97;
const haveTools = hasCommand('nsenter') && hasCommand('curl');

let shared: Topology | undefined;
let collector: OtlpCollector | undefined;
let dir: string | undefined;

before(async () => {
  if (!(process.getuid?.() === 0 && haveTools)) return;
  dir = mkdtempSync(join(tmpdir(), 'tptelx-'));
  collector = await startOtlpCollector({ address: `unix://${join(dir, 'otlp.sock')}` });
  shared = await createTopology({ prefix: 'tptelx', ipv6: false });
  await strictChecksums(shared);
  await shared.enableRelayXdpTx();
  // The fast path looks next hops up with bpf_fib_lookup, which needs
  // forwarding on the interface; without it the sidecar warns and answers via
  // the L2 hop each packet came from, which on this LAN is the client.
  await inNs(shared, 'relay', 'sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/conf/all/forwarding']);
});

after(async () => {
  await shared?.destroy();
  await collector?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The topology when the test may run; undefined when it was skipped. */
function gate(t: TestContext): Topology | undefined {
  return requireRoot(t) && requireCapability(t, haveTools && shared !== undefined, 'needs nsenter and curl') ? shared : undefined;
}

/** Runs test/integration/telemetry-pair-udp.ts in a namespace. */
function udpTool(topo: Topology, role: 'client' | 'peer', args: string[]): { proc: ChildProcess; lines: () => Record<string, number>[] } {
  const proc = spawn('nsenter', [`--net=${nsPath(topo, role)}`, process.execPath, '--import', 'tsx', 'test/integration/telemetry-pair-udp.ts', ...args], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return {
    proc,
    lines: () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, number>),
  };
}

const num = (v: string | number | undefined) => Number(v ?? 0);
type Flow = { packets: number; bytes: number };
type Totals = Record<'to_peer' | 'to_client', Flow>;

/** Kernel path counters from /status, summed per direction (chan_to_udp: to the peer, udp_to_chan: to the client). */
function kernelTotals(s: Status): Totals {
  return pathTotals(s.kernel?.paths ?? []);
}

function pathTotals(paths: readonly { path: string; packets: string | number; bytes: string | number }[]): Totals {
  const t: Totals = { to_peer: { packets: 0, bytes: 0 }, to_client: { packets: 0, bytes: 0 } };
  for (const p of paths) {
    const dir = p.path.startsWith('chan_to_udp') ? 'to_peer' : p.path.startsWith('udp_to_chan') ? 'to_client' : undefined;
    if (!dir) continue;
    t[dir].packets += num(p.packets);
    t[dir].bytes += num(p.bytes);
  }
  return t;
}

/** Relayed in userspace: by the relay and by the sidecar's fast path (what the kernel passed, issue 13). */
function relayTotals(s: Status): Totals {
  const r = (s.relayCounters as any)?.relayed;
  return addTotals(
    {
      to_peer: { packets: r?.toPeer.packets ?? 0, bytes: r?.toPeer.bytes ?? 0 },
      to_client: { packets: r?.toClient.packets ?? 0, bytes: r?.toClient.bytes ?? 0 },
    },
    pathTotals(Object.entries(s.fastPath?.paths ?? {}).map(([path, v]) => ({ path, ...v }))),
  );
}

function addTotals(a: Totals, b: Totals): Totals {
  const add = (x: Flow, y: Flow) => ({ packets: x.packets + y.packets, bytes: x.bytes + y.bytes });
  return { to_peer: add(a.to_peer, b.to_peer), to_client: add(a.to_client, b.to_client) };
}

/** The userspace series: the relay's and the sidecar fast path's. */
const userSeries = (read: (match: Record<string, string>) => number[]) => addTotals(sumSeries(read, 'userspace'), sumSeries(read, 'sidecar'));

/** Sums a metric over the series matching `match` (xdp series are split by family). */
function sumSeries(read: (match: Record<string, string>) => number[], datapath: string): Totals {
  const get = (what: 'packets' | 'bytes', direction: string) => read({ what, datapath, direction }).reduce((a, b) => a + b, 0);
  return {
    to_peer: { packets: get('packets', 'to_peer'), bytes: get('bytes', 'to_peer') },
    to_client: { packets: get('packets', 'to_client'), bytes: get('bytes', 'to_client') },
  };
}

function otlpRead(e: DecodedExport) {
  return ({ what, ...attrs }: Record<string, string>) =>
    (e.metrics.find((m) => m.name === `turnpike.relayed.${what}`)?.points ?? [])
      .filter((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v))
      .map((p) => p.value);
}

function promRead(text: string) {
  return ({ what, ...attrs }: Record<string, string>) =>
    text.split('\n').flatMap((line) => {
      const name = `turnpike_relayed_${what}_total{`;
      if (!line.startsWith(name)) return [];
      const labels = Object.fromEntries([...line.slice(name.length, line.indexOf('}')).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
      return Object.entries(attrs).every(([k, v]) => labels[k] === v) ? [Number(line.slice(line.lastIndexOf(' ') + 1))] : [];
    });
}

test('XDP native: relayed bytes and packets per datapath in OTLP and /metrics match the datapaths and the traffic', async (t) => {
  const topo = gate(t);
  if (!topo) return;
  const peerPort = randomInt(30000, 32000);
  const peer = udpTool(topo, 'peer', ['peer', String(peerPort)]);
  let pair: Pair | undefined;
  try {
    await waitUntil('echo peer ready', () => peer.lines().some((l) => l.ready));
    pair = await startPair(topo, {
      ebpf: 'required',
      xdpMode: 'native',
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector!.url, OTEL_EXPORTER_OTLP_INSECURE: 'true', TURNPIKE_METRICS_INTERVAL: '1' },
    });
    await pair.waitReady();
    assert.equal((await pair.status()).mode, 'xdp');

    const client = udpTool(topo, 'client', ['client', topo.addr.relay4, String(pair.listenPort), topo.addr.peer4, String(peerPort), String(N), String(SIZE), USER, PASS]);
    const code = await new Promise<number | null>((r) => client.proc.once('exit', r));
    const sent = client.lines().at(-1);
    assert.equal(code, 0, `client failed: ${JSON.stringify(client.lines())}`);
    peer.proc.stdin!.end();
    await new Promise((r) => peer.proc.once('exit', r));
    const atPeer = peer.lines().at(-1)!;
    const st = await pair.status();
    t.diagnostic(`client ${JSON.stringify(sent)} peer ${JSON.stringify(atPeer)} kernel ${JSON.stringify(st.kernel)} relay ${JSON.stringify(st.relayCounters)}`);
    // Loss-free run: what was sent is what the peer received, and every echo came back.
    assert.deepEqual(sent, { sent: N, sentBytes: N * SIZE, received: N, receivedBytes: N * SIZE });
    assert.deepEqual(atPeer, { received: N, bytes: N * SIZE });
    const traffic: Totals = { to_peer: { packets: N, bytes: N * SIZE }, to_client: { packets: N, bytes: N * SIZE } };

    // The sources: kernel counters and the relay's counters, together the whole run.
    const sources = await waitUntil('kernel + relay counters to cover the run', async () => {
      const s = await pair!.status();
      const k = kernelTotals(s);
      const u = relayTotals(s);
      const sum = (d: 'to_peer' | 'to_client') => ({ packets: k[d].packets + u[d].packets, bytes: k[d].bytes + u[d].bytes });
      return JSON.stringify({ to_peer: sum('to_peer'), to_client: sum('to_client') }) === JSON.stringify(traffic) ? { k, u } : undefined;
    }, 10_000);
    t.diagnostic(`xdp ${JSON.stringify(sources.k)}; userspace ${JSON.stringify(sources.u)}`);
    assert.ok(sources.k.to_peer.packets > 0 && sources.k.to_client.packets > 0, 'the kernel relayed in both directions');

    // /metrics: each datapath's series equal its source.
    let seen = '';
    await waitUntil('/metrics per datapath', async () => {
      const text = (await pair!.get('/metrics')).body;
      const read = promRead(text);
      seen = `xdp ${JSON.stringify(sumSeries(read, 'xdp'))} userspace ${JSON.stringify(userSeries(read))}\n${text.split('\n').filter((l) => l.startsWith('turnpike_relayed')).join('\n')}`;
      return JSON.stringify(sumSeries(read, 'xdp')) === JSON.stringify(sources.k) && JSON.stringify(userSeries(read)) === JSON.stringify(sources.u);
    }, 10_000).catch((e: Error) => assert.fail(`${e.message}; /metrics: ${seen}`));

    // OTLP export: the same.
    const matches = (e: DecodedExport) =>
      JSON.stringify(sumSeries(otlpRead(e), 'xdp')) === JSON.stringify(sources.k) && JSON.stringify(userSeries(otlpRead(e))) === JSON.stringify(sources.u);
    const exp = await Promise.race([
      collector!.waitFor(matches),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no OTLP export matching the datapath counters')), 10_000).unref()),
    ]);
    assert.equal(pointValue(exp, 'turnpike.relayed.packets', { datapath: 'xdp', direction: 'to_peer', family: 'ipv4' }), sources.k.to_peer.packets);
  } catch (e) {
    if (pair) t.diagnostic(`pair output (tail):\n${pair.output().split('\n').slice(-30).join('\n')}`);
    throw e;
  } finally {
    if (peer.proc.exitCode === null) peer.proc.kill('SIGKILL');
    await pair?.stop();
  }
});
