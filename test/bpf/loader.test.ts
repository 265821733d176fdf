// XdpRouter against the kernel: load with a capacity, config, bindings in
// both maps, counters, perf diagnostics, pinned-map reuse across loads, error
// texts, attach/detach on a veth in a namespace, restart through a pinned
// link, and map memory at 65,536 bindings. Most tests load the stand-in
// object test/bpf/fixtures/mini_router.bpf.c (same maps as bpf/turn_router.c,
// a counting program) so they do not depend on the real program's logic.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { BINDING_TABLE_MAPS, XdpRouter, type ChannelBinding } from '../../src/sidecar/bpf/router.ts';
import { openDiagnostics } from '../../src/sidecar/bpf/perf.ts';
import { BpfError } from '../../src/sidecar/bpf/errors.ts';
import { libbpf } from '../../src/sidecar/bpf/libbpf.ts';
import { encodeChanKey, encodeChanValue, encodePeerKey, encodePeerValue } from '../../src/sidecar/bpf/abi.ts';
import { requireRoot, requireCapability, hasCommand } from '../helpers/env.ts';
import { testRun } from '../helpers/bpf-test-run.ts';
import { bpffsFor } from '../helpers/bpffs.ts';
import { buildFixture, canBuildBpf, passObject, routerObject } from './fixtures/build.ts';
import { Netns, runRouterChild, sh, uniq } from './fixtures/netns.ts';

function captureLog() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream).child({ module: 'bpf' }), lines };
}

const ready = (t: import('node:test').TestContext) =>
  requireRoot(t) && requireCapability(t, canBuildBpf(), 'needs clang to build the BPF fixture');

