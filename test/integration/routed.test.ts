// The fast path where relays actually run (issue 11): the relay on a LAN
// behind its gateway with forwarding off, client and peer each behind a
// router (test/helpers/netns.ts createRoutedTopology), and the pair started
// as `npm start` with no settings but what the test network needs (users,
// allowed peers, ports): eBPF mode, interface, attach mode and relayed
// addresses are all the defaults.
// - The program is attached to the default route's interface in native mode
//   and takes its next hops from the kernel's tables (the sidecar's mirror).
// - One-way and two-way flows, IPv4, IPv6 and across families, are relayed
//   by the kernel from the first ChannelData after the bind: the program's
//   own per-path counters grow by exactly what the peer (and client) received,
//   nothing is passed for lack of a next hop and the relay relays nothing.
// - A frame from the LAN that claims the peer's address steers nothing.
// - The route to the peer moved to an interface the program is not on:
//   packets are passed (pass_other_interface), none lost; the route
//   removed: the default gateway carries them, in the kernel again.
// - The peer's router changes its MAC mid-flow (as a failover would,
//   announcing it): within a second nothing goes to the old MAC.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { requireRoot, requireCapability, hasCommand } from '../helpers/env.ts';
import { createRoutedTopology, type RoutedRole, type RoutedTopology } from '../helpers/netns.ts';
import { startPair, sleep, waitUntil, repoRoot, type Pair, type Status, USER, PASS } from './pair-harness.ts';

const haveTools = hasCommand('nsenter') && hasCommand('curl') && hasCommand('tcpdump') && hasCommand('ethtool');
const N = 200;
const PPS = 1000;

/** A fixture process printing JSON lines: the latest line of each event, and waits on them. */
interface Fixture {
  proc: ChildProcess;
  latest(event: string): Record<string, unknown> | undefined;
  all(event: string): Record<string, unknown>[];
  send(line: unknown): void;
  output(): string;
  stop(): Promise<void>;
}

function fixture(topo: RoutedTopology, role: RoutedRole, script: string, args: unknown): Fixture {
  const proc = spawn('nsenter', [`--net=/run/netns/${topo.ns[role]}`, process.execPath, '--import', 'tsx', `test/integration/fixtures/${script}`, JSON.stringify(args)], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let buf = '';
  const lines: Record<string, unknown>[] = [];
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        out += line + '\n';
      }
    }
  });
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return {
    proc,
    latest: (event) => lines.findLast((l) => l.event === event),
    all: (event) => lines.filter((l) => l.event === event),
    send: (line) => proc.stdin!.write(JSON.stringify(line) + '\n'),
    output: () => out,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(3000)]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
}

interface FlowSpec {
  name: string;
  /** The family the client talks to the relay in, and the relayed (peer's) family. */
  client: 4 | 6;
  peer: 4 | 6;
  peerPort: number;
  echo: boolean;
}
const fam = (f: 4 | 6) => String(f);
const oneWay = (client: 4 | 6, peer: 4 | 6, port: number): FlowSpec => ({ name: `one-way ${fam(client)}${fam(peer)}`, client, peer, peerPort: port, echo: false });
const twoWay = (client: 4 | 6, peer: 4 | 6, port: number): FlowSpec => ({ name: `two-way ${fam(client)}${fam(peer)}`, client, peer, peerPort: port, echo: true });
const FLOWS: FlowSpec[] = [
  oneWay(4, 4, 7001), oneWay(6, 6, 7002), oneWay(4, 6, 7003), oneWay(6, 4, 7004),
  twoWay(4, 4, 7011), twoWay(6, 6, 7012), twoWay(4, 6, 7013), twoWay(6, 4, 7014),
  { name: 'spoofed', client: 4, peer: 4, peerPort: 7021, echo: false },
  { name: 'rerouted', client: 4, peer: 4, peerPort: 7031, echo: false },
  { name: 'failover 4', client: 4, peer: 4, peerPort: 7041, echo: false },
  { name: 'failover 6', client: 6, peer: 6, peerPort: 7042, echo: false },
];
const flow = (name: string) => FLOWS.find((f) => f.name === name)!;

let topo: RoutedTopology | undefined;
let pair: Pair | undefined;
let peer: Fixture | undefined;
let client: Fixture | undefined;

const peerAddress = (t: RoutedTopology, f: FlowSpec) => (f.peer === 6 ? t.addr.peer6 : t.addr.peer4);
const peerKey = (t: RoutedTopology, f: FlowSpec) => `${peerAddress(t, f)}|${f.peerPort}`;

