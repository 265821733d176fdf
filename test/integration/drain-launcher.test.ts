// Drain under `npm start` (issue 12): SIGTERM to the launcher with a drain
// deadline drains before anything stops. The sidecar goes first: /readyz
// answers 503, the relay refuses new Allocates (508: no alternate server is
// configured), an existing call keeps being relayed, and at the deadline the
// sidecar stops (clearing its bindings and pins), then the relay; the
// launcher exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ECHO_PEER_PORT, echoPeerTopology, withXdpPair, startFlow, waitUntil, sleep } from './pair-harness.ts';

const { gate } = echoPeerTopology('tpdl');
// Long enough for a TURN client to start under tsx on a busy host and be answered within it.
const DEADLINE_S = 12;

test('SIGTERM to the launcher drains (readyz 503, new Allocates refused, the call served) until the deadline, then stops sidecar, then relay', async (t) => {
  const topo = gate(t);
  if (!topo) return;
  await withXdpPair(t, topo, async (pair) => {
    const flow = startFlow(topo, pair, { peerPort: ECHO_PEER_PORT, rate: 100, send: true });
    try {
      await flow.bound;
      await waitUntil('echoes', () => flow.received() > 50 || undefined);
      assert.equal((await pair.tryAllocate(topo)).ok, true, 'Allocates succeed before the drain');

      const signalledAt = Date.now();
      pair.signal('SIGTERM');
      await waitUntil('/readyz 503', async () => ((await pair.get('/readyz')).status === 503 ? true : undefined), 5000, 100);
      const refused = await pair.tryAllocate(topo);
      assert.deepEqual(refused, { ...refused, ok: false, code: 508 }, 'a new Allocate is refused while draining');
      const before = flow.received();
      await sleep(1500);
      assert.ok(flow.received() > before + 50, `the existing call is relayed during the drain (${flow.received() - before} echoes in 1.5 s)`);

      const code = await pair.exited((DEADLINE_S + 20) * 1000);
      const tookMs = Date.now() - signalledAt;
      assert.equal(code, 0, 'the launcher exits 0 after the drain');
      assert.ok(tookMs >= DEADLINE_S * 1000 - 500, `stopped after the deadline, not before (${tookMs} ms)`);
      const lines = pair.lines();
      const over = lines.findIndex((l) => l.process === 'sidecar' && l.msg === 'drain over');
      const relayStopped = lines.findIndex((l) => l.process === 'relay' && l.msg === 'relay stopped');
      assert.ok(over >= 0, 'the sidecar says the drain is over');
      assert.equal(lines[over]!.why, 'deadline');
      assert.ok(relayStopped > over, 'the relay stops after the drain, not before');
      assert.ok(!lines.some((l) => l.process === 'launcher' && l.msg === 'started' && Date.parse(String(l.time)) > signalledAt), 'nothing restarted');
    } finally {
      await flow.stop();
    }
    const report = await pair.stop();
    assert.deepEqual(report.pinsLeft, [], 'a real stop unpins');
  }, { TURNPIKE_DRAIN_DEADLINE: String(DEADLINE_S) });
});
