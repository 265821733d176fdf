// Golden tests of bpf/turn_router.o through BPF_PROG_TEST_RUN: a fixture
// table {name, config, bindings, next hops (routes and neighbours), input,
// expected action, expected output bytes, expected counter deltas}. Expected outputs are
// built independently with test/bpf/frames.ts, and every XDP_TX output's
// IPv4 header and UDP checksums are verified from scratch as well.
//
// Next-hop MACs: in a test run the ingress interface is lo of this process's
// namespace, where forwarding is off, so bpf_fib_lookup answers
// BPF_FIB_LKUP_RET_FWD_DISABLED (observed on 6.18; with forwarding on it
// would answer NOT_FWDED, as nothing routes via lo, which takes the same
// branch). Every output therefore goes where the mirrored kernel tables
// say: before each fixture tp_routes and tp_neigh are replaced with the
// fixture's `nextHops` (default: the scene's, golden-scene SCENE_ROUTES and
// SCENE_NEIGHBOURS: every endpoint on-link with its own MAC, macOf), which
// also empties the program's per-CPU next-hop cache; the next-hop fixtures
// use fresh addresses besides, so they do not depend on that.
//
// Reasons not triggered here, and why:
// - pass_no_headroom: BPF_PROG_TEST_RUN always gives 256 bytes of headroom,
//   so bpf_xdp_adjust_head(-4/-24) cannot fail.
// - drop_adjust_head: unreachable by construction (adjust_head is the first
//   change to a frame; its failure is pass_no_headroom).
// - drop_adjust_tail: the program only shrinks the tail by padding plus
//   Ethernet trailer of a frame it already parsed, which cannot fail.
// - drop_bounds: the post-rewrite bounds check cannot fail after the two
//   adjustments succeeded; it exists for the verifier.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import pino from 'pino';
import { XdpRouter, type ChannelBinding, type RouterConfig } from '../../src/sidecar/bpf/router.ts';
import { openDiagnostics } from '../../src/sidecar/bpf/perf.ts';
import { encodeConfig, PATH_NAMES, REASON_NAMES, type Neighbour, type PathName, type ReasonName, type Route, type TpDiagEvent } from '../../src/sidecar/bpf/abi.ts';
import { requireRoot, requireCapability } from '../helpers/env.ts';
import { testRun } from '../helpers/bpf-test-run.ts';
import { bpffsFor } from '../helpers/bpffs.ts';
import { MAC_A, MAC_B, channelData, decodeFrame, canonical, hex, internetChecksum, payloadOf, rawAddress, type Endpoint, type FrameSpec } from './frames.ts';
import {
  BASE_CONFIG,
  BINDINGS,
  C4,
  C6,
  LISTEN,
  LO,
  OBJECT,
  P4,
  P6,
  RELAY4,
  RELAY6,
  SCENE_ENDPOINTS,
  SCENE_NEIGHBOURS,
  SCENE_ROUTES,
  alloc,
  assertWellFormed,
  bind,
  inFrame,
  installNextHops,
  learnFrame,
  neighbourOf,
  outFrame,
  toListen,
} from './golden-scene.ts';

const log = pino({ level: 'silent' });

// ---- fixtures ---------------------------------------------------------------

interface Fixture {
  name: string;
  config?: RouterConfig | 'unwritten';
  bindings?: ChannelBinding[];
  /** The mirrored kernel tables; default: the scene's (SCENE_ROUTES, SCENE_NEIGHBOURS). */
  nextHops?: { routes?: Route[]; neighbours?: Neighbour[] };
  /** Frames run after the next hops are written and before the input, with their expected verdicts. */
  before?: { frame: Uint8Array; action: 'XDP_TX' | 'XDP_PASS' | 'XDP_DROP' }[];
  /** Runs after `before`, just before the input (the sidecar changing the tables). */
  between?: (r: XdpRouter) => void;
  input: Uint8Array;
  action: 'XDP_TX' | 'XDP_PASS' | 'XDP_DROP';
  output?: Uint8Array;
  reason?: ReasonName;
  path?: { name: PathName; bytes: number };
}

const data = payloadOf(100, 7);
const odd = payloadOf(767, 3); // 2 x 256 + 128 + 64 + 32 + 16 + 8 + 4 + 3 bytes: every piece of the full checksum
const fixtures: Fixture[] = [];

// ChannelData -> UDP, four family combinations
for (const [client, channel, peer, port, path] of [
  [C4, 0x4001, P4, 50001, 'chan_to_udp_44'],
  [C4, 0x4002, P6, 50002, 'chan_to_udp_46'],
  [C6, 0x4003, P4, 50003, 'chan_to_udp_64'],
  [C6, 0x4004, P6, 50004, 'chan_to_udp_66'],
] as const) {
  fixtures.push({
    name: `ChannelData -> UDP ${path.slice(-2)}`,
    input: inFrame(client, toListen(client), channelData(channel, data)),
    action: 'XDP_TX',
    output: outFrame(alloc(peer, port), peer, data),
    path: { name: path, bytes: data.length },
  });
}

