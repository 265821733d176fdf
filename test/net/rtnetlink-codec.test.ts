// The rtnetlink codec on messages built here byte by byte (through the same
// layouts): routes (plain, multipath, RTA_VIA, metrics, table ids), neighbour,
// link, address and rule messages, a receive buffer of several messages, and
// the requests it builds (a dump, "resolve this neighbour").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  attributes,
  decodeAddress,
  decodeLink,
  decodeNeighbour,
  decodeRoute,
  decodeRule,
  dumpRequest,
  encodeMessage,
  errorOf,
  neighbourUseRequest,
  splitMessages,
} from '../../src/net/rtnetlink/codec.ts';
import { AF_INET, AF_INET6, FRA, IFA, IFLA, L, NDA, NLM_F, NLMSG, NUD, RTA, RTAX_MTU, RTM, RTN, RT_TABLE } from '../../src/net/rtnetlink/layout.ts';
import { addressBytes } from '../../src/shared/cidr.ts';

const v4 = (a: string) => addressBytes(a).subarray(12);
const v6 = (a: string) => addressBytes(a);
const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
};
const attr = (type: number, value: Uint8Array) => {
  const out = new Uint8Array((L.rtattr.size + value.length + 3) & ~3);
  const v = new DataView(out.buffer);
  v.setUint16(0, L.rtattr.size + value.length, true);
  v.setUint16(2, type, true);
  out.set(value, L.rtattr.size);
  return out;
};
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), (at += p.length));
  return out;
};
function rtmsg(o: { family: number; dstLen: number; table?: number; type?: number; tos?: number; flags?: number }): Uint8Array {
  const h = new Uint8Array(L.rtmsg.size);
  h[L.rtmsg.family] = o.family;
  h[L.rtmsg.dstLen] = o.dstLen;
  h[L.rtmsg.table] = o.table ?? RT_TABLE.MAIN;
  h[L.rtmsg.type] = o.type ?? RTN.UNICAST;
  h[L.rtmsg.tos] = o.tos ?? 0;
  new DataView(h.buffer).setUint32(L.rtmsg.flags, o.flags ?? 0, true);
  return h;
}
const one = (bytes: Uint8Array) => splitMessages(bytes)[0]!;

test('a plain IPv4 route: destination, interface, gateway, metric, MTU', () => {
  const msg = encodeMessage(RTM.NEWROUTE, 0, 1, rtmsg({ family: AF_INET, dstLen: 24 }), [
    [RTA.DST, v4('198.51.100.0')],
    [RTA.OIF, u32(3)],
    [RTA.GATEWAY, v4('192.0.2.1')],
    [RTA.PRIORITY, u32(100)],
    [RTA.METRICS, attr(RTAX_MTU, u32(1400))],
  ]);
  assert.deepEqual(decodeRoute(one(msg)), {
    family: 4, dst: '198.51.100.0', dstLen: 24, table: RT_TABLE.MAIN, type: RTN.UNICAST, tos: 0, flags: 0, priority: 100, mtu: 1400,
    nextHops: [{ ifindex: 3, gateway: { family: 4, address: '192.0.2.1' }, flags: 0 }], nhid: undefined,
  });
});

test('a default IPv6 route has no RTA_DST; a multipath route lists its paths with their gateways (RTA_VIA too) and flags', () => {
  const hop = (ifindex: number, flags: number, attrs: Uint8Array) => {
    const h = new Uint8Array(L.rtnexthop.size);
    const v = new DataView(h.buffer);
    v.setUint16(L.rtnexthop.len, L.rtnexthop.size + attrs.length, true);
    h[L.rtnexthop.flags] = flags;
    v.setInt32(L.rtnexthop.ifindex, ifindex, true);
    return concat(h, attrs);
  };
  const via = concat(Uint8Array.from([AF_INET6, 0]), v6('fe80::9'));
  const msg = encodeMessage(RTM.NEWROUTE, 0, 1, rtmsg({ family: AF_INET6, dstLen: 0 }), [
    [RTA.TABLE, u32(RT_TABLE.MAIN)],
    [RTA.MULTIPATH, concat(hop(2, 0x1, attr(RTA.GATEWAY, v6('fe80::1'))), hop(4, 0, attr(RTA.VIA, via)))],
  ]);
  const r = decodeRoute(one(msg))!;
  assert.equal(r.dst, '::');
  assert.deepEqual(r.nextHops, [
    { ifindex: 2, gateway: { family: 6, address: 'fe80::1' }, flags: 1 },
    { ifindex: 4, gateway: { family: 6, address: 'fe80::9' }, flags: 0 },
  ]);
});

test('RTA_TABLE wins over rtm_table (ids above 255), and a nexthop object is reported', () => {
  const msg = encodeMessage(RTM.NEWROUTE, 0, 1, rtmsg({ family: AF_INET, dstLen: 32, table: 252 }), [
    [RTA.DST, v4('203.0.113.5')],
    [RTA.TABLE, u32(1000)],
    [RTA.NH_ID, u32(7)],
  ]);
  const r = decodeRoute(one(msg))!;
  assert.equal(r.table, 1000);
  assert.equal(r.nhid, 7);
  assert.deepEqual(r.nextHops, []);
});

