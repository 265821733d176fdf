// The next-hop mirror against a real kernel (the relay namespace of the
// routed topology, forwarding off), with in-memory maps in place of the
// program's (fixtures/mirror-child.ts): it holds the main table's routes and
// the neighbour entries of the routers; a binding's on-link end is resolved
// by the kernel at its request, and an address nobody has never gets an
// entry; a changed neighbour entry or route reaches the maps within a
// second (and the program's cache is dropped); routes IPv4 flushes silently
// when a link goes down go too; with routing rules besides the default ones
// a family is not mirrored.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { requireRoot, requireCapability, hasCommand } from '../helpers/env.ts';
import { createRoutedTopology, type RoutedTopology } from '../helpers/netns.ts';
import { repoRoot, sleep, waitUntil } from './pair-harness.ts';
import type { Neighbour, Route } from '../../src/sidecar/bpf/abi.ts';

interface Maps { routes: Route[]; neighbours: Neighbour[]; stats: { needed: number; resolved: number; requests: number; problems: string[] }; forgets: number }

let topo: RoutedTopology | undefined;
let child: ChildProcess | undefined;
let lines: string[] = [];

before(async () => {
  if (!(process.getuid?.() === 0 && hasCommand('nsenter'))) return;
  topo = await createRoutedTopology({ prefix: 'tpnh' });
  child = spawn('nsenter', [`--net=/run/netns/${topo.ns.relay}`, process.execPath, '--import', 'tsx', 'test/integration/fixtures/mirror-child.ts', JSON.stringify({ interfaces: ['eth0'] })], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  await waitUntil('the mirror', () => lines.some((l) => l.includes('"ready"')) || undefined);
});

after(async () => {
  child?.kill('SIGTERM');
  await topo?.destroy();
});

function gate(t: TestContext): RoutedTopology | undefined {
  if (!requireRoot(t) || !requireCapability(t, topo !== undefined, 'needs nsenter')) return undefined;
  return topo;
}

async function show(): Promise<Maps> {
  const n = lines.length;
  child!.stdin!.write('{"show":true}\n');
  const line = await waitUntil('the maps', () => lines.slice(n).find((l) => l.includes('"maps"')), 3000, 10);
  return JSON.parse(line) as Maps;
}

/** Polls the maps until ok holds; returns how long it took (ms) after `since`. */
async function within(what: string, since: number, ok: (m: Maps) => boolean, ms = 3000): Promise<number> {
  await waitUntil(what, async () => ok(await show()) || undefined, ms, 20);
  return Date.now() - since;
}

const neighbour = (m: Maps, address: string) => m.neighbours.find((n) => n.address === address);
const route = (m: Maps, prefix: string) => m.routes.find((r) => `${r.prefix}/${r.prefixLength}` === prefix);
const binding = (client: string) => ({ client: { address: client, port: 5000 }, channel: 0x4000, peer: { address: '203.0.113.9', port: 6000 }, allocationPort: 50000 });
const relay = (tp: RoutedTopology, ...args: string[]) => tp.exec('relay', 'ip', args);

test('from the start: the main table\'s routes and the routers\' entries, with the interface\'s own MAC', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  await within('the routers resolved', 0, (m) => m.stats.resolved === 4);
  const m = await show();
  assert.deepEqual(route(m, '0.0.0.0/0'), { prefix: '0.0.0.0', prefixLength: 0, mtu: 0, kind: 'unicast', ifindex: route(m, '0.0.0.0/0')!.ifindex, gateway: tp.addr.gateway4 });
  assert.equal(route(m, '::/0')?.gateway, tp.addr.gatewayLinkLocal);
  assert.equal(route(m, tp.addr.peerNet4)?.gateway, tp.addr.peerGateway4);
  assert.equal(route(m, tp.addr.peerNet6)?.gateway, tp.addr.peerGatewayLinkLocal);
  const own = await tp.mac('relay', 'eth0');
  for (const [address, role] of [[tp.addr.gateway4, 'gateway'], [tp.addr.gatewayLinkLocal, 'gateway'], [tp.addr.peerGateway4, 'peerGateway'], [tp.addr.peerGatewayLinkLocal, 'peerGateway']] as const) {
    assert.deepEqual([neighbour(m, address)?.mac, neighbour(m, address)?.ownMac], [await tp.mac(role, 'eth0'), own], address);
  }
  assert.deepEqual(m.stats.problems, []);
});