// UDP -> ChannelData, four family combinations
for (const [client, channel, peer, port, path] of [
  [C4, 0x4001, P4, 50001, 'udp_to_chan_44'],
  [C6, 0x4003, P4, 50003, 'udp_to_chan_46'],
  [C4, 0x4002, P6, 50002, 'udp_to_chan_64'],
  [C6, 0x4004, P6, 50004, 'udp_to_chan_66'],
] as const) {
  fixtures.push({
    name: `UDP -> ChannelData ${path.slice(-2)}`,
    input: inFrame(peer, alloc(peer, port), data),
    action: 'XDP_TX',
    output: outFrame(toListen(client), client, channelData(channel, data)),
    path: { name: path, bytes: data.length },
  });
}

// channel -> channel, four family combinations
for (const [a, chA, b, chB, path] of [
  [C4, 0x4011, { address: '192.0.2.11', port: 50100 }, 0x4012, 'chan_to_chan_44'],
  [C4, 0x4021, { address: '2001:db8:c::11', port: 50200 }, 0x4022, 'chan_to_chan_46'],
  [C6, 0x4031, { address: '192.0.2.12', port: 50300 }, 0x4032, 'chan_to_chan_64'],
  [C6, 0x4041, { address: '2001:db8:c::12', port: 50400 }, 0x4042, 'chan_to_chan_66'],
] as const) {
  fixtures.push({
    name: `ChannelData -> ChannelData ${path.slice(-2)} (both ends allocated here)`,
    input: inFrame(a, toListen(a), channelData(chA, odd, 1)),
    action: 'XDP_TX',
    output: outFrame(toListen(b), b, channelData(chB, odd)),
    path: { name: path, bytes: odd.length },
  });
}

// padding 1/2/3 (zero and non-zero pad bytes), relayed without it
for (const pad of [1, 2, 3]) {
  for (const [padByte, client, channel, peer, port, path] of [
    [0, C4, 0x4001, P4, 50001, 'chan_to_udp_44'],
    [0xa5, C6, 0x4004, P6, 50004, 'chan_to_udp_66'],
    [0xff, C6, 0x4003, P4, 50003, 'chan_to_udp_64'],
  ] as const) {
    const body = payloadOf(4 - pad + 40 + (pad & 1), pad); // lengths of both parities
    fixtures.push({
      name: `ChannelData with ${pad} padding byte(s) of 0x${padByte.toString(16)} -> UDP ${path.slice(-2)}`,
      input: inFrame(client, toListen(client), channelData(channel, body, pad, padByte)),
      action: 'XDP_TX',
      output: outFrame(alloc(peer, port), peer, body),
      path: { name: path, bytes: body.length },
    });
  }
}

// UDP checksum 0 over IPv4: stays 0 within IPv4, computed in full for IPv6
fixtures.push(
  {
    name: 'IPv4 UDP checksum 0: ChannelData -> UDP 44 keeps 0',
    input: inFrame(C4, toListen(C4), channelData(0x4001, data), { udpChecksum: 'zero' }),
    action: 'XDP_TX',
    output: outFrame(alloc(P4, 50001), P4, data, { udpChecksum: 'zero' }),
    path: { name: 'chan_to_udp_44', bytes: data.length },
  },
  {
    name: 'IPv4 UDP checksum 0: UDP -> ChannelData 44 keeps 0',
    input: inFrame(P4, alloc(P4, 50001), data, { udpChecksum: 'zero' }),
    action: 'XDP_TX',
    output: outFrame(toListen(C4), C4, channelData(0x4001, data), { udpChecksum: 'zero' }),
    path: { name: 'udp_to_chan_44', bytes: data.length },
  },
  {
    name: 'IPv4 UDP checksum 0: ChannelData -> UDP 46 gets a full checksum',
    input: inFrame(C4, toListen(C4), channelData(0x4002, odd, 1, 0x77), { udpChecksum: 'zero' }),
    action: 'XDP_TX',
    output: outFrame(alloc(P6, 50002), P6, odd),
    path: { name: 'chan_to_udp_46', bytes: odd.length },
  },
  {
    name: 'IPv4 UDP checksum 0: UDP -> ChannelData 46 gets a full checksum',
    input: inFrame(P4, alloc(P4, 50003), odd, { udpChecksum: 'zero' }),
    action: 'XDP_TX',
    output: outFrame(toListen(C6), C6, channelData(0x4003, odd)),
    path: { name: 'udp_to_chan_46', bytes: odd.length },
  },
  {
    name: 'Ethernet trailer after a short IPv4 datagram is trimmed',
    input: inFrame(P4, alloc(P4, 50001), payloadOf(3), { trailer: 15 }),
    action: 'XDP_TX',
    output: outFrame(toListen(C4), C4, channelData(0x4001, payloadOf(3))),
    path: { name: 'udp_to_chan_44', bytes: 3 },
  },
  {
    name: 'empty ChannelData (length 0) relays an empty datagram',
    input: inFrame(C6, toListen(C6), channelData(0x4004, new Uint8Array(0))),
    action: 'XDP_TX',
    output: outFrame(alloc(P6, 50004), P6, new Uint8Array(0)),
    path: { name: 'chan_to_udp_66', bytes: 0 },
  },
);

// ---- pass reasons -------------------------------------------------------------

