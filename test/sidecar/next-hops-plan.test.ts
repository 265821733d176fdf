// What the next-hop mirror decides from the kernel's tables (plan.ts, pure):
// which route the kernel would use per prefix, when the main table is not
// the kernel's answer (policy routing) or does not fit, which next hops the
// program needs, and which neighbour entries it may use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KernelLink, KernelNeighbour, KernelRoute, KernelRule } from '../../src/net/rtnetlink/codec.ts';
import { NUD, RT_TABLE, RTM_F_CLONED, RTN, RTNH_F } from '../../src/net/rtnetlink/layout.ts';
import { defaultRouteInterfaces, endpointNeed, gatewayNeeds, neighbourAnswer, ownMac, plainRoutingFamilies, routeTable } from '../../src/sidecar/next-hops/plan.ts';

const route = (dst: string, dstLen: number, o: Partial<KernelRoute> & { oif?: number; gw?: string } = {}): KernelRoute => ({
  family: dst.includes(':') ? 6 : 4, dst, dstLen, table: RT_TABLE.MAIN, type: RTN.UNICAST, tos: 0, flags: 0, priority: 0, mtu: 0,
  nextHops: o.oif === undefined ? [] : [{ ifindex: o.oif, gateway: o.gw ? { family: o.gw.includes(':') ? 6 : 4, address: o.gw } : undefined, flags: 0 }],
  ...o,
});
const DEFAULT_RULES: KernelRule[] = [
  { family: 4, priority: 0, table: RT_TABLE.LOCAL, action: 1 },
  { family: 4, priority: 32766, table: RT_TABLE.MAIN, action: 1 },
  { family: 4, priority: 32767, table: RT_TABLE.DEFAULT, action: 1 },
  { family: 6, priority: 0, table: RT_TABLE.LOCAL, action: 1 },
  { family: 6, priority: 32766, table: RT_TABLE.MAIN, action: 1 },
];
const XDP = new Set([2]);
const own = () => false;

test('per prefix the lowest metric wins; cached clones, TOS routes and dead paths are not the kernel\'s choice', () => {
  const t = routeTable(
    [
      route('0.0.0.0', 0, { oif: 2, gw: '192.0.2.1', priority: 600 }),
      route('0.0.0.0', 0, { oif: 2, gw: '192.0.2.254', priority: 100 }),
      route('198.51.100.0', 24, { oif: 2, gw: '192.0.2.9', tos: 8 }),
      route('2001:db8::', 64, { oif: 2, flags: RTM_F_CLONED }),
      route('203.0.113.0', 24, { oif: 2, flags: RTNH_F.LINKDOWN }),
    ],
    DEFAULT_RULES, XDP, 100,
  );
  assert.deepEqual(t.routes, [
    { prefix: '0.0.0.0', prefixLength: 0, mtu: 0, kind: 'unicast', ifindex: 2, gateway: '192.0.2.254' },
    { prefix: '203.0.113.0', prefixLength: 24, mtu: 0, kind: 'stack', ifindex: 0 },
  ]);
  assert.equal(t.lookup('198.51.100.7')?.gateway, '192.0.2.254', 'the TOS route is not used');
  assert.equal(t.lookup('203.0.113.7')?.kind, 'stack');
  assert.equal(t.lookup('2001:db8::1'), undefined, 'IPv4 routes never answer IPv6');
});

test('multipath: a live path on an XDP interface first; blackhole, unreachable and nexthop objects are the stack\'s', () => {
  const mp = route('198.51.100.0', 24, { nextHops: [{ ifindex: 7, gateway: { family: 4, address: '10.0.0.1' }, flags: 0 }, { ifindex: 2, gateway: { family: 4, address: '192.0.2.1' }, flags: RTNH_F.DEAD }, { ifindex: 2, gateway: { family: 4, address: '192.0.2.2' }, flags: 0 }] });
  const t = routeTable([mp, route('10.9.0.0', 16, { type: RTN.BLACKHOLE }), route('10.8.0.0', 16, { type: RTN.UNREACHABLE }), route('10.7.0.0', 16, { oif: 2, nhid: 4 })], DEFAULT_RULES, XDP, 100);
  assert.equal(t.lookup('198.51.100.1')?.gateway, '192.0.2.2');
  for (const a of ['10.9.1.1', '10.8.1.1', '10.7.1.1']) assert.equal(t.lookup(a)?.kind, 'stack', a);
});

test('longest prefix: host routes over subnets over the default, per family, IPv6 link-local gateways kept', () => {
  const t = routeTable(
    [route('::', 0, { oif: 2, gw: 'fe80::1' }), route('2001:db8:1::', 48, { oif: 2 }), route('2001:db8:1::5', 128, { oif: 3, gw: 'fe80::9' }), route('0.0.0.0', 0, { oif: 2, gw: '192.0.2.1' })],
    DEFAULT_RULES, XDP, 100,
  );
  assert.equal(t.lookup('2001:db8:1::5')?.ifindex, 3);
  assert.equal(t.lookup('2001:db8:1::6')?.gateway, undefined);
  assert.equal(t.lookup('2001:db8:2::6')?.gateway, 'fe80::1');
  assert.equal(t.lookup('::ffff:192.0.2.7')?.gateway, 'fe80::1', 'an IPv4-mapped IPv6 address is IPv6');
  assert.deepEqual(gatewayNeeds(t, XDP), [
    { family: 6, address: 'fe80::1', ifindex: 2 },
    { family: 4, address: '192.0.2.1', ifindex: 2 },
  ], 'the gateway on a non-XDP interface is not needed');
});