before(async () => {
  if (!(process.getuid?.() === 0 && haveTools)) return;
  topo = await createRoutedTopology();
  // Native XDP_TX on veth needs an XDP program on the receiving end too (the LAN bridge's port).
  await topo.enableRelayXdpTx();
  pair = await startPair(topo, { ebpf: 'auto', bare: true });
  await pair.waitReady();
  const t = topo;
  peer = fixture(t, 'peer', 'routed-peer.ts', { sockets: FLOWS.map((f) => ({ address: peerAddress(t, f)!, port: f.peerPort, echo: f.echo })) });
  await waitUntil('the peer sockets', () => peer!.latest('ready'));
  client = fixture(t, 'client', 'routed-client.ts', {
    port: pair.listenPort,
    username: USER,
    password: PASS,
    flows: FLOWS.map((f) => ({ name: f.name, server: f.client === 6 ? t.addr.relay6 : t.addr.relay4, relayFamily: f.peer, peer: peerAddress(t, f), peerPort: f.peerPort })),
  });
  await waitUntil('every flow bound', () => client!.all('bound').length === FLOWS.length || undefined, 20_000).catch((e: Error) => {
    throw new Error(`${e.message}\n${client!.output()}\n${pair!.output().slice(-3000)}`);
  });
});

after(async () => {
  await client?.stop();
  await peer?.stop();
  await pair?.stop();
  await topo?.destroy();
});

function gate(t: TestContext): RoutedTopology | undefined {
  if (!requireRoot(t) || !requireCapability(t, haveTools && topo !== undefined, 'needs nsenter, curl, tcpdump and ethtool')) return undefined;
  return topo;
}

const num = (v: unknown) => Number(v ?? 0);

/** The kernel's counters (per path and reason) and userspace relaying (the relay's plus the sidecar's fast path), from /status. */
async function counters(): Promise<{ paths: Record<string, number>; reasons: Record<string, number>; userspace: number }> {
  const s: Status = await pair!.status();
  const paths = Object.fromEntries((s.kernel?.paths ?? []).map((p) => [p.path, num(p.packets)]));
  const reasons = Object.fromEntries(Object.entries(s.kernel?.reasons ?? {}).map(([k, v]) => [k, num(v)]));
  const r = s.relayCounters?.relayed;
  const fast = (s as { fastPath?: { paths?: Record<string, { packets: number }> } | null }).fastPath?.paths ?? {};
  const sidecar = Object.values(fast).reduce((n, p) => n + p.packets, 0);
  return { paths, reasons, userspace: (r ? r.toPeer.packets + r.toClient.packets : 0) + sidecar };
}

function delta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(b).filter((k) => b[k] !== a[k]).map((k) => [k, b[k]! - (a[k] ?? 0)]));
}

const peerCount = (t: RoutedTopology, f: FlowSpec) => num((peer!.latest('count')?.counts as Record<string, number> | undefined)?.[peerKey(t, f)]);
const clientCount = (f: FlowSpec) => num((client!.latest('count')?.received as Record<string, number> | undefined)?.[f.name]);

/** Sends n ChannelData on a flow and waits until the peer (and, echoing, the client) has them all. */
async function run(t: RoutedTopology, f: FlowSpec, n = N): Promise<void> {
  const [atPeer, atClient] = [peerCount(t, f), clientCount(f)];
  client!.send({ send: f.name, count: n, pps: PPS });
  await waitUntil(`${f.name}: the peer received ${n}`, () => peerCount(t, f) - atPeer >= n || undefined, 15_000);
  if (f.echo) await waitUntil(`${f.name}: the client received ${n} echoes`, () => clientCount(f) - atClient >= n || undefined, 15_000);
  // The relay reports its counters once a second.
  await sleep(1300);
}

const pathName = (dir: 'chan_to_udp' | 'udp_to_chan', from: 4 | 6, to: 4 | 6) => `${dir}_${from}${to}`;
const NO_NEXT_HOP = ['pass_no_neigh', 'pass_no_route', 'pass_other_interface'];