const pass = (name: string, reason: ReasonName, input: Uint8Array, extra: Partial<Fixture> = {}): Fixture => ({
  name,
  input,
  action: 'XDP_PASS',
  output: input,
  reason,
  ...extra,
});
const cd4 = (extra: Partial<FrameSpec> = {}) => inFrame(C4, toListen(C4), channelData(0x4001, data), extra);
const cd6 = (extra: Partial<FrameSpec> = {}) => inFrame(C6, toListen(C6), channelData(0x4004, data), extra);
const stun = Uint8Array.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, ...payloadOf(12)]);
const arp = (() => {
  const f = new Uint8Array(42);
  f.set(MAC_B, 0);
  f.set(MAC_A, 6);
  f[12] = 0x08;
  f[13] = 0x06;
  return f;
})();

fixtures.push(
  pass('config not written: everything passes', 'pass_not_configured', cd4(), { config: 'unwritten' }),
  pass('ARP is not IP', 'pass_not_ip', arp),
  pass('VLAN-tagged frame', 'pass_vlan', cd4({ vlan: 5 })),
  pass('IPv4 TCP', 'pass_not_udp', cd4({ protocol: 6 })),
  pass('IPv6 TCP', 'pass_not_udp', cd6({ protocol: 6 })),
  pass('IPv4 with options', 'pass_ip_options', cd4({ ipOptions: Uint8Array.from([1, 1, 1, 0]) })),
  pass('IPv4 first fragment (MF)', 'pass_fragment', cd4({ fragment: { more: true, offset: 0 } })),
  pass('IPv4 last fragment (offset)', 'pass_fragment', cd4({ fragment: { more: false, offset: 100 } })),
  pass('IPv6 fragment header', 'pass_fragment', cd6({ fragment: { more: true, offset: 0 } })),
  pass('IPv6 hop-by-hop extension header', 'pass_ipv6_ext', cd6({ ipv6Ext: 0 })),
  pass('IPv6 destination-options extension header', 'pass_ipv6_ext', cd6({ ipv6Ext: 60 })),
  pass('IPv4 to another address', 'pass_not_relay_addr', inFrame(C4, { address: '203.0.113.2', port: LISTEN }, channelData(0x4001, data))),
  pass('IPv6 to another address', 'pass_not_relay_addr', inFrame(C6, { address: '2001:db8::2', port: LISTEN }, channelData(0x4004, data))),
  pass('IPv6 when the relay has no IPv6 address', 'pass_not_relay_addr', cd6(), { config: { ...BASE_CONFIG, relayV6: undefined } }),
  pass('port neither listen nor allocation', 'pass_not_relay_port', inFrame(C4, { address: RELAY4, port: 80 }, data)),
  pass('STUN Binding request to the listen port', 'pass_stun', inFrame(C4, toListen(C4), stun)),
  pass('UDP payload shorter than a ChannelData header', 'pass_stun', inFrame(C4, toListen(C4), Uint8Array.from([0x40, 0x01]))),
  pass('ChannelData length beyond the datagram', 'pass_bad_channel_data', inFrame(C4, toListen(C4), channelData(0x4001, data).subarray(0, 50))),
  pass('ChannelData with 4 bytes of padding', 'pass_bad_channel_data', inFrame(C4, toListen(C4), channelData(0x4001, data, 4))),
  pass('RFC 5766 channel 0x5000 without a binding', 'pass_no_binding', inFrame(C4, toListen(C4), channelData(0x5000, data))),
  pass('RFC 5766 channel 0x7fff without a binding', 'pass_no_binding', inFrame(C4, toListen(C4), channelData(0x7fff, data))),
  pass('first two bits 10', 'pass_bad_channel_data', inFrame(C4, toListen(C4), channelData(0x8001, data))),
  pass('unknown channel', 'pass_no_binding', inFrame(C4, toListen(C4), channelData(0x4fff, data))),
  pass('known channel from another client port', 'pass_no_binding', inFrame({ ...C4, port: 50009 }, toListen(C4), channelData(0x4001, data))),
  pass('UDP from an unknown peer', 'pass_no_binding', inFrame({ ...P4, port: 6009 }, alloc(P4, 50001), data)),
  pass('UDP to the wrong allocation port', 'pass_no_binding', inFrame(P4, alloc(P4, 50002), data)),
  pass(
    'ChannelData to a peer that is this relay but not an allocation port',
    'pass_no_binding',
    inFrame(C4, toListen(C4), channelData(0x4009, data)),
    { bindings: [...BINDINGS, bind(C4, 0x4009, { address: RELAY4, port: LISTEN }, 50009)] },
  ),
  pass('channel -> channel with the other end\'s channel not bound', 'pass_no_binding', inFrame(C4, toListen(C4), channelData(0x4011, data)), {
    bindings: BINDINGS.filter((b) => b.channel !== 0x4012),
  }),
  pass('channel -> channel after the other end\'s binding went (the sidecar unlinked it first)', 'pass_no_binding', inFrame(C4, toListen(C4), channelData(0x4011, data)), {
    between: (r) => assert.ok(r.deleteChannel(BINDINGS.find((b) => b.channel === 0x4012)!)),
  }),
  pass('peer family without a relay address (v4 client, v6 peer)', 'pass_family_unavailable', inFrame(C4, toListen(C4), channelData(0x4002, data)), {
    config: { ...BASE_CONFIG, relayV6: undefined },
  }),
  pass('client family without a relay address (v6 peer, v4 client)', 'pass_family_unavailable', inFrame(P6, alloc(P6, 50002), data), {
    config: { ...BASE_CONFIG, relayV4: undefined },
  }),
  pass('output larger than the MTU', 'pass_too_big', inFrame(P4, alloc(P4, 50001), payloadOf(1500 - 28 - 3)), { config: { ...BASE_CONFIG, mtu: 1500 } }),
  pass('UDP -> ChannelData 46 over the MTU (IPv6 header is 20 bytes longer)', 'pass_too_big', inFrame(P4, alloc(P4, 50003), payloadOf(1500 - 48 - 3))),
  pass('IPv4 total length beyond the frame', 'pass_truncated', cd4({ ipLength: 500 })),
  pass('IPv6 payload length beyond the frame', 'pass_truncated', cd6({ ipLength: 500 })),
  pass('frame shorter than Ethernet + IPv4 + UDP', 'pass_truncated', cd4().subarray(0, 30)),
  pass('IPv4 header checksum wrong', 'pass_bad_checksum', cd4({ ipChecksum: 0x1234 })),
  pass('IPv6 UDP checksum 0', 'pass_bad_checksum', cd6({ udpChecksum: 0 })),
);

