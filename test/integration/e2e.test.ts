// The pair end to end, as an operator runs it: `src/cmd/turnpike.ts` (sidecar + relay,
// the relay dropped to `nobody`) in the relay namespace of a client / relay /
// peer topology joined by a bridge. coturn's turnutils_uclient (client ns)
// talks to turnutils_peer (peer ns) through turnpike with 0 lost messages,
// over IPv4 and IPv6, with the XDP program in native and skb mode and with
// eBPF off. With eBPF on, the kernel's counters carry the channel data and the
// relay's userspace count stays near zero; with eBPF off, the relay carries it.
// Every veth end has checksum offload off, so each receiving stack verifies
// every checksum: UDP InCsumErrors in the client and peer namespaces stays 0.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot, requireCapability, hasCommand } from '../helpers/env.ts';
import { createTopology, type Topology } from '../helpers/netns.ts';
import { parseUclient, describe as describeRun, type UclientSummary } from '../interop/harness.ts';
import { startPair, udpCsumErrors, strictChecksums, inNs, type Pair, type Status, type StopReport, USER, PASS } from './pair-harness.ts';

const PEER_PORT = 3480;
const MESSAGES = 50;
const haveTools = hasCommand('turnutils_uclient') && hasCommand('turnutils_peer') && hasCommand('nsenter') && hasCommand('curl');

let topo: Topology | undefined;

before(async () => {
  if (!(process.getuid?.() === 0 && haveTools)) return;
  topo = await createTopology({ prefix: 'tpe2e' });
  await strictChecksums(topo);
  // Native XDP_TX on veth needs an XDP program on the receiving end too.
  await topo.enableRelayXdpTx();
  topo.spawn('peer', 'turnutils_peer', ['-p', String(PEER_PORT), '-L', topo.addr.peer4, '-L', topo.addr.peer6!]);
  await new Promise((r) => setTimeout(r, 300));
});

after(async () => {
  await topo?.destroy();
});

function gate(t: TestContext): Topology | undefined {
  if (!requireRoot(t) || !requireCapability(t, haveTools && topo !== undefined, 'needs coturn (turnutils_uclient, turnutils_peer), nsenter and curl')) return undefined;
  return topo;
}

async function uclient(topo: Topology, pair: Pair, family: 4 | 6, extra: string[] = []): Promise<UclientSummary> {
  const server = family === 6 ? topo.addr.relay6! : topo.addr.relay4;
  const peer = family === 6 ? topo.addr.peer6! : topo.addr.peer4;
  const args = ['-p', String(pair.listenPort), '-u', USER, '-w', PASS, '-e', peer, '-r', String(PEER_PORT), '-n', String(MESSAGES), '-l', '120', ...(family === 6 ? ['-x'] : []), ...extra, server];
  try {
    const out = await inNs(topo, 'client', 'turnutils_uclient', args, 30_000);
    return parseUclient(out, 0);
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number };
    return parseUclient(`${err.stdout ?? ''}\n${err.stderr ?? ''}`, typeof err.code === 'number' ? err.code : null);
  }
}

function assertNoLoss(s: UclientSummary, what: string): void {
  assert.deepEqual(s.errors, [], `${what}: TURN errors: ${describeRun(s)}`);
  assert.ok(s.sent > 0, `${what}: nothing sent: ${describeRun(s)}\n${s.output.slice(-1500)}`);
  assert.equal(s.lost, 0, `${what}: lost packets: ${describeRun(s)}`);
  assert.equal(s.received, s.sent, `${what}: received != sent: ${describeRun(s)}`);
}

const num = (v: string | number | undefined) => Number(v ?? 0);
/** ChannelData relayed by the kernel, both directions (packets). */
function kernelRelayed(s: Status): number {
  return (s.kernel?.paths ?? []).reduce((n, p) => n + num(p.packets), 0);
}
/** Relayed in userspace: by the relay, and by the sidecar's fast path (what the kernel did not relay). */
function userspaceRelayed(s: Status): number {
  const r = s.relayCounters?.relayed;
  const sidecar = Object.values(s.fastPath?.paths ?? {}).reduce((n, p) => n + p.packets, 0);
  return (r ? r.toPeer.packets + r.toClient.packets : 0) + sidecar;
}

async function withPair(t: TestContext, topo: Topology, opts: Parameters<typeof startPair>[1], run: (pair: Pair) => Promise<void>): Promise<StopReport> {
  const pair = await startPair(topo, opts);
  try {
    await pair.waitReady();
    await run(pair);
  } catch (e) {
    t.diagnostic(`pair output (tail):\n${pair.output().split('\n').slice(-40).join('\n')}`);
    await pair.stop();
    throw e;
  }
  return pair.stop();
}

for (const mode of ['native', 'skb', 'off'] as const) {
  test(`uclient through the pair (${mode === 'off' ? 'eBPF off' : `XDP ${mode}`}): IPv4 and IPv6, 0 lost, valid checksums, the right datapath counts`, async (t) => {
    const topo = gate(t);
    if (!topo) return;
    const csumBefore = (await udpCsumErrors(topo, 'client')) + (await udpCsumErrors(topo, 'peer'));
    const stopped = await withPair(t, topo, mode === 'off' ? { ebpf: 'off' } : { ebpf: 'required', xdpMode: mode }, async (pair) => {
      const s0 = await pair.status();
      assert.equal(s0.mode, mode === 'off' ? 'userspace' : 'xdp');
      for (const family of [4, 6] as const) {
        const run = await uclient(topo, pair, family);
        assertNoLoss(run, `IPv${family}`);
        t.diagnostic(`IPv${family}: ${describeRun(run)}`);
      }
      // The relay's counters arrive once a second.
      await new Promise((r) => setTimeout(r, 1500));
      const s = await pair.status();
      const kernel = kernelRelayed(s);
      const user = userspaceRelayed(s);
      // uclient sends MESSAGES per family on its data channel (plus RTCP), each echoed back.
      const expected = 2 * 2 * MESSAGES;
      t.diagnostic(`kernel relayed ${kernel} packets, relay (userspace) relayed ${user}; reasons ${JSON.stringify(s.kernel?.reasons ?? {})}`);
      if (mode === 'off') {
        assert.equal(kernel, 0);
        assert.ok(user >= expected, `userspace relayed ${user}, expected >= ${expected}`);
      } else {
        assert.ok(kernel >= expected, `kernel relayed ${kernel}, expected >= ${expected}`);
        // Near zero: at most the few datagrams that arrive before a next hop is learned.
        assert.ok(user <= expected / 10, `userspace relayed ${user} of ${kernel + user}`);
      }
    });
    // SIGTERM: both processes stop cleanly, the program is detached and its pins removed (keepPinned is off).
    assert.equal(stopped.exitCode, 0, 'launcher exit code after SIGTERM');
    assert.deepEqual(stopped.pinsLeft, [], 'pins left after a clean stop');
    assert.doesNotMatch(await inNs(topo, 'relay', 'ip', ['link', 'show', topo.dev.relay]), /xdp/, 'XDP program left attached');
    const csumAfter = (await udpCsumErrors(topo, 'client')) + (await udpCsumErrors(topo, 'peer'));
    assert.equal(csumAfter - csumBefore, 0, 'UDP checksum errors in the client or peer namespace');
  });
}