const binding = (i: number, v6 = false): ChannelBinding => ({
  client: { address: v6 ? `2001:db8::${(i % 65535).toString(16)}` : `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 40000 + (i % 20000) },
  channel: 0x4000 + (i % 0x1000),
  peer: { address: v6 ? `2001:db8:1::${i.toString(16)}` : `172.${16 + ((i >> 16) & 15)}.${(i >> 8) & 255}.${i & 255}`, port: 5000 + (i % 1000) },
  allocationPort: 49152 + (i % 16000),
});

const spaces = new Netns();
after(() => {
  spaces.cleanup();
});

test('load sets the binding maps capacity; config, bindings and counters work', (t) => {
  if (!ready(t)) return;
  const { log, lines } = captureLog();
  const r = XdpRouter.load({ objectPath: buildFixture('mini_router'), mapCapacity: 1000, log });
  try {
    assert.equal(r.bindingCapacity(), 1000);
    assert.equal(r.maxEntries('tp_bindings'), 1000 + 125, 'a slot per binding and an eighth spare (at least 64)');
    assert.equal(r.maxEntries('tp_chan_to_peer'), 512, '4 directory slots per binding, in a power of two of 8-slot buckets');
    assert.equal(r.maxEntries('tp_peer_to_chan'), 512);
    const cpus = libbpf().numPossibleCpus();
    assert.equal(r.maxEntries('tp_path_stats'), cpus, 'one counter row per possible CPU');
    assert.equal(r.maxEntries('nh_cache') % cpus, 0, 'the next-hop cache has a block of slots per possible CPU');
    const mem = r.mapMemory().find((m) => m.name === 'tp_bindings')!;
    assert.equal(mem.maxEntries, 1125, 'the kernel map has the size (fdinfo)');
    assert.ok(lines.some((l) => l.msg === 'bpf object loaded' && l.module === 'bpf'));

    // config: unconfigured frames count as pass_not_configured, configured ones as pass_stun (fixture logic)
    const frame = new Uint8Array(60);
    assert.equal(testRun(r, frame).actionName, 'XDP_PASS');
    r.writeConfig({ listenPort: 3478, portMin: 49152, portMax: 65535, relayV4: '192.0.2.1', relayV6: '2001:db8::1', mtu: 1500, diagPerSec: 0 });
    assert.deepEqual(r.readConfig(), { flags: 3, mtu: 1500, listenPort: 3478, portMin: 49152, portMax: 65535, diagPerSec: 0, relayV4: '192.0.2.1', relayV6: '2001:db8::1' });
    const run = testRun(r, frame, { repeat: 5 });
    assert.equal(run.action, 2);
    assert.equal(run.data.length, 60);
    assert.ok(run.durationNs >= 0);
    const reasons = r.readReasons();
    assert.equal(reasons.pass_not_configured, 1n);
    assert.equal(reasons.pass_stun, 5n);
    assert.equal(reasons.drop_bounds, 0n);
    const paths = r.readPathStats();
    assert.equal(paths.length, 12);
    assert.deepEqual(paths[0], { path: 'chan_to_udp_44', packets: 6n, bytes: 360n });

    // bindings, both directions, both families
    const b4 = binding(1);
    const b6 = binding(2, true);
    r.putChannel(b4);
    r.putChannel(b6);
    assert.equal(r.bindingCount(), 2);
    assert.deepEqual(r.lookupChannel(b4.client, b4.channel), { peer: b4.peer, allocationPort: b4.allocationPort });
    assert.deepEqual(r.lookupPeer(b6.peer, b6.allocationPort), { client: b6.client, channel: b6.channel });
    const listed = r.listBindings().sort((a, b) => a.channel - b.channel);
    assert.deepEqual(listed, [b4, b6]);
    assert.equal(r.deleteChannel(b4), true);
    assert.equal(r.deleteChannel(b4), false, 'deleting twice is not an error');
    assert.equal(r.lookupChannel(b4.client, b4.channel), undefined);
    assert.equal(r.lookupPeer(b4.peer, b4.allocationPort), undefined);
    for (let i = 10; i < 20; i++) r.putChannel(binding(i));
    assert.equal(r.clearBindings(), 11);
    assert.equal(r.bindingCount(), 0);
    assert.equal(r.lookupPeer(b6.peer, b6.allocationPort), undefined);
  } finally {
    r.close();
  }
});

test('perf diagnostics arrive through the perf buffer polled off the event loop', async (t) => {
  if (!ready(t)) return;
  const { log } = captureLog();
  const r = XdpRouter.load({ objectPath: buildFixture('mini_router'), log });
  const events: { reasonName: string; ret: number; cpu: number }[] = [];
  let resolve!: () => void;
  const got = new Promise<void>((res) => (resolve = res));
  const reader = openDiagnostics(r, {
    pages: 4,
    onEvent(ev, cpu) {
      events.push({ reasonName: ev.reasonName, ret: ev.ret, cpu });
      if (events.length === 3) resolve();
    },
    log,
  });
  try {
    r.writeConfig({ listenPort: 3478, portMin: 50000, portMax: 50100, relayV4: '192.0.2.1', mtu: 1500, diagPerSec: 10 });
    testRun(r, new Uint8Array(60), { repeat: 3 });
    // The await only works because polling runs on a koffi worker: a poll on
    // this thread would block the loop and the callbacks queued to it.
    await Promise.race([got, new Promise((_, rej) => setTimeout(() => rej(new Error('no perf events within 5 s')), 5000))]);
    assert.equal(events.length, 3);
    assert.deepEqual(events[0]!.reasonName, 'pass_stun');
    assert.equal(events[0]!.ret, -22);
  } finally {
    await reader.close();
    r.close();
  }
});

test('a reload with pinDir reuses pinned maps; a capacity change is reported', (t) => {
  if (!ready(t)) return;
  const pinDir = join(bpffsFor(t), 'pins');
  const obj = buildFixture('mini_router');
  const b = binding(7);
  const first = XdpRouter.load({ objectPath: obj, mapCapacity: 2048, pinDir, log: captureLog().log });
  assert.deepEqual(first.reusedMaps, []);
  first.putChannel(b);
  first.close();
  assert.ok(existsSync(`${pinDir}/tp_chan_to_peer`), 'maps stay pinned after close');

  const second = XdpRouter.load({ objectPath: obj, mapCapacity: 2048, pinDir, log: captureLog().log });
  try {
    assert.deepEqual([...second.reusedMaps].sort(), ['tp_bind_meta', 'tp_bindings', 'tp_chan_to_peer', 'tp_config', 'tp_diag', 'tp_diag_budget', 'tp_neigh', 'tp_path_stats', 'tp_peer_to_chan', 'tp_reasons', 'tp_routes']);
    assert.deepEqual(second.listBindings(), [b], 'the binding written before the reload is still there');
  } finally {
    second.close();
  }

  assert.throws(
    () => XdpRouter.load({ objectPath: obj, mapCapacity: 4096, pinDir, onPinnedMismatch: 'fail', log: captureLog().log }),
    (e: BpfError) => e.code === 'PIN_MISMATCH' && /pinned map .*tp_bindings differs .*maxEntries pinned 2304, object wants 4608/.test(e.message),
  );
  const { log, lines } = captureLog();
  const third = XdpRouter.load({ objectPath: obj, mapCapacity: 4096, pinDir, log });
  try {
    assert.ok(lines.some((l) => l.level === 40 && /tp_bindings differs.*replacing it/.test(String(l.msg))));
    assert.equal(third.bindingCapacity(), 4096);
    assert.equal(third.maxEntries('tp_chan_to_peer'), 2048);
    assert.ok(third.reusedMaps.includes('tp_bind_meta') && !third.reusedMaps.includes('tp_bindings'));
    assert.equal(third.bindingCount(), 0, 'tables of which one was replaced start empty, all of them');
    assert.deepEqual(third.listBindings(), []);
    assert.ok(third.reusedMaps.includes('tp_config'), 'maps that still fit are reused');
  } finally {
    third.close({ unpin: true });
  }
  assert.ok(!existsSync(`${pinDir}/tp_chan_to_peer`), 'close({ unpin: true }) removes the pins');
});

test('an upgrade from the hash-map layout moves the pinned bindings into the binding tables', (t) => {
  if (!ready(t)) return;
  const pinDir = join(bpffsFor(t), 'pins');
  const lib = libbpf();
  const old = XdpRouter.load({ objectPath: buildFixture('legacy_bindings'), pinDir, log: captureLog().log });
  const bs = [binding(1), binding(2, true), binding(3)];
  for (const b of bs) {
    assert.equal(lib.mapUpdateElem(old.mapFd('tp_chan_to_peer'), encodeChanKey(b), encodeChanValue(b), 0n), 0);
    assert.equal(lib.mapUpdateElem(old.mapFd('tp_peer_to_chan'), encodePeerKey(b), encodePeerValue(b), 0n), 0);
  }
  old.close();

  const { log, lines } = captureLog();
  const r = XdpRouter.load({ objectPath: buildFixture('mini_router'), mapCapacity: 1000, pinDir, log });
  try {
    assert.ok(!r.reusedMaps.includes('tp_chan_to_peer'), 'the hash map was replaced');
    assert.deepEqual(r.listBindings().sort((a, b) => a.channel - b.channel), bs);
    for (const b of bs) assert.deepEqual(r.lookupPeer(b.peer, b.allocationPort), { client: b.client, channel: b.channel });
    assert.ok(lines.some((l) => l.msg === 'bindings moved to the binding tables' && l.moved === 3));
    assert.ok(!lines.some((l) => Number(l.level) >= 40), 'no warning: nothing was lost');
  } finally {
    r.close();
  }
  const again = XdpRouter.load({ objectPath: buildFixture('mini_router'), mapCapacity: 1000, pinDir, log: captureLog().log });
  try {
    assert.equal(again.bindingCount(), 3, 'the moved bindings are pinned in the new tables');
  } finally {
    again.close({ unpin: true });
  }
});

test('binding slots are reused only after the program runs that may read them ended; churn never runs out', async (t) => {
  if (!ready(t)) return;
  const { log, lines } = captureLog();
  const r = XdpRouter.load({ objectPath: buildFixture('mini_router'), mapCapacity: 2, log });
  try {
    // 2 bindings + 64 spare slots: 500 replacements in one turn of the event loop outrun the background grace periods.
    for (let i = 0; i < 500; i++) {
      r.putChannel(binding(i));
      assert.equal(r.deleteChannel(binding(i)), true);
    }
    r.putChannel(binding(1));
    r.putChannel(binding(2));
    assert.throws(() => r.putChannel(binding(3)), /E2BIG/);
    assert.equal(r.deleteChannel(binding(1)), true);
    r.putChannel(binding(3));
    assert.deepEqual(r.listBindings().map((b) => b.channel).sort(), [binding(2).channel, binding(3).channel].sort());
    const waits = lines.filter((l) => /every spare slot was waiting/.test(String(l.msg)));
    assert.equal(waits.length, 1, 'the synchronous waits are told once (a minute)');
    assert.equal(waits[0]!.level, 40);
    assert.equal(waits[0]!.spareSlots, 64);
  } finally {
    r.close();
  }
});

test('errors name the operation and the errno', (t) => {
  if (!ready(t)) return;
  const { log, lines } = captureLog();
  assert.throws(
    () => XdpRouter.load({ objectPath: '/nonexistent/turn_router.o', log }),
    (e: BpfError) => e instanceof BpfError && e.code === 'ENOENT' && e.message.startsWith('load turn_router.o failed: No such file or directory (ENOENT)'),
  );
  assert.ok(lines.some((l) => l.source === 'libbpf' && /failed to open/.test(String(l.msg))), 'libbpf messages reach pino');
  const r = XdpRouter.load({ objectPath: buildFixture('mini_router'), log });
  try {
    assert.throws(() => r.attach('tpbpf-nosuch0', 'native'), /^BpfError: attach to tpbpf-nosuch0 in native mode failed: No such device \(ENODEV\): no interface named "tpbpf-nosuch0"$/);
    assert.throws(() => r.attach('x'.repeat(20), 'skb'), /No such device \(ENODEV\)/);
    assert.throws(() => r.putChannel({ ...binding(1), channel: 0x3000 }), /channel must be 0x4000-0x7FFF/);
  } finally {
    r.close();
  }
  const small = XdpRouter.load({ objectPath: buildFixture('mini_router'), mapCapacity: 2, log });
  try {
    small.putChannel(binding(1));
    small.putChannel(binding(2));
    assert.throws(() => small.putChannel(binding(3)), /in tp_chan_to_peer failed: Argument list too long \(E2BIG\): tp_chan_to_peer is full \(2 entries\)/);
    assert.equal(small.lookupPeer(binding(3).peer, binding(3).allocationPort), undefined);
  } finally {
    small.close();
  }
});

test('attach and detach on a veth in a namespace, native and skb; a restart updates the pinned link', (t) => {
  if (!ready(t) || !requireCapability(t, hasCommand('ip'), 'needs iproute2')) return;
  const ns = spaces.add(uniq('tpbpf'));
  spaces.exec(ns, 'ip', ['link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb']);
  spaces.exec(ns, 'ip', ['link', 'set', 'va', 'up']);
  spaces.exec(ns, 'ip', ['link', 'set', 'vb', 'up']);
  const object = buildFixture('mini_router');
  const xdpOf = () => sh('ip', ['-n', ns, '-d', 'link', 'show', 'va']);

  for (const mode of ['native', 'skb'] as const) {
    const res = runRouterChild(ns, { object, steps: [{ op: 'attach', ifname: 'va', mode }, { op: 'list' }, { op: 'detach' }, { op: 'close' }] });
    assert.equal(res.results[1]!.error, undefined, JSON.stringify(res.results));
    assert.equal(res.results[1]!.mode, mode);
    assert.equal(res.results[1]!.how, 'created');
    assert.doesNotMatch(xdpOf(), /prog\/xdp/, `${mode}: detached afterwards`);
  }

  // An unpinned link goes away with the process.
  runRouterChild(ns, { object, steps: [{ op: 'attach', ifname: 'va', mode: 'skb' }] });
  assert.doesNotMatch(xdpOf(), /prog\/xdp/);

  // keepPinned: the program survives the process; the next run updates the link in place.
  const pinDir = join(bpffsFor(t), 'pins');
  const b = binding(3);
  const run1 = runRouterChild(ns, { object, pinDir, steps: [{ op: 'attach', ifname: 'va', mode: 'native', keepPinned: true }, { op: 'put', binding: b }] });
  assert.equal(run1.results[1]!.error, undefined, JSON.stringify(run1.results));
  assert.match(xdpOf(), /xdp id \d+|prog\/xdp id \d+/, 'still attached after the process ended');
  const id1 = /prog\/xdp id (\d+)/.exec(xdpOf())?.[1];
  const run2 = runRouterChild(ns, { object, pinDir, steps: [{ op: 'attach', ifname: 'va', mode: 'native', keepPinned: true }, { op: 'list' }] });
  assert.equal(run2.results[1]!.how, 'updated', JSON.stringify(run2.results));
  assert.deepEqual(run2.results[2]!.bindings, [b]);
  const id2 = /prog\/xdp id (\d+)/.exec(xdpOf())?.[1];
  assert.ok(id1 && id2 && id1 !== id2, `the new program replaced the old one (${id1} -> ${id2})`);

  // A pinned link in the other mode is replaced by a new link.
  const run3 = runRouterChild(ns, { object, pinDir, steps: [{ op: 'attach', ifname: 'va', mode: 'skb', keepPinned: true }, { op: 'detach' }, { op: 'close', unpin: true }] });
  assert.equal(run3.results[1]!.how, 'created', JSON.stringify(run3.results));
  assert.doesNotMatch(xdpOf(), /prog\/xdp/);
  assert.ok(!existsSync(`${pinDir}/link_va`));

  // A foreign (netlink) program makes link creation fail with a clear reason.
  spaces.exec(ns, 'ip', ['link', 'set', 'dev', 'va', 'xdpgeneric', 'obj', passObject(), 'sec', 'xdp']);
  const run4 = runRouterChild(ns, { object, steps: [{ op: 'attach', ifname: 'va', mode: 'skb' }] });
  assert.match(String(run4.results[1]!.error), /^attach to va in skb mode failed: Device or resource busy \(EBUSY\): va already has an XDP program/);
});

test('map memory at 65,536 installed bindings stays within 16 MB (binding maps; the rest reported)', (t) => {
  if (!ready(t)) return;
  // The real object's maps when it loads (it may be mid-development), else the
  // stand-in with the same map definitions.
  let object = routerObject() ?? buildFixture('mini_router');
  let r: XdpRouter;
  try {
    r = XdpRouter.load({ objectPath: object, mapCapacity: 65536, log: captureLog().log });
  } catch (err) {
    t.diagnostic(`${object} did not load (${(err as Error).message}); measuring the stand-in object`);
    object = buildFixture('mini_router');
    r = XdpRouter.load({ objectPath: object, mapCapacity: 65536, log: captureLog().log });
  }
  try {
    for (let i = 0; i < 65536; i++) r.putChannel(binding(i, i % 2 === 1));
    assert.equal(r.bindingCount(), 65536);
    const mem = r.mapMemory();
    const bindings = mem.filter((m) => (BINDING_TABLE_MAPS as readonly string[]).includes(m.name)).reduce((s, m) => s + m.memlockBytes, 0);
    const total = mem.reduce((s, m) => s + m.memlockBytes, 0);
    const neigh = mem.find((m) => m.name === 'tp_neigh');
    t.diagnostic(
      `${object.split('/').pop()}: binding maps ${bindings} bytes (${(bindings / 2 ** 20).toFixed(2)} MiB), ` +
        `mirrored neighbours (tp_neigh, ${neigh?.maxEntries} entries) ${neigh?.memlockBytes} bytes, all maps ${total} bytes`,
    );
    // The 16 MiB target is for the binding maps; tp_neigh (the mirrored next
    // hops, preallocated) is counted and reported, not part of that target.
    assert.ok(bindings <= 16 * 2 ** 20, `binding maps ${bindings} bytes <= 16 MiB`);
    assert.ok(neigh && neigh.memlockBytes > 0, 'tp_neigh is loaded and its memory counted');
  } finally {
    r.close();
  }
});