test('npm start with no settings attaches the program to the default route\'s interface, natively, with the kernel\'s next hops', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  const s = await pair!.status();
  const ebpf = s.ebpf as { interfaces: string[]; interfaceSource: string; attachMode: string; attempts: unknown[]; nextHops: { source: string; needed: number; resolved: number; problems: string[] } };
  t.diagnostic(`ebpf: ${JSON.stringify(ebpf)}`);
  assert.equal(s.mode, 'xdp');
  assert.deepEqual(ebpf.interfaces, [tp.dev.relay]);
  assert.equal(ebpf.interfaceSource, 'default-route');
  assert.equal(ebpf.attachMode, 'native');
  assert.equal(ebpf.nextHops.source, 'kernel-mirror');
  assert.deepEqual(ebpf.nextHops.problems, []);
  // Both routers, each in both families (IPv6 via their link-local addresses).
  assert.equal(ebpf.nextHops.needed, 4);
  assert.equal(ebpf.nextHops.resolved, 4);
  const ready = await pair!.get('/readyz');
  assert.equal(ready.status, 200);
  assert.equal((JSON.parse(ready.body) as { datapath: string }).datapath, 'xdp');
  assert.match((await pair!.get('/metrics')).body, /^turnpike_datapath\{[^}]*datapath="xdp",mode="native"[^}]*\} 1$/m);
});

for (const f of FLOWS.filter((x) => x.name.startsWith('one-way') || x.name.startsWith('two-way'))) {
  test(`${f.name}: relayed by the kernel from the first ChannelData after the bind`, async (t) => {
    const tp = gate(t);
    if (!tp) return;
    const c0 = await counters();
    await run(tp, f);
    const c1 = await counters();
    const paths = delta(c0.paths, c1.paths);
    const want: Record<string, number> = { [pathName('chan_to_udp', f.client, f.peer)]: N };
    if (f.echo) want[pathName('udp_to_chan', f.peer, f.client)] = N;
    t.diagnostic(`paths ${JSON.stringify(paths)}, reasons ${JSON.stringify(delta(c0.reasons, c1.reasons))}`);
    assert.deepEqual(paths, want, 'the program relayed every packet the peer (and the client) received, and nothing else');
    for (const r of NO_NEXT_HOP) assert.equal(c1.reasons[r], c0.reasons[r], `nothing passed as ${r}`);
    assert.equal(c1.userspace, c0.userspace, 'userspace relayed nothing');
  });
}

test('a frame from the LAN claiming the peer\'s address steers nothing', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  const f = flow('spoofed');
  const relayed = client!.all('bound').find((b) => b.name === f.name)!.relayed as { port: number };
  // The attacker (br0 on the LAN) takes the peer's address and listens where the peer does.
  await tp.exec('switch', 'ip', ['addr', 'add', `${tp.addr.peer4}/32`, 'dev', tp.links.attacker]);
  const attacker = fixture(tp, 'switch', 'routed-peer.ts', { sockets: [{ address: tp.addr.peer4, port: f.peerPort }] });
  try {
    await waitUntil('the attacker socket', () => attacker.latest('ready'));
    const c0 = await counters();
    // UDP from the peer's address (and the attacker's MAC) to the allocation and to the listen port.
    for (const port of [relayed.port, pair!.listenPort]) {
      await tp.exec('switch', process.execPath, ['--import', 'tsx', `${repoRoot}test/integration/fixtures/udp-send.ts`, tp.addr.peer4, '0', tp.addr.relay4, String(port), '50'], { timeoutMs: 20_000 });
    }
    await run(tp, f);
    const c1 = await counters();
    assert.equal(delta(c0.paths, c1.paths)[pathName('chan_to_udp', 4, 4)], N, 'the kernel relayed the flow');
    assert.equal(num((attacker.latest('count')?.counts as Record<string, number>)?.[`${tp.addr.peer4}|${f.peerPort}`]), 0, 'nothing went to the attacker');
    assert.equal(peerCount(tp, f), N, 'the peer received every packet');
  } finally {
    await attacker.stop();
    await tp.exec('switch', 'ip', ['addr', 'del', `${tp.addr.peer4}/32`, 'dev', tp.links.attacker]).catch(() => undefined);
  }
});