// The MTU boundary itself relays: a 1500-byte output passes the check.
// The other end bound again (second of the two): both are linked again.
fixtures.push({
  name: 'channel -> channel: the other end bound again after it went relays again',
  bindings: BINDINGS,
  between: (r) => {
    const other = BINDINGS.find((b) => b.channel === 0x4012)!;
    r.deleteChannel(other);
    r.putChannel(other);
  },
  input: inFrame(C4, toListen(C4), channelData(0x4011, data)),
  action: 'XDP_TX',
  output: outFrame(toListen({ address: '192.0.2.11', port: 50100 }), { address: '192.0.2.11', port: 50100 }, channelData(0x4012, data)),
  path: { name: 'chan_to_chan_44', bytes: data.length },
});

fixtures.push({
  name: 'output exactly at the MTU relays',
  input: inFrame(P4, alloc(P4, 50001), payloadOf(1500 - 28 - 4)),
  action: 'XDP_TX',
  output: outFrame(toListen(C4), C4, channelData(0x4001, payloadOf(1500 - 28 - 4))),
  path: { name: 'udp_to_chan_44', bytes: 1500 - 28 - 4 },
});

// ---- next hops from the mirrored kernel tables --------------------------------------
// The program's only source of Ethernet addresses when the FIB cannot
// answer: tp_routes (the kernel's routes) and tp_neigh (its neighbour
// entries of the next hops), as the sidecar writes them. Fresh peers (not
// in SCENE_ENDPOINTS, so neither in the scene's neighbours nor in the
// next-hop cache from an earlier fixture), one binding each.
//
// Fixtures changed with the mirror (they encoded learning from data frames):
// - "destination never seen" (44, 66) now pass as pass_no_neigh: the route
//   is there (on-link) but the kernel has no entry for the peer yet.
// - "client never seen" passes as pass_no_neigh, and the peer's own frame
//   that used to teach its MAC teaches nothing.
// - "peer learned from its own UDP", "client learned from its ChannelData",
//   "a destination's MAC changes: the newest one is used" and "client and
//   peer behind one gateway" became their mirror counterparts: the MAC
//   comes from tp_neigh (changed by the sidecar, not by frames), and a
//   gateway route sends to the gateway's entry.
// - "a multicast source MAC is not learned" and the ARP/ND learning
//   fixtures became "frames teach nothing": a frame's source MAC, ARP or ND
//   never adds or changes a next hop.