test('a binding\'s on-link end is resolved by the kernel at the mirror\'s request; an address nobody has gets no entry', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  const nobody = tp.addr.attacker4.replace(/\.60$/, '.61');
  const requests = (await show()).stats.requests;
  child!.stdin!.write(JSON.stringify({ put: binding(tp.addr.attacker4) }) + '\n');
  child!.stdin!.write(JSON.stringify({ put: { ...binding(nobody), channel: 0x4001 } }) + '\n');
  const took = await within('the on-link end resolved', Date.now(), (m) => neighbour(m, tp.addr.attacker4) !== undefined);
  t.diagnostic(`resolved in ${took} ms`);
  const m = await show();
  assert.equal(neighbour(m, tp.addr.attacker4)!.mac, await tp.mac('switch', 'br0'));
  await sleep(1500);
  const later = await show();
  assert.equal(neighbour(later, nobody), undefined, 'never a guessed MAC');
  assert.ok(later.stats.requests >= requests + 3, `the unresolved end is asked for again (${later.stats.requests - requests} requests)`);
  child!.stdin!.write(JSON.stringify({ deleted: binding(tp.addr.attacker4) }) + '\n');
  child!.stdin!.write(JSON.stringify({ deleted: { ...binding(nobody), channel: 0x4001 } }) + '\n');
  await within('the end\'s entry gone with its binding', Date.now(), (x) => neighbour(x, tp.addr.attacker4) === undefined && x.stats.needed === 4);
});

test('a router\'s entry changing in the kernel reaches the maps within a second, and the program\'s cache is dropped', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  const forgets = (await show()).forgets;
  const since = Date.now();
  await relay(tp, 'neigh', 'replace', tp.addr.peerGateway4, 'lladdr', '02:00:5e:00:00:77', 'dev', 'eth0', 'nud', 'reachable');
  const took = await within('the new MAC', since, (m) => neighbour(m, tp.addr.peerGateway4)?.mac === '02:00:5e:00:00:77');
  t.diagnostic(`changed in ${took} ms`);
  assert.ok(took < 1000, `within a second (${took} ms)`);
  assert.ok((await show()).forgets > forgets, 'the cache was dropped');
  // The kernel forgets it: the mirror drops it, has the kernel resolve the router again, and writes the real MAC.
  await relay(tp, 'neigh', 'del', tp.addr.peerGateway4, 'dev', 'eth0');
  const real = await tp.mac('peerGateway', 'eth0');
  await within('the real MAC again', Date.now(), (m) => neighbour(m, tp.addr.peerGateway4)?.mac === real);
});

test('a route changing reaches the maps within a second; a router no route needs any more leaves them', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  const since = Date.now();
  await relay(tp, 'route', 'replace', tp.addr.peerNet4, 'via', tp.addr.gateway4, 'dev', 'eth0');
  const took = await within('the new gateway', since, (m) => route(m, tp.addr.peerNet4)?.gateway === tp.addr.gateway4 && neighbour(m, tp.addr.peerGateway4) === undefined);
  t.diagnostic(`changed in ${took} ms`);
  assert.ok(took < 1000, `within a second (${took} ms)`);
  await relay(tp, 'route', 'replace', tp.addr.peerNet4, 'via', tp.addr.peerGateway4, 'dev', 'eth0');
  await within('the route and its router back', Date.now(), (m) => route(m, tp.addr.peerNet4)?.gateway === tp.addr.peerGateway4 && neighbour(m, tp.addr.peerGateway4) !== undefined);
});

test('a link going down takes its routes (IPv4 flushes them without a notification)', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  const side = tp.addr.relaySide4.replace(/\.193$/, '.192/26');
  assert.ok(route(await show(), side), 'the side link\'s route is mirrored');
  await relay(tp, 'link', 'set', 'eth1', 'down');
  try {
    await within('the side route gone', Date.now(), (m) => route(m, side) === undefined);
  } finally {
    await relay(tp, 'link', 'set', 'eth1', 'up');
  }
  await within('the side route back', Date.now(), (m) => route(m, side) !== undefined);
});

test('routing rules besides the default ones: that family is not mirrored, and says why', async (t) => {
  const tp = gate(t);
  if (!tp) return;
  await relay(tp, 'rule', 'add', 'pref', '100', 'from', 'all', 'lookup', '100');
  try {
    await within('no IPv4 route', Date.now(), (m) => !m.routes.some((r) => !r.prefix.includes(':')));
    const m = await show();
    assert.ok(m.routes.some((r) => r.prefix.includes(':')), 'IPv6 still is');
    assert.match(m.stats.problems.join('\n'), /IPv4 has routing rules besides the default ones/);
  } finally {
    await relay(tp, 'rule', 'del', 'pref', '100');
  }
  await within('IPv4 routes back', Date.now(), (m) => route(m, '0.0.0.0/0') !== undefined && m.stats.problems.length === 0);
});