test('a family with rules besides the defaults is not mirrored (the main table is not the kernel\'s answer); too many routes: none', () => {
  assert.deepEqual([...plainRoutingFamilies(DEFAULT_RULES)], [4, 6]);
  const custom = [...DEFAULT_RULES, { family: 6 as const, priority: 100, table: 10, action: 1 }];
  assert.deepEqual([...plainRoutingFamilies(custom)], [4]);
  const t = routeTable([route('::', 0, { oif: 2, gw: 'fe80::1' }), route('0.0.0.0', 0, { oif: 2, gw: '192.0.2.1' })], custom, XDP, 100);
  assert.deepEqual(t.routes.map((r) => r.prefix), ['0.0.0.0']);
  assert.match(t.problems[0]!, /IPv6 has routing rules/);
  const full = routeTable([route('0.0.0.0', 0, { oif: 2 }), route('10.0.0.0', 8, { oif: 2 })], DEFAULT_RULES, XDP, 1);
  assert.deepEqual(full.routes, []);
  assert.match(full.problems[0]!, /more than the 1/);
});

test('a binding end needs its own next hop only when on-link on an XDP interface, and never for own or link-local addresses', () => {
  const t = routeTable([route('0.0.0.0', 0, { oif: 2, gw: '192.0.2.1' }), route('192.0.2.0', 24, { oif: 2 }), route('10.0.0.0', 8, { oif: 5 }), route('fe80::', 64, { oif: 2 })], DEFAULT_RULES, XDP, 100);
  assert.deepEqual(endpointNeed(t, '192.0.2.77', XDP, own), { family: 4, address: '192.0.2.77', ifindex: 2 });
  assert.equal(endpointNeed(t, '198.51.100.1', XDP, own), undefined, 'behind the gateway');
  assert.equal(endpointNeed(t, '10.1.2.3', XDP, own), undefined, 'on-link elsewhere');
  assert.equal(endpointNeed(t, '192.0.2.10', XDP, (f, a) => f === 4 && a === '192.0.2.10'), undefined, 'our own address');
  assert.equal(endpointNeed(t, 'fe80::5', XDP, own), undefined, 'link-local');
});

test('a neighbour entry is usable in a valid state with a unicast Ethernet address; stale ones are to be confirmed', () => {
  const n = (state: number, lladdr?: number[]): KernelNeighbour => ({ family: 4, address: '192.0.2.1', ifindex: 2, state, flags: 0, lladdr: lladdr && Uint8Array.from(lladdr) });
  const mac = [2, 0, 0, 0, 0, 1];
  assert.deepEqual(neighbourAnswer(n(NUD.REACHABLE, mac)), { state: 'usable', mac: '02:00:00:00:00:01' });
  for (const s of [NUD.DELAY, NUD.PROBE, NUD.PERMANENT, NUD.NOARP]) assert.equal(neighbourAnswer(n(s, mac)).state, 'usable', `state ${s}`);
  assert.equal(neighbourAnswer(n(NUD.STALE, mac)).state, 'stale');
  for (const s of [NUD.INCOMPLETE, NUD.FAILED, NUD.NONE]) assert.equal(neighbourAnswer(n(s, mac)).state, 'missing', `state ${s}`);
  assert.equal(neighbourAnswer(n(NUD.NOARP, [0x33, 0x33, 0, 0, 0, 1])).state, 'missing', 'a multicast address');
  assert.equal(neighbourAnswer(n(NUD.REACHABLE, [0, 0, 0, 0, 0, 0])).state, 'missing', 'all zero');
  assert.equal(neighbourAnswer(n(NUD.REACHABLE, [1, 2, 3, 4])).state, 'missing', 'not Ethernet');
  assert.equal(neighbourAnswer(undefined).state, 'missing');
});

test('the default routes\' interfaces, IPv4 first; a non-Ethernet one is skipped with its reason', () => {
  const link = (index: number, name: string, type = 1): KernelLink => ({ index, name, type, flags: 1, address: type === 1 ? Uint8Array.from([2, 0, 0, 0, 0, index]) : undefined, mtu: 1500 });
  const links = new Map([[2, link(2, 'eth0')], [3, link(3, 'wg0', 65534)], [4, link(4, 'eth1')]]);
  assert.equal(ownMac(links.get(2)), '02:00:00:00:00:02');
  assert.equal(ownMac(links.get(3)), undefined);
  const both = defaultRouteInterfaces([route('0.0.0.0', 0, { oif: 2, gw: '192.0.2.1' }), route('::', 0, { oif: 4, gw: 'fe80::1' }), route('10.0.0.0', 8, { oif: 4 })], links);
  assert.deepEqual(both, { found: [{ family: 4, ifindex: 2, name: 'eth0' }, { family: 6, ifindex: 4, name: 'eth1' }], skipped: [] });
  const tunnel = defaultRouteInterfaces([route('0.0.0.0', 0, { oif: 3 })], links);
  assert.deepEqual(tunnel.found, []);
  assert.match(tunnel.skipped[0]!, /wg0, the IPv4 default route's interface, is not an Ethernet interface/);
});
