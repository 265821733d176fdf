// On by default, honest about it (issue 11): the pair started as `npm start`
// with no eBPF settings in a namespace whose default route leaves by an
// interface without native XDP (a bridge) tries native, then skb, and says
// so in /status (each attempt with its reason), /readyz and the
// turnpike.datapath metric; with `required` and native asked the start
// fails with the reason; with no default route, auto relays in userspace
// and says why.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot, requireCapability, hasCommand } from '../helpers/env.ts';
import { createTopology, type Topology } from '../helpers/netns.ts';
import { startPair, inNs, waitUntil, type Pair } from './pair-harness.ts';

const haveTools = hasCommand('nsenter') && hasCommand('curl');
let topo: Topology | undefined;

before(async () => {
  if (!(process.getuid?.() === 0 && haveTools)) return;
  topo = await createTopology({ prefix: 'tpdef', ipv6: false });
});

after(async () => {
  await topo?.destroy();
});

function gate(t: TestContext): Topology | undefined {
  if (!requireRoot(t) || !requireCapability(t, haveTools && topo !== undefined, 'needs nsenter and curl')) return undefined;
  return topo;
}

/** A default route out of a bridge (Ethernet, no native XDP; no ports, so its link is down) in the relay namespace, for the duration of fn. */
async function withBridgeDefaultRoute<T>(tp: Topology, fn: () => Promise<T>): Promise<T> {
  const ip = (...a: string[]) => inNs(tp, 'relay', 'ip', a);
  await ip('link', 'add', 'dflt0', 'type', 'bridge');
  await ip('addr', 'add', '198.18.0.1/24', 'dev', 'dflt0');
  await ip('link', 'set', 'dflt0', 'up');
  await ip('route', 'add', 'default', 'via', '198.18.0.254', 'dev', 'dflt0');
  try {
    return await fn();
  } finally {
    await ip('link', 'del', 'dflt0').catch(() => undefined);
  }
}

async function stopped(pair: Pair): Promise<void> {
  const report = await pair.stop();
  assert.deepEqual(report.pinsLeft, [], 'pins left after a clean stop');
}

test('auto, no interface set: the default route\'s interface, native tried first, then skb; /status, /readyz and the metric say so', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  await withBridgeDefaultRoute(tp, async () => {
    const pair = await startPair(tp, { ebpf: 'auto', bare: true });
    try {
      await pair.waitReady();
      const s = await pair.status();
      const ebpf = s.ebpf as { interfaces: string[]; interfaceSource: string; attachMode: string; attempts: { interface: string; mode: string; ok: boolean; reason?: string }[]; nextHops: { source: string } };
      t.diagnostic(JSON.stringify(ebpf.attempts));
      assert.equal(s.mode, 'xdp');
      assert.deepEqual(ebpf.interfaces, ['dflt0']);
      assert.equal(ebpf.interfaceSource, 'default-route');
      assert.deepEqual(ebpf.attempts.map((a) => [a.interface, a.mode, a.ok]), [['dflt0', 'native', false], ['dflt0', 'skb', true]]);
      assert.match(ebpf.attempts[0]!.reason!, /attach to dflt0 in native mode failed/);
      assert.equal(ebpf.attachMode, 'skb');
      assert.equal(ebpf.nextHops.source, 'kernel-mirror');
      const ready = await pair.get('/readyz');
      assert.equal(ready.status, 200);
      assert.equal((JSON.parse(ready.body) as { datapath: string }).datapath, 'xdp');
      assert.match((await pair.get('/metrics')).body, /^turnpike_datapath\{[^}]*datapath="xdp",mode="skb"[^}]*\} 1$/m);
      const lines = pair.lines().filter((l) => l.module === 'bpf');
      assert.ok(lines.some((l) => /XDP native attach failed: trying skb/.test(l.msg ?? '') && l.reason), 'the native failure is logged with its reason and the next step');
    } finally {
      await stopped(pair);
    }
  });
});

test('required with native asked: the start fails, naming the interface and the reason', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  await withBridgeDefaultRoute(tp, async () => {
    const pair = await startPair(tp, { ebpf: 'required', bare: true, env: { TURNPIKE_EBPF: 'required', TURNPIKE_XDP_MODE: 'native' } });
    try {
      await assert.rejects(pair.waitReady(20_000), /launcher exited/);
      assert.match(pair.output(), /eBPF is required but cannot attach to dflt0 \(native: attach to dflt0 in native mode failed/);
    } finally {
      await pair.stop();
    }
  });
});

test('auto with no default route: userspace, and /status says why', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  const pair = await startPair(tp, { ebpf: 'auto', bare: true });
  try {
    await pair.waitReady();
    const s = await pair.status();
    assert.equal(s.mode, 'userspace');
    assert.match(String((s.ebpf as { reason: string }).reason), /no interface is set \(TURNPIKE_INTERFACE\) and no default route leaves by an Ethernet interface/);
    assert.equal((JSON.parse((await pair.get('/readyz')).body) as { datapath: string }).datapath, 'userspace');
    await waitUntil('the datapath metric', async () => /^turnpike_datapath\{[^}]*datapath="userspace"[^}]*\} 1$/m.test((await pair.get('/metrics')).body) || undefined, 5000);
  } finally {
    await stopped(pair);
  }
});