test('neighbour, link, address and rule messages', () => {
  const nd = new Uint8Array(L.ndmsg.size);
  nd[L.ndmsg.family] = AF_INET6;
  new DataView(nd.buffer).setInt32(L.ndmsg.ifindex, 5, true);
  new DataView(nd.buffer).setUint16(L.ndmsg.state, NUD.STALE, true);
  const n = decodeNeighbour(one(encodeMessage(RTM.NEWNEIGH, 0, 1, nd, [[NDA.DST, v6('2001:db8::7')], [NDA.LLADDR, Uint8Array.from([2, 0, 0, 0, 0, 7])]])))!;
  assert.deepEqual({ ...n, lladdr: [...n.lladdr!] }, { family: 6, address: '2001:db8::7', ifindex: 5, state: NUD.STALE, flags: 0, lladdr: [2, 0, 0, 0, 0, 7] });

  const ifi = new Uint8Array(L.ifinfomsg.size);
  new DataView(ifi.buffer).setUint16(L.ifinfomsg.type, 1, true);
  new DataView(ifi.buffer).setInt32(L.ifinfomsg.index, 5, true);
  const name = new TextEncoder().encode('eth0\0');
  const l = decodeLink(one(encodeMessage(RTM.NEWLINK, 0, 1, ifi, [[IFLA.IFNAME, name], [IFLA.ADDRESS, Uint8Array.from([2, 0, 0, 0, 0, 5])], [IFLA.MTU, u32(9000)]])))!;
  assert.deepEqual({ ...l, address: [...l.address!] }, { index: 5, name: 'eth0', type: 1, flags: 0, address: [2, 0, 0, 0, 0, 5], mtu: 9000 });

  const ifa = new Uint8Array(L.ifaddrmsg.size);
  ifa[L.ifaddrmsg.family] = AF_INET;
  ifa[L.ifaddrmsg.prefixlen] = 32;
  new DataView(ifa.buffer).setUint32(L.ifaddrmsg.index, 9, true);
  // Point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL our own.
  assert.deepEqual(decodeAddress(one(encodeMessage(RTM.NEWADDR, 0, 1, ifa, [[IFA.ADDRESS, v4('192.0.2.2')], [IFA.LOCAL, v4('192.0.2.1')]]))), {
    family: 4, index: 9, address: '192.0.2.1', prefixLength: 32,
  });

  const fr = new Uint8Array(L.fibRuleHdr.size);
  fr[L.fibRuleHdr.family] = AF_INET;
  fr[L.fibRuleHdr.table] = RT_TABLE.MAIN;
  fr[L.fibRuleHdr.action] = 1;
  assert.deepEqual(decodeRule(one(encodeMessage(RTM.NEWRULE, 0, 1, fr, [[FRA.PRIORITY, u32(32766)]]))), { family: 4, priority: 32766, table: RT_TABLE.MAIN, action: 1 });
});

test('a buffer of several messages splits at 4-byte alignment; a truncated tail and attributes are left out safely', () => {
  const a = encodeMessage(RTM.NEWROUTE, NLM_F.MULTI, 7, rtmsg({ family: AF_INET, dstLen: 8 }), [[RTA.DST, v4('10.0.0.0')], [RTA.OIF, u32(1)]]);
  const err = new Uint8Array(L.nlmsgerr.size);
  new DataView(err.buffer).setInt32(L.nlmsgerr.error, -13, true);
  const b = encodeMessage(NLMSG.ERROR, 0, 8, err);
  const msgs = splitMessages(concat(a, b, b.subarray(0, 10)));
  assert.deepEqual(msgs.map((m) => [m.type, m.seq, m.flags]), [[RTM.NEWROUTE, 7, NLM_F.MULTI], [NLMSG.ERROR, 8, 0]]);
  assert.equal(errorOf(msgs[1]!), -13);
  assert.equal(attributes(Uint8Array.from([8, 0, 1, 0, 1, 2]), 0).size, 0, 'an attribute running past the end is not read');
});

test('requests: a dump carries the family in its header; a resolve request is RTM_NEWNEIGH with NTF_USE, CREATE and ACK', () => {
  const d = one(dumpRequest(RTM.GETNEIGH, AF_INET6, 42));
  assert.deepEqual([d.type, d.flags, d.seq, d.body[L.ndmsg.family]], [RTM.GETNEIGH, NLM_F.REQUEST | NLM_F.DUMP, 42, AF_INET6]);
  const u = one(neighbourUseRequest(4, v4('192.0.2.9'), 3, 43));
  assert.equal(u.type, RTM.NEWNEIGH);
  assert.equal(u.flags, NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE);
  assert.equal(u.body[L.ndmsg.flags], 0x1);
  assert.equal(new DataView(u.body.buffer, u.body.byteOffset).getInt32(L.ndmsg.ifindex, true), 3);
  assert.deepEqual(decodeNeighbour(u), { family: 4, address: '192.0.2.9', ifindex: 3, state: 0, flags: 1, lladdr: undefined });
});
