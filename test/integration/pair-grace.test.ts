// The whole pair dies at once (launcher, sidecar and relay SIGKILLed, as in a
// crash): the pinned XDP link and maps keep relaying the bindings they hold,
// with nobody left who owns them. A sidecar started on the same pins waits
// TURNPIKE_RESYNC_GRACE_MS for a relay to re-announce; when none does, it
// clears the pinned bindings, and the kernel stops relaying for them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot, requireCapability, hasCommand } from '../helpers/env.ts';
import { createTopology, type Topology } from '../helpers/netns.ts';
import { startPair, startFlow, startLoneSidecar, inNs, waitUntil, sleep, type Status } from './pair-harness.ts';

const PEER_PORT = 3480;
const haveTools = hasCommand('turnutils_peer') && hasCommand('nsenter') && hasCommand('curl');
let topo: Topology | undefined;

after(async () => {
  await topo?.destroy();
});

test('pinned bindings of a crashed pair are cleared when no relay re-announces within the grace time', async (t) => {
  if (!requireRoot(t) || !requireCapability(t, haveTools, 'needs turnutils_peer, nsenter and curl')) return;
  topo = await createTopology({ prefix: 'tpgr', ipv6: false });
  await topo.enableRelayXdpTx();
  topo.spawn('peer', 'turnutils_peer', ['-p', String(PEER_PORT), '-L', topo.addr.peer4]);
  await sleep(300);

  const pair = await startPair(topo, { ebpf: 'required', xdpMode: 'native' });
  let flow: ReturnType<typeof startFlow> | undefined;
  let lone: ReturnType<typeof startLoneSidecar> | undefined;
  try {
    await pair.waitReady(60_000);
    // The flow starts once the pair is ready: an Allocate sent while it starts could
    // use up its retransmits before the relay is there on a slow machine.
    const f = (flow = startFlow(topo, pair, { peerPort: PEER_PORT, rate: 200 }));
    await f.bound;
    await waitUntil('echoes through the fast path', () => f.received() > 50 || undefined);

    await pair.killAll();
    // Nothing runs in userspace now; the pinned program still relays.
    await sleep(300);
    const r0 = f.received();
    await sleep(500);
    assert.ok(f.received() - r0 > 40, 'the pinned fast path relays with no process alive');

    const graceMs = 1500;
    lone = startLoneSidecar(topo, { ...pair.env, TURNPIKE_RESYNC_GRACE_MS: String(graceMs) });
    const status = async () => JSON.parse(await inNs(topo!, 'relay', 'curl', ['-s', '-m', '2', 'http://127.0.0.1:9469/status'])) as Status;
    const first = await waitUntil('lone sidecar up', async () => (await status()).maps ? await status() : undefined);
    assert.equal(first.relay.relayConnected, false);
    await waitUntil('pinned bindings cleared after the grace time', () => lone!.output().includes('pinned bindings cleared') || undefined, graceMs + 10_000);
    assert.match(lone.output(), /pinned bindings found; waiting for the relay/);
    assert.equal((await status()).maps.tp_chan_to_peer?.entries, 0);
    await sleep(300);
    const r1 = f.received();
    await sleep(600);
    assert.equal(f.received() - r1, 0, 'the kernel still relays for a binding no relay owns');
  } catch (e) {
    t.diagnostic(`pair output (tail):\n${pair.output().split('\n').slice(-20).join('\n')}\nlone sidecar:\n${lone?.output().slice(-3000) ?? ''}`);
    throw e;
  } finally {
    await flow?.stop();
    await lone?.stop();
    await pair.stop();
  }
});