const fresh = (address: string, port: number, channel: number, allocationPort: number, client = C4) => ({
  peer: { address, port },
  binding: bind(client, channel, { address, port }, allocationPort),
});
const N4 = fresh('198.51.100.51', 6051, 0x4051, 50051);
const N6 = fresh('2001:db8:e::51', 6052, 0x4052, 50052, C6);
const CW4 = { address: '192.0.2.58', port: 50058 };
const U4 = fresh('198.51.100.58', 6058, 0x4058, 50058, CW4);
const M4 = fresh('198.51.100.55', 6055, 0x4055, 50055);
const W4 = fresh('198.51.100.59', 6059, 0x4059, 50059);
const W6 = fresh('2001:db8:f::59', 6060, 0x405a, 50060, C6);
const V4 = fresh('198.51.100.81', 6081, 0x4081, 50081);
const K4 = fresh('198.51.100.83', 6083, 0x4083, 50083);
const T4 = fresh('198.51.100.85', 6085, 0x4085, 50085);
const GATEWAY = Uint8Array.from([0x02, 0, 0, 0, 0, 0x9a]);
const GATEWAY2 = Uint8Array.from([0x02, 0, 0, 0, 0, 0x9b]);
const ATTACKER = Uint8Array.from([0x02, 0, 0, 0, 0, 0xee]);
const BROADCAST = Uint8Array.from([255, 255, 255, 255, 255, 255]);
const withFresh = (...xs: { binding: ChannelBinding }[]) => [...BINDINGS, ...xs.map((x) => x.binding)];
const cdTo = (x: { binding: ChannelBinding }, data_: Uint8Array) => inFrame(x.binding.client, toListen(x.binding.client), channelData(x.binding.channel, data_));
const route = (prefix: string, prefixLength: number, extra: Partial<Route> = {}): Route => ({ prefix, prefixLength, kind: 'unicast', ifindex: LO, mtu: 0, ...extra });
/** ChannelData to x's peer relays to dstMac (default: the peer's own). */
const relaysTo = (name: string, x: { peer: Endpoint; binding: ChannelBinding }, extra: Partial<Fixture> & { dstMac?: Uint8Array } = {}): Fixture => {
  const { dstMac, ...rest } = extra;
  return {
    name,
    bindings: withFresh(x),
    input: cdTo(x, data),
    action: 'XDP_TX',
    output: outFrame(alloc(x.peer, x.binding.allocationPort), x.peer, data, dstMac ? { dstMac } : {}),
    path: { name: x.peer.address.includes(':') ? 'chan_to_udp_66' : 'chan_to_udp_44', bytes: data.length },
    ...rest,
  };
};

fixtures.push(
  pass('next hop not resolved: ChannelData -> UDP 44 passes untouched (pass_no_neigh)', 'pass_no_neigh', cdTo(N4, data), { bindings: withFresh(N4) }),
  pass('next hop not resolved: ChannelData -> UDP 66 passes untouched (pass_no_neigh)', 'pass_no_neigh', cdTo(N6, data), { bindings: withFresh(N6) }),
  pass('client not resolved: UDP -> ChannelData passes, and the peer\'s own frame taught nothing', 'pass_no_neigh', inFrame(U4.peer, alloc(U4.peer, 50058), data), {
    bindings: withFresh(U4),
    before: [{ frame: learnFrame(CW4), action: 'XDP_PASS' }],
  }),
  relaysTo('a peer behind a gateway: the output goes to the gateway\'s MAC, the peer needs no entry of its own', W4, {
    nextHops: { routes: [...SCENE_ROUTES, route('198.51.100.0', 24, { gateway: '203.0.113.254' })], neighbours: [...SCENE_NEIGHBOURS, neighbourOf('203.0.113.254', GATEWAY)] },
    dstMac: GATEWAY,
  }),
  relaysTo('an IPv6 peer behind a link-local gateway (66)', W6, {
    nextHops: { routes: [...SCENE_ROUTES, route('2001:db8:f::', 48, { gateway: 'fe80::1' })], neighbours: [...SCENE_NEIGHBOURS, neighbourOf('fe80::1', GATEWAY)] },
    dstMac: GATEWAY,
  }),
  relaysTo('an IPv4 route with an IPv6 gateway (RTA_VIA) uses the gateway\'s IPv6 neighbour entry', V4, {
    nextHops: { routes: [...SCENE_ROUTES, route('198.51.100.80', 28, { gateway: 'fe80::2' })], neighbours: [...SCENE_NEIGHBOURS, neighbourOf('fe80::2', GATEWAY2)] },
    dstMac: GATEWAY2,
  }),
  relaysTo('the longest prefix wins: a /32 via one gateway inside a /24 via another', K4, {
    nextHops: {
      routes: [...SCENE_ROUTES, route('198.51.100.0', 24, { gateway: '203.0.113.254' }), route(K4.peer.address, 32, { gateway: '203.0.113.253' })],
      neighbours: [...SCENE_NEIGHBOURS, neighbourOf('203.0.113.254', GATEWAY), neighbourOf('203.0.113.253', GATEWAY2)],
    },
    dstMac: GATEWAY2,
  }),
  pass('no route of the output\'s family: pass_no_route', 'pass_no_route', cdTo(T4, data), {
    bindings: withFresh(T4),
    nextHops: { routes: [SCENE_ROUTES[1]!], neighbours: [...SCENE_NEIGHBOURS, neighbourOf(T4.peer.address)] },
  }),
  pass('an IPv6 default route does not cover IPv4 (nor ::ffff:0:0/96): pass_no_route', 'pass_no_route', cd4(), {
    nextHops: { routes: [route('::', 0), route('::ffff:0.0.0.0', 96)] },
  }),
  pass('a blackhole route (the stack decides): pass_no_route', 'pass_no_route', cdTo(T4, data), {
    bindings: withFresh(T4),
    nextHops: { routes: [...SCENE_ROUTES, route('198.51.100.84', 30, { kind: 'stack', ifindex: 0 })], neighbours: [...SCENE_NEIGHBOURS, neighbourOf(T4.peer.address)] },
  }),
  pass('a route out of another interface (XDP_TX cannot): pass_other_interface', 'pass_other_interface', cdTo(T4, data), {
    bindings: withFresh(T4),
    nextHops: { routes: [...SCENE_ROUTES, route('198.51.100.84', 30, { ifindex: 999 })], neighbours: [...SCENE_NEIGHBOURS, neighbourOf(T4.peer.address)] },
  }),
  pass('an output over the route\'s MTU: pass_too_big', 'pass_too_big', cdTo(T4, payloadOf(1000)), {
    bindings: withFresh(T4),
    nextHops: { routes: [...SCENE_ROUTES, route('198.51.100.84', 30, { mtu: 1000 })], neighbours: [...SCENE_NEIGHBOURS, neighbourOf(T4.peer.address)] },
  }),
  relaysTo('the gateway\'s MAC changes in tp_neigh: the next output goes to the new one (the sidecar empties the cache)', M4, {
    nextHops: { routes: [...SCENE_ROUTES, route('198.51.100.55', 32, { gateway: '203.0.113.254' })], neighbours: [...SCENE_NEIGHBOURS, neighbourOf('203.0.113.254', GATEWAY)] },
    before: [{ frame: cdTo(M4, data), action: 'XDP_TX' }],
    between: (r) => {
      r.putNeighbour(neighbourOf('203.0.113.254', GATEWAY2));
      r.forgetCachedNextHops();
    },
    dstMac: GATEWAY2,
  }),
);