test('the route to the peer moved off the XDP interface: passed, not lost; removed: the default gateway carries it in the kernel', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  const f = flow('rerouted');
  const path = pathName('chan_to_udp', 4, 4);
  try {
    await tp.exec('relay', 'ip', ['route', 'replace', tp.addr.peerNet4, 'via', tp.addr.peerGatewaySide4, 'dev', tp.links.relaySide]);
    await sleep(1000);
    let c0 = await counters();
    await run(tp, f);
    let c1 = await counters();
    t.diagnostic(`via the side link: paths ${JSON.stringify(delta(c0.paths, c1.paths))}, reasons ${JSON.stringify(delta(c0.reasons, c1.reasons))}`);
    assert.equal(delta(c0.paths, c1.paths)[path] ?? 0, 0, 'the program relayed none (XDP_TX cannot leave by the side link)');
    assert.equal(c1.reasons.pass_other_interface! - c0.reasons.pass_other_interface!, N, 'it passed every one as pass_other_interface');
    assert.equal(c1.userspace - c0.userspace, N, 'and userspace (the sidecar fast path or the relay) relayed them');

    await tp.exec('relay', 'ip', ['route', 'del', tp.addr.peerNet4]);
    await sleep(1000);
    c0 = await counters();
    await run(tp, f);
    c1 = await counters();
    t.diagnostic(`via the default gateway: paths ${JSON.stringify(delta(c0.paths, c1.paths))}, reasons ${JSON.stringify(delta(c0.reasons, c1.reasons))}`);
    assert.equal(delta(c0.paths, c1.paths)[path], N, 'the program relayed every one, to the default gateway');
    for (const r of NO_NEXT_HOP) assert.equal(c1.reasons[r], c0.reasons[r], `nothing passed as ${r}`);
    assert.equal(peerCount(tp, f), 2 * N, 'the peer received every packet of both');
  } finally {
    await tp.exec('relay', 'ip', ['route', 'replace', tp.addr.peerNet4, 'via', tp.addr.peerGateway4, 'dev', tp.dev.relay]);
  }
});

test('the peer\'s router changes its MAC mid-flow: within a second nothing goes to the old one (IPv4 and IPv6)', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  const lan = tp.links.peerGatewayLan;
  const oldMac = await tp.mac('peerGateway', lan);
  const newMac = '02:00:5e:10:00:01';
  const capture = tp.spawn('peerGateway', 'tcpdump', ['-i', lan, '-n', '-e', '-tt', '-l', '-U', `ether dst ${oldMac} and udp`]);
  let captured = '';
  let listening = false;
  capture.stdout!.on('data', (d: Buffer) => (captured += d.toString()));
  capture.stderr!.on('data', (d: Buffer) => (listening ||= d.toString().includes('listening on')));
  await waitUntil('tcpdump listening', () => listening || undefined);
  const flows = [flow('failover 4'), flow('failover 6')];
  const total = 3 * PPS;
  const at0 = flows.map((f) => peerCount(tp, f));
  const c0 = await counters();
  for (const f of flows) client!.send({ send: f.name, count: total, pps: PPS });
  await sleep(1000);
  const changedAt = Date.now() / 1000;
  await tp.exec('peerGateway', 'ip', ['link', 'set', 'dev', lan, 'address', newMac]);
  await waitUntil('both flows sent', () => client!.all('sent').filter((s) => flows.some((f) => f.name === s.name)).length === 2 || undefined, 15_000);
  await sleep(1300);
  capture.kill('SIGINT');
  await new Promise((r) => capture.once('exit', r));
  const c1 = await counters();
  const stamps = captured.split('\n').filter(Boolean).map((l) => Number(l.split(' ')[0]));
  const late = stamps.filter((s) => s > changedAt + 1);
  const received = flows.map((f, i) => peerCount(tp, f) - at0[i]!);
  t.diagnostic(`to the old MAC: ${stamps.filter((s) => s <= changedAt).length} before the change, ${stamps.filter((s) => s > changedAt).length} after it ` +
    `(the last ${((Math.max(changedAt, ...stamps) - changedAt) * 1000).toFixed(0)} ms after); received ${JSON.stringify(received)} of ${total} each; paths ${JSON.stringify(delta(c0.paths, c1.paths))}`);
  assert.ok(stamps.some((s) => s <= changedAt), 'the flows went to the old MAC before the change (the capture works)');
  assert.deepEqual(late, [], 'nothing went to the old MAC a second after the change');
  const path = delta(c0.paths, c1.paths);
  assert.equal(path.chan_to_udp_44, total, 'IPv4: every packet relayed by the kernel');
  assert.equal(path.chan_to_udp_66, total, 'IPv6: every packet relayed by the kernel');
  for (const r of received) assert.ok(r >= total - PPS, `the peer kept receiving (${r} of ${total})`);
});
