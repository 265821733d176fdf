// Restarts under traffic, with the pair run by its launcher (src/cmd/turnpike.ts) in
// the relay namespace and the XDP program in native mode:
// - relay killed (SIGKILL) with TURNPIKE_RELAY_GRACE_MS=0 (no grace: see
//   restart-calls.test.ts for the default): the sidecar clears the binding maps and closes the
//   relay's ports, so the kernel stops relaying for bindings the relay no
//   longer has; the launcher restarts the relay, and new allocations work.
// - sidecar killed (SIGKILL): the pinned XDP link and maps keep relaying a
//   live ChannelData flow while no sidecar runs; the restarted sidecar reuses
//   the pins, the relay re-announces, and the maps agree with the relay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Topology } from '../helpers/netns.ts';
import { parseUclient, describe as describeRun } from '../interop/harness.ts';
import { ECHO_PEER_PORT, echoPeerTopology, withXdpPair, startFlow, inNs, waitUntil, sleep, type Pair, type Status, USER, PASS } from './pair-harness.ts';

const PEER_PORT = ECHO_PEER_PORT;
const { gate } = echoPeerTopology('tpe2r');

const entries = (s: Status) => s.maps.tp_chan_to_peer?.entries ?? -1;
const kernelPackets = (s: Status) => (s.kernel?.paths ?? []).reduce((n, p) => n + Number(p.packets), 0);

async function uclientNoLoss(topo: Topology, pair: Pair): Promise<void> {
  const args = ['-p', String(pair.listenPort), '-u', USER, '-w', PASS, '-e', topo.addr.peer4, '-r', String(PEER_PORT), '-n', '50', '-l', '120', topo.addr.relay4];
  const out = await inNs(topo, 'client', 'turnutils_uclient', args, 30_000).catch((e: { stdout?: string; stderr?: string }) => `${e.stdout}\n${e.stderr}`);
  const s = parseUclient(out, 0);
  assert.ok(s.sent > 0 && s.lost === 0 && s.received === s.sent && s.errors.length === 0, `uclient: ${describeRun(s)}`);
}

test('relay killed mid-flow with no grace time: no stale binding stays in the maps, the restarted relay serves new allocations', async (t) => {
  const topo = gate(t);
  if (!topo) return;
  await withXdpPair(t, topo, async (pair) => {
    const flow = startFlow(topo, pair, { peerPort: PEER_PORT, rate: 200 });
    try {
      await flow.bound;
      await waitUntil('echoes through the fast path', () => flow.received() > 50 || undefined);
      const before = await pair.status();
      assert.equal(entries(before), 1, 'the flow\'s binding is in the map');
      assert.ok(kernelPackets(before) > 50, `kernel relayed ${kernelPackets(before)}`);

      const relayPid = pair.childPid('relay')!;
      process.kill(relayPid, 'SIGKILL');
      // The sidecar sees the link drop and clears the maps before the relay is back.
      const cleared = await waitUntil('maps cleared', async () => {
        const s = await pair.status();
        return s.relay.disconnectCleanups >= 1 ? s : undefined;
      });
      assert.equal(entries(cleared), 0, 'bindings of the dead relay left in the map');
      // ...so the kernel no longer relays the orphaned flow (after the flow's
      // 100 ms report interval and what was in flight have passed).
      await sleep(300);
      const r0 = flow.received();
      await sleep(600);
      assert.equal(flow.received() - r0, 0, 'echoes kept arriving after the relay died');

      await pair.waitForStart('relay', 2);
      const after = await waitUntil('restarted relay connected and resynced', async () => {
        const s = await pair.status();
        return s.relay.relayConnected && s.relay.resyncs >= 2 && s.relayCounters ? s : undefined;
      });
      assert.equal(entries(after), 0, 'stale binding after the relay restart');
      assert.equal(after.relayCounters!.channels, 0);
    } finally {
      await flow.stop();
    }
    // New allocations (and their bindings) work through the restarted relay.
    await uclientNoLoss(topo, pair);
  }, { TURNPIKE_RELAY_GRACE_MS: '0' });
});

test('sidecar killed mid-flow: pinned link and maps keep relaying during the gap; state agrees after the resync', async (t) => {
  const topo = gate(t);
  if (!topo) return;
  await withXdpPair(t, topo, async (pair) => {
    const rate = 200;
    const flow = startFlow(topo, pair, { peerPort: PEER_PORT, rate });
    try {
      await flow.bound;
      await waitUntil('echoes through the fast path', () => flow.received() > 50 || undefined);
      assert.equal(entries(await pair.status()), 1);

      const oldPid = pair.childPid('sidecar')!;
      const killedAt = Date.now();
      process.kill(oldPid, 'SIGKILL');
      const newPid = await pair.waitForStart('sidecar', 2);
      const ready = await waitUntil('restarted sidecar ready', () =>
        pair.lines().find((l) => l.msg === 'sidecar ready' && l.pid === newPid),
      );
      const readyAt = Date.parse(ready.time as string);
      // The window in which no sidecar ran at all (kill -> the new one's ready line).
      const inGap = flow.ticks().filter((k) => k.now > killedAt + 100 && k.now < readyAt);
      assert.ok(inGap.length >= 3, `gap too short to judge (${readyAt - killedAt} ms)`);
      const gotInGap = inGap.at(-1)!.received - inGap[0]!.received;
      const gapMs = inGap.at(-1)!.now - inGap[0]!.now;
      t.diagnostic(`no sidecar for ${readyAt - killedAt} ms; ${gotInGap} echoes arrived in ${gapMs} ms of it (rate ${rate}/s)`);
      // Every datagram there and back went through the kernel alone.
      assert.ok(gotInGap >= (rate * gapMs) / 1000 / 2, `only ${gotInGap} echoes in ${gapMs} ms without a sidecar`);
      assert.ok(pair.lines().some((l) => l.pid === newPid && Array.isArray(l.reusedMaps) && (l.reusedMaps as string[]).includes('tp_chan_to_peer')), 'the restarted sidecar reused the pinned maps');

      const synced = await waitUntil('relay re-announced to the new sidecar', async () => {
        const s = await pair.status();
        return s.relay.relayConnected && s.relay.resyncs >= 1 && s.relayCounters ? s : undefined;
      });
      assert.equal(entries(synced), synced.relayCounters!.channels, 'map bindings == relay channels');
      assert.equal(entries(synced), 1);
      const r0 = flow.received();
      await sleep(500);
      assert.ok(flow.received() - r0 >= rate / 4, 'flow still relayed after the resync');
    } finally {
      await flow.stop();
    }
    await uclientNoLoss(topo, pair);
  });
});