// ---- frames from the LAN teach the program nothing -----------------------------------------
// Neither a data frame's source MAC nor ARP or IPv6 ND: what the program
// sends where is the kernel's (the mirror's) alone.

function arpFrame(o: { op: 1 | 2; sha: Uint8Array; spa: string; tpa: string; ethDst?: Uint8Array }): Uint8Array {
  const f = new Uint8Array(42);
  const v = new DataView(f.buffer);
  f.set(o.ethDst ?? MAC_B, 0);
  f.set(o.sha, 6);
  v.setUint16(12, 0x0806);
  v.setUint16(14, 1); // Ethernet
  v.setUint16(16, 0x0800); // IPv4
  f[18] = 6;
  f[19] = 4;
  v.setUint16(20, o.op);
  f.set(o.sha, 22);
  f.set(rawAddress(o.spa), 28);
  f.set(o.op === 2 ? MAC_B : new Uint8Array(6), 32);
  f.set(rawAddress(o.tpa), 38);
  return f;
}

/** Neighbor Solicitation (135) or Advertisement (136), RFC 4861 4.3/4.4, no options; valid ICMPv6 checksum. */
function ndFrame(o: { type: 135 | 136; ethSrc: Uint8Array; src: string; dst: string; target: string; hopLimit?: number }): Uint8Array {
  const icmp = new Uint8Array(24);
  icmp[0] = o.type;
  if (o.type === 136) icmp[4] = 0x60; // solicited, override
  icmp.set(rawAddress(o.target), 8);
  const src = rawAddress(o.src), dst = rawAddress(o.dst);
  const pseudo = new Uint8Array(40);
  pseudo.set(src, 0);
  pseudo.set(dst, 16);
  pseudo[35] = 24;
  pseudo[39] = 58;
  new DataView(icmp.buffer).setUint16(2, internetChecksum(pseudo, icmp));
  const f = new Uint8Array(14 + 40 + 24);
  const v = new DataView(f.buffer);
  f.set(o.dst.startsWith('ff') ? Uint8Array.from([0x33, 0x33, ...dst.subarray(12)]) : MAC_B, 0);
  f.set(o.ethSrc, 6);
  v.setUint16(12, 0x86dd);
  v.setUint32(14, 0x60000000);
  v.setUint16(18, 24);
  f[20] = 58;
  f[21] = o.hopLimit ?? 255;
  f.set(src, 22);
  f.set(dst, 38);
  f.set(icmp, 54);
  return f;
}

const A4 = fresh('198.51.100.61', 6061, 0x4061, 50061);
const R4 = fresh('198.51.100.63', 6063, 0x4063, 50063);
const A6 = fresh('2001:db8:e::61', 6062, 0x4062, 50062, C6);
const S6 = fresh('2001:db8:e::63', 6064, 0x4064, 50064, C6);
/** Frames claiming the peer's address from another MAC, each passed as before. */
const spoofs = (peer: Endpoint): Fixture['before'] =>
  peer.address.includes(':')
    ? [
        { frame: learnFrame(peer, { srcMac: ATTACKER }), action: 'XDP_PASS' },
        { frame: ndFrame({ type: 136, ethSrc: ATTACKER, src: peer.address, dst: RELAY6, target: peer.address }), action: 'XDP_PASS' },
        { frame: ndFrame({ type: 136, ethSrc: ATTACKER, src: peer.address, dst: 'ff02::1', target: peer.address }), action: 'XDP_PASS' },
        { frame: ndFrame({ type: 135, ethSrc: ATTACKER, src: peer.address, dst: 'ff02::1:ff00:1', target: RELAY6 }), action: 'XDP_PASS' },
      ]
    : [
        { frame: learnFrame(peer, { srcMac: ATTACKER }), action: 'XDP_PASS' },
        { frame: learnFrame(peer, { srcMac: Uint8Array.from([0x01, 0, 0x5e, 0, 0, 0x01]) }), action: 'XDP_PASS' },
        { frame: arpFrame({ op: 2, sha: ATTACKER, spa: peer.address, tpa: RELAY4 }), action: 'XDP_PASS' },
        { frame: arpFrame({ op: 1, sha: ATTACKER, spa: peer.address, tpa: RELAY4, ethDst: BROADCAST }), action: 'XDP_PASS' },
        { frame: arpFrame({ op: 1, sha: ATTACKER, spa: peer.address, tpa: peer.address, ethDst: BROADCAST }), action: 'XDP_PASS' },
      ];

