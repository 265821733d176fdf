// The Grafana dashboard against a real pair: the sidecar with the XDP program
// attached natively in the relay namespace of a client / relay / peer
// topology, the relay behind it, traffic from a TURN client through both
// datapaths (test/integration/dashboard-traffic.ts). Afterwards every metric
// the dashboard queries (deploy/grafana/turnpike.json) has samples in
// /metrics; Firezone's names data_relayed_ebpf_bytes and
// data_relayed_userspace_bytes carry the bytes turnpike.relayed.bytes reports
// per datapath; both processes' GC pauses are in v8js.gc.duration; and
// `turnpike status` shows the XDP datapath and its maps.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { requireRoot, requireCapability, hasCommand } from '../helpers/env.ts';
import { createTopology, type Topology } from '../helpers/netns.ts';
import { startPair, strictChecksums, inNs, nsPath, USER, PASS, type Pair } from './pair-harness.ts';
import { repoRoot } from '../interop/harness.ts';
import { waitUntil } from './telemetry-pair-harness.ts';
import { dashboardMetrics, hasSample } from '../deploy/dashboard.ts';

const haveTools = hasCommand('nsenter') && hasCommand('curl');
let topo: Topology | undefined;

before(async () => {
  if (!(process.getuid?.() === 0 && haveTools)) return;
  topo = await createTopology({ prefix: 'tpdash', ipv6: false });
  await strictChecksums(topo);
  await topo.enableRelayXdpTx();
  // bpf_fib_lookup needs forwarding on the relay's interface (see telemetry-pair-xdp.test.ts).
  await inNs(topo, 'relay', 'sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/conf/all/forwarding']);
});

after(async () => {
  await topo?.destroy();
});

function gate(t: TestContext): Topology | undefined {
  return requireRoot(t) && requireCapability(t, haveTools && topo !== undefined, 'needs nsenter and curl') ? topo : undefined;
}