fixtures.push(
  relaysTo('spoofed UDP and ARP from another MAC leave a resolved IPv4 peer\'s next hop alone', A4, {
    nextHops: { routes: SCENE_ROUTES, neighbours: [...SCENE_NEIGHBOURS, neighbourOf(A4.peer.address)] },
    before: spoofs(A4.peer),
  }),
  relaysTo('spoofed UDP and ND from another MAC leave a resolved IPv6 peer\'s next hop alone', A6, {
    nextHops: { routes: SCENE_ROUTES, neighbours: [...SCENE_NEIGHBOURS, neighbourOf(A6.peer.address)] },
    before: spoofs(A6.peer),
  }),
  pass('spoofed UDP and ARP do not resolve an unresolved IPv4 peer', 'pass_no_neigh', cdTo(R4, data), { bindings: withFresh(R4), before: spoofs(R4.peer) }),
  pass('spoofed UDP and ND do not resolve an unresolved IPv6 peer', 'pass_no_neigh', cdTo(S6, data), { bindings: withFresh(S6), before: spoofs(S6.peer) }),
);

// ---- IPv4 in IPv6 form never meets IPv4 state -------------------------------------------
// ::ffff:a.b.c.d is a.b.c.d in the program's 16-byte form. An IPv6 frame from
// such a source is dropped before any lookup, and a binding's IPv6 address
// in that form is keyed and sent as IPv6 (so never as the IPv4 one).

const mapped = (e: Endpoint): Endpoint => ({ address: `::ffff:${e.address}`, port: e.port });
const dropped = (name: string, input: Uint8Array, extra: Partial<Fixture> = {}): Fixture => ({
  name,
  input,
  action: 'XDP_DROP',
  output: input,
  reason: 'drop_v4_mapped',
  ...extra,
});
const X4 = fresh('198.51.100.71', 6071, 0x4071, 50071, C6);
const XM = { binding: bind(C6, 0x4071, mapped(X4.peer), 50071) }; // the same peer named as IPv6
const Y4 = fresh('198.51.100.73', 6073, 0x4073, 50073);

fixtures.push(
  dropped('IPv6 UDP from ::ffff:<peer> to the IPv4 binding\'s allocation port is dropped, not relayed to the IPv4 client', inFrame(mapped(P4), { address: RELAY6, port: 50001 }, data)),
  dropped('IPv6 ChannelData from ::ffff:<client> with the IPv4 client\'s channel is dropped, not relayed to its peer', inFrame(mapped(C4), toListen(C6), channelData(0x4001, data))),
  dropped('IPv6 STUN from an IPv4-mapped source is dropped too', learnFrame(mapped(C4))),
  dropped('a binding to an IPv6 peer in ::ffff:0:0/96 is not sent as IPv4 to the address it embeds', cdTo(XM, data), {
    bindings: withFresh(XM),
    nextHops: { routes: SCENE_ROUTES, neighbours: [...SCENE_NEIGHBOURS, neighbourOf(X4.peer.address)] },
  }),
  pass('an IPv6 frame from ::ffff:<peer> does not resolve the IPv4 peer', 'pass_no_neigh', cdTo(Y4, data), {
    bindings: withFresh(Y4),
    before: [{ frame: learnFrame(mapped(Y4.peer), { srcMac: ATTACKER }), action: 'XDP_DROP' }],
  }),
);

// ---- runner -------------------------------------------------------------------------

let router: XdpRouter | undefined;

const ready = (t: import('node:test').TestContext) =>
  requireRoot(t) && requireCapability(t, existsSync(OBJECT), `needs ${OBJECT} (make -C bpf)`);

before(() => {
  if (process.getuid?.() !== 0 || !existsSync(OBJECT)) return;
  router = XdpRouter.load({ objectPath: OBJECT, mapCapacity: 1024, log });
});
after(() => {
  router?.close();
});

const byAddress = (a: { address: string }, b: { address: string }) => a.address.localeCompare(b.address);

function delta<K extends string>(names: readonly K[], a: Record<K, bigint>, b: Record<K, bigint>): Partial<Record<K, bigint>> {
  const out: Partial<Record<K, bigint>> = {};
  for (const n of names) if (b[n] !== a[n]) out[n] = (b[n] as bigint) - (a[n] as bigint);
  return out;
}

function pathTotals(r: XdpRouter) {
  const packets = {} as Record<PathName, bigint>;
  const bytes = {} as Record<PathName, bigint>;
  for (const p of r.readPathStats()) {
    packets[p.path] = p.packets;
    bytes[p.path] = p.bytes;
  }
  return { packets, bytes };
}

for (const fx of fixtures) {
  test(`golden: ${fx.name}`, (t) => {
    if (!ready(t)) return;
    const r = fx.config === 'unwritten' ? XdpRouter.load({ objectPath: OBJECT, mapCapacity: 64, log }) : router!;
    try {
      if (fx.config !== 'unwritten') r.writeConfig(fx.config ?? BASE_CONFIG);
      r.clearBindings();
      for (const b of fx.bindings ?? BINDINGS) r.putChannel(b);
      installNextHops(r, fx.nextHops?.routes ?? SCENE_ROUTES, fx.nextHops?.neighbours ?? SCENE_NEIGHBOURS);
      const written = JSON.stringify(r.neighbours().sort(byAddress));
      for (const [i, b] of (fx.before ?? []).entries()) assert.equal(testRun(r, b.frame).actionName, b.action, `verdict of frame ${i} before the input`);
      fx.between?.(r);
      const reasons0 = r.readReasons();
      const paths0 = pathTotals(r);

      const res = testRun(r, fx.input);

      assert.equal(res.actionName, fx.action, 'verdict');
      if (fx.output) assert.equal(hex(res.data), hex(fx.output), 'output bytes');
      if (fx.action === 'XDP_TX') assertWellFormed(res.data, fx.name);

      const reasons = delta(REASON_NAMES, reasons0, r.readReasons());
      assert.deepEqual(reasons, fx.reason ? { [fx.reason]: 1n } : {}, 'reason counters');
      const paths1 = pathTotals(r);
      const packets = delta(PATH_NAMES, paths0.packets, paths1.packets);
      const bytes = delta(PATH_NAMES, paths0.bytes, paths1.bytes);
      assert.deepEqual(packets, fx.path ? { [fx.path.name]: 1n } : {}, 'path packet counters');
      assert.deepEqual(bytes, fx.path && fx.path.bytes > 0 ? { [fx.path.name]: BigInt(fx.path.bytes) } : {}, 'path byte counters');
      if (!fx.between) assert.equal(JSON.stringify(r.neighbours().sort(byAddress)), written, 'tp_neigh as the sidecar wrote it: frames change nothing');
    } finally {
      if (r !== router) r.close();
    }
  });
}

test('golden: no frame from any scene endpoint (UDP, STUN, ChannelData) writes to the next-hop tables', (t) => {
  if (!ready(t)) return;
  const r = router!;
  r.writeConfig(BASE_CONFIG);
  r.clearBindings();
  for (const b of BINDINGS) r.putChannel(b);
  installNextHops(r, SCENE_ROUTES, []);
  for (const e of SCENE_ENDPOINTS) {
    testRun(r, learnFrame(e));
    testRun(r, inFrame(e, toListen(e), channelData(0x4001, data)));
  }
  assert.deepEqual(r.neighbours(), []);
  assert.equal(r.routes().length, SCENE_ROUTES.length);
  assert.deepEqual(r.clearNextHops(), { routes: SCENE_ROUTES.length, neighbours: 0 });
});

test('golden: the decoder under test agrees with the fixtures (addresses)', () => {
  const d = decodeFrame(outFrame(alloc(P6, 50002), P6, data))!;
  assert.equal(d.src.address, canonical(RELAY6));
  assert.equal(d.dst.address, canonical(P6.address));
  assert.ok(d.udpOk && d.ipHeaderOk);
});

test('golden: port_min > port_max passes peer traffic and sends one misconfig diagnostic', async (t) => {
  if (!ready(t)) return;
  const pinDir = join(bpffsFor(t), 'pins');
  const r = XdpRouter.load({ objectPath: OBJECT, mapCapacity: 64, pinDir, log });
  const events: TpDiagEvent[] = [];
  const diag = openDiagnostics(r, { onEvent: (ev) => events.push(ev), pollMs: 20 });
  try {
    // writeConfig refuses this config, so write the raw slot the way a broken
    // writer would.
    const raw = encodeConfig({ ...BASE_CONFIG, portMin: 60000, portMax: 50000, diagPerSec: 1 });
    execFileSync('bpftool', ['map', 'update', 'pinned', join(pinDir, 'tp_config'), 'key', '0', '0', '0', '0', 'value', ...[...raw].map(String)]);
    r.putChannel(BINDINGS[0]!);
    const before0 = r.readReasons();
    const input = inFrame(P4, alloc(P4, 55000), data);
    for (let i = 0; i < 3; i++) assert.equal(testRun(r, input).actionName, 'XDP_PASS');
    const d = delta(REASON_NAMES, before0, r.readReasons());
    assert.deepEqual(d, { pass_not_relay_port: 3n });
    // the listen port still works (the peer's next hop is resolved)
    installNextHops(r);
    assert.equal(testRun(r, inFrame(C4, toListen(C4), channelData(0x4001, data))).actionName, 'XDP_TX');
    for (let i = 0; i < 50 && events.length === 0; i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(events.length, 1, 'diag_per_sec = 1 lets one event through per second per CPU');
    assert.equal(events[0]!.kind, 2);
    assert.equal(events[0]!.reason, REASON_NAMES.indexOf('pass_not_relay_port'));
  } finally {
    await diag.close();
    r.close({ unpin: true });
  }
});