function inNamespace(topology: Topology, role: 'client' | 'peer' | 'relay', args: string[]): { proc: ChildProcess; output: () => string } {
  const proc = spawn('nsenter', [`--net=${nsPath(topology, role)}`, process.execPath, '--import', 'tsx', ...args], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { proc, output: () => out };
}

const exited = (p: ChildProcess) => new Promise<number | null>((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', r)));

/** Sum of the samples of `name` whose labels include every `label="value"` given. */
function sum(exposition: string, name: string, labels: string[] = []): number {
  return exposition
    .split('\n')
    .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && labels.every((x) => l.includes(x)))
    .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

test('after traffic through both datapaths, every metric the dashboard queries is in /metrics; the Firezone names carry the bytes', async (t) => {
  const topology = gate(t);
  if (!topology) return;
  const peerPort = randomInt(30000, 32000);
  const peer = inNamespace(topology, 'peer', ['test/integration/telemetry-pair-udp.ts', 'peer', String(peerPort)]);
  let pair: Pair | undefined;
  try {
    await waitUntil('echo peer ready', () => peer.output().includes('"ready":true'));
    pair = await startPair(topology, { ebpf: 'required', xdpMode: 'native', env: { TURNPIKE_MAX_ALLOCATIONS_PER_USER: '1' } });
    await pair.waitReady();
    assert.equal((await pair.status()).mode, 'xdp');

    const client = inNamespace(topology, 'client', ['test/integration/dashboard-traffic.ts', topology.addr.relay4, String(pair.listenPort), topology.addr.peer4, String(peerPort), USER, PASS]);
    assert.equal(await exited(client.proc), 0, client.output());
    const result = JSON.parse(client.output().trim().split('\n').at(-1)!) as { sent: number; received: number; refused: number };
    t.diagnostic(`client: ${JSON.stringify(result)}`);
    assert.equal(result.refused, 486, 'the second allocation of the user is refused by its quota');
    assert.ok(result.received > 0, 'echoes came back');

    // Every byte the client sent reached the peer and came back (received == sent): in all,
    // xdp + sidecar + userspace relayed 2 x (30 x 100 + 10 x 60) bytes once every datapath's counters are in
    // (the sidecar's fast path relays what the kernel passed, e.g. before a next hop is known).
    const relayedBytes = 2 * (30 * 100 + 10 * 60);
    assert.equal(result.received, result.sent, 'every echo came back');
    const wanted = dashboardMetrics();
    let text = '';
    const bytesOf = (datapath: string) => sum(text, 'turnpike_relayed_bytes_total', [`datapath="${datapath}"`]);
    await waitUntil('every dashboard metric in /metrics, and the traffic counted', async () => {
      text = (await pair!.get('/metrics')).body;
      return wanted.every((name) => hasSample(text, name)) && sum(text, 'turnpike_relay_refused_total') > 0 && bytesOf('xdp') + bytesOf('sidecar') + bytesOf('userspace') === relayedBytes;
    }, 15_000).catch(() =>
      assert.fail(`after traffic: missing ${wanted.filter((n) => !hasSample(text, n)).join(', ') || 'none'}; refused ${sum(text, 'turnpike_relay_refused_total')}; relayed xdp ${bytesOf('xdp')} + sidecar ${bytesOf('sidecar')} + userspace ${bytesOf('userspace')} of ${relayedBytes} bytes`),
    );
    t.diagnostic(`dashboard metrics present: ${wanted.length}`);

    // GC pauses (v8js.gc.duration): the sidecar's own in /metrics; the relay's GC totals arrive with its
    // counters (a short, lightly loaded relay may not have collected yet: the totals, not a series, are
    // what this run can require; test/telemetry/gc-metric.test.ts turns totals into the histogram).
    const gcCount = (process: string) => sum(text, 'v8js_gc_duration_count', [`process="${process}"`]);
    // A quiet sidecar may not have collected since its metrics started: each scrape leaves it garbage until it does.
    await waitUntil('a GC of the sidecar in /metrics', async () => {
      text = (await pair!.get('/metrics')).body;
      return gcCount('sidecar') > 0;
    }, 60_000).catch(() => assert.fail(`no sidecar GC in /metrics:\n${text.split('\n').filter((l) => l.startsWith('v8js')).join('\n')}`));
    const relayGc = ((await pair.status()) as { relayCounters?: { gc?: Record<string, { count: number[] }> } }).relayCounters?.gc;
    assert.ok(relayGc !== undefined && typeof relayGc === 'object', 'the relay\'s counters carry its GC totals');
    const relayTotal = Object.values(relayGc).reduce((n, t) => n + t.count.reduce((a, b) => a + b, 0), 0);
    assert.equal(gcCount('relay'), relayTotal, 'the relay\'s series count what its totals say');
    t.diagnostic(`GCs: sidecar ${gcCount('sidecar')}, relay ${gcCount('relay')}`);

    // The Firezone names: one scrape, so both sides come from the same collection.
    const xdpBytes = bytesOf('xdp');
    const userspaceBytes = bytesOf('sidecar') + bytesOf('userspace');
    t.diagnostic(`xdp ${xdpBytes} B, sidecar ${bytesOf('sidecar')} B, relay ${bytesOf('userspace')} B`);
    assert.ok(xdpBytes > 0, 'the kernel relayed');
    assert.ok(bytesOf('userspace') > 0, 'the relay relayed (Send indications)');
    assert.equal(sum(text, 'data_relayed_ebpf_bytes_total'), xdpBytes);
    assert.equal(sum(text, 'data_relayed_userspace_bytes_total'), userspaceBytes);
    assert.ok(sum(text, 'turnpike_relay_refused_total', ['reason="allocations-per-user"']) >= 1);
    assert.ok(sum(text, 'turnpike_relay_dropped_total', ['reason="no-channel"']) >= 1, 'ChannelData on an unbound channel: dropped by the relay');

    // turnpike status, from the relay namespace where the admin server listens.
    const status = inNamespace(topology, 'relay', ['src/cmd/status.ts', 'status', '--admin', '127.0.0.1:9469', '--interval', '0.5']);
    assert.equal(await exited(status.proc), 0, status.output());
    const view = status.output();
    t.diagnostic(`turnpike status:\n${view}`);
    assert.match(view, new RegExp(`^datapath +xdp on ${topology.dev.relay} \\(native\\)`, 'm'));
    assert.match(view, /^kernel maps +tp_\w+ \d+\/[\d,]+ /m);
    assert.match(view, /^refusals +allocations-per-user [1-9]/m);
  } catch (e) {
    if (pair) t.diagnostic(`pair output (tail):\n${pair.output().split('\n').slice(-30).join('\n')}`);
    throw e;
  } finally {
    peer.proc.stdin!.end();
    if (peer.proc.exitCode === null) peer.proc.kill('SIGKILL');
    await pair?.stop();
  }
});
