// Golden tests of bpf/turn_router.o through BPF_PROG_TEST_RUN: a fixture
// table {name, config, bindings, learned neighbours, input, expected action,
// expected output bytes, expected counter deltas}. Expected outputs are
// built independently with test/bpf/frames.ts, and every XDP_TX output's
// IPv4 header and UDP checksums are verified from scratch as well.
//
// Next-hop MACs: in a test run the ingress interface is lo of this process's
// namespace, where forwarding is off, so bpf_fib_lookup answers
// BPF_FIB_LKUP_RET_FWD_DISABLED (observed on 6.18; with forwarding on it
// would answer NOT_FWDED, as nothing routes via lo, which takes the same
// branch). Every output therefore goes to the MAC learned from the
// destination's own frames: before each fixture the learned table is
// emptied and each endpoint of `neighbours` (default: every endpoint of the
// scene) sends one STUN request, each with its own MAC (golden-scene macOf).
// Emptying also clears the program's per-CPU caches in front of the table
// (confirmed sources, next hops); the learning fixtures use fresh addresses
// besides, so they do not depend on that.
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
import { encodeConfig, PATH_NAMES, REASON_NAMES, type PathName, type ReasonName, type TpDiagEvent } from '../../src/sidecar/bpf/abi.ts';
import { requireRoot, requireCapability } from '../helpers/env.ts';
import { testRun } from '../helpers/bpf-test-run.ts';
import { bpffsFor } from '../helpers/bpffs.ts';
import { MAC_A, MAC_B, canonical, channelData, decodeFrame, hex, internetChecksum, payloadOf, rawAddress, type Endpoint, type FrameSpec } from './frames.ts';
import {
  BASE_CONFIG,
  BINDINGS,
  C4,
  C6,
  LISTEN,
  OBJECT,
  P4,
  P6,
  RELAY4,
  RELAY6,
  SCENE_ENDPOINTS,
  alloc,
  assertWellFormed,
  bind,
  inFrame,
  learnFrame,
  macOf,
  outFrame,
  toListen,
} from './golden-scene.ts';

const log = pino({ level: 'silent' });

// ---- fixtures ---------------------------------------------------------------

interface Fixture {
  name: string;
  config?: RouterConfig | 'unwritten';
  bindings?: ChannelBinding[];
  /** Endpoints whose MAC the program learns first (one STUN request each); default SCENE_ENDPOINTS. */
  neighbours?: Endpoint[];
  /** Frames run after learning and before the input, with their expected verdicts. */
  before?: { frame: Uint8Array; action: 'XDP_TX' | 'XDP_PASS' | 'XDP_DROP' }[];
  input: Uint8Array;
  action: 'XDP_TX' | 'XDP_PASS' | 'XDP_DROP';
  output?: Uint8Array;
  reason?: ReasonName;
  path?: { name: PathName; bytes: number };
}

const data = payloadOf(100, 7);
const odd = payloadOf(151, 3); // > 2 x 64 bytes and odd: exercises every piece of the full checksum
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
fixtures.push({
  name: 'output exactly at the MTU relays',
  input: inFrame(P4, alloc(P4, 50001), payloadOf(1500 - 28 - 4)),
  action: 'XDP_TX',
  output: outFrame(toListen(C4), C4, channelData(0x4001, payloadOf(1500 - 28 - 4))),
  path: { name: 'udp_to_chan_44', bytes: 1500 - 28 - 4 },
});

// ---- next-hop MACs when the FIB cannot answer ------------------------------------
// Fresh peers (not in SCENE_ENDPOINTS, so neither learned by default nor in
// the next-hop cache from an earlier fixture), one binding each from C4/C6,
// or from a fresh client where the client must be unknown.

const fresh = (address: string, port: number, channel: number, allocationPort: number, client = C4) => ({
  peer: { address, port },
  binding: bind(client, channel, { address, port }, allocationPort),
});
const N4 = fresh('198.51.100.51', 6051, 0x4051, 50051);
const N6 = fresh('2001:db8:e::51', 6052, 0x4052, 50052, C6);
const CL4 = { address: '192.0.2.53', port: 50053 };
const CL6 = { address: '2001:db8:c::53', port: 50054 };
const CW4 = { address: '192.0.2.58', port: 50058 };
const L4 = fresh('198.51.100.53', 6053, 0x4053, 50053, CL4);
const L6 = fresh('2001:db8:e::53', 6054, 0x4054, 50054, CL6);
const U4 = fresh('198.51.100.58', 6058, 0x4058, 50058, CW4);
const M4 = fresh('198.51.100.55', 6055, 0x4055, 50055);
const G4 = fresh('198.51.100.57', 6057, 0x4057, 50057);
const W4 = fresh('198.51.100.59', 6059, 0x4059, 50059);
const GATEWAY = Uint8Array.from([0x02, 0, 0, 0, 0, 0x9a]);
const withFresh = (...xs: { binding: ChannelBinding }[]) => [...BINDINGS, ...xs.map((x) => x.binding)];

fixtures.push(
  pass('destination never seen: ChannelData -> UDP 44 passes untouched (pass_not_learned)', 'pass_not_learned', inFrame(C4, toListen(C4), channelData(0x4051, data)), {
    bindings: withFresh(N4),
  }),
  pass('destination never seen: ChannelData -> UDP 66 passes untouched (pass_not_learned)', 'pass_not_learned', inFrame(C6, toListen(C6), channelData(0x4052, data)), {
    bindings: withFresh(N6),
  }),
  pass('client never seen: UDP -> ChannelData passes, although the peer was just learned from this very frame', 'pass_not_learned', inFrame(U4.peer, alloc(U4.peer, 50058), data), {
    bindings: withFresh(U4),
  }),
  {
    name: 'peer learned from its own UDP (passed: client unknown), then ChannelData to it goes to its MAC',
    bindings: withFresh(L4),
    neighbours: [],
    before: [{ frame: inFrame(L4.peer, alloc(L4.peer, 50053), data), action: 'XDP_PASS' }],
    input: inFrame(CL4, toListen(CL4), channelData(0x4053, data)),
    action: 'XDP_TX',
    output: outFrame(alloc(L4.peer, 50053), L4.peer, data),
    path: { name: 'chan_to_udp_44', bytes: data.length },
  },
  {
    name: 'peer learned from its UDP, client learned from its ChannelData: the reply goes to the client\'s MAC (66)',
    bindings: withFresh(L6),
    neighbours: [],
    before: [
      { frame: inFrame(L6.peer, alloc(L6.peer, 50054), data), action: 'XDP_PASS' },
      { frame: inFrame(CL6, toListen(CL6), channelData(0x4054, data)), action: 'XDP_TX' },
    ],
    input: inFrame(L6.peer, alloc(L6.peer, 50054), odd),
    action: 'XDP_TX',
    output: outFrame(toListen(CL6), CL6, channelData(0x4054, odd)),
    path: { name: 'udp_to_chan_66', bytes: odd.length },
  },
  {
    name: 'a destination\'s MAC changes: the newest one is used',
    bindings: withFresh(M4),
    before: [
      { frame: learnFrame(M4.peer, { srcMac: Uint8Array.from([0x02, 0, 0, 0, 0, 0x01]) }), action: 'XDP_PASS' },
      { frame: learnFrame(M4.peer), action: 'XDP_PASS' },
    ],
    input: inFrame(C4, toListen(C4), channelData(0x4055, data)),
    action: 'XDP_TX',
    output: outFrame(alloc(M4.peer, 50055), M4.peer, data),
    path: { name: 'chan_to_udp_44', bytes: data.length },
  },
  pass('a multicast source MAC is not learned', 'pass_not_learned', inFrame(C4, toListen(C4), channelData(0x4057, data)), {
    bindings: withFresh(G4),
    before: [{ frame: learnFrame(G4.peer, { srcMac: Uint8Array.from([0x01, 0, 0x5e, 0, 0, 0x01]) }), action: 'XDP_PASS' }],
  }),
  {
    name: 'client and peer behind one gateway: the output goes back to that MAC, learned for the peer',
    bindings: withFresh(W4),
    neighbours: [],
    before: [{ frame: learnFrame(W4.peer, { srcMac: GATEWAY }), action: 'XDP_PASS' }],
    input: inFrame(C4, toListen(C4), channelData(0x4059, data), { srcMac: GATEWAY }),
    action: 'XDP_TX',
    output: outFrame(alloc(W4.peer, 50059), W4.peer, data, { dstMac: GATEWAY }),
    path: { name: 'chan_to_udp_44', bytes: data.length },
  },
);

// ---- next hops learned from address resolution (ARP, IPv6 ND) ---------------------
// The stack resolves a destination for the first relayed packets; its
// answer (or its own request for the relay's address) teaches the program
// the MAC, so a peer that never sends UDP still gets a fast path.

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
const Q4 = fresh('198.51.100.65', 6065, 0x4065, 50065);
const GA4 = fresh('198.51.100.67', 6067, 0x4067, 50067);
const GB4 = fresh('198.51.100.69', 6069, 0x4069, 50069);
const A6 = fresh('2001:db8:e::61', 6062, 0x4062, 50062, C6);
const S6 = fresh('2001:db8:e::63', 6064, 0x4064, 50064, C6);
const H6 = fresh('2001:db8:e::65', 6066, 0x4066, 50066, C6);
const U6 = fresh('2001:db8:e::67', 6068, 0x4068, 50068, C6);
const OLD = Uint8Array.from([0x02, 0, 0, 0, 0, 0x0d]);
const cdTo = (x: { binding: ChannelBinding }, data_: Uint8Array) => inFrame(x.binding.client, toListen(x.binding.client), channelData(x.binding.channel, data_));
const learnedTx = (name: string, x: { peer: Endpoint; binding: ChannelBinding }, before: Fixture['before']): Fixture => ({
  name,
  bindings: withFresh(x),
  before,
  input: cdTo(x, data),
  action: 'XDP_TX',
  output: outFrame(alloc(x.peer, x.binding.allocationPort), x.peer, data),
  path: { name: x.peer.address.includes(':') ? 'chan_to_udp_66' : 'chan_to_udp_44', bytes: data.length },
});
const pass_ = (x: { binding: ChannelBinding }) => ({ frame: cdTo(x, data), action: 'XDP_PASS' as const });

fixtures.push(
  learnedTx('ARP reply to the relay teaches the peer\'s MAC: the next ChannelData to it relays', A4, [
    pass_(A4),
    { frame: arpFrame({ op: 2, sha: macOf(A4.peer.address), spa: A4.peer.address, tpa: RELAY4 }), action: 'XDP_PASS' },
  ]),
  learnedTx('ARP request for the relay\'s address teaches the requester\'s MAC', R4, [
    { frame: arpFrame({ op: 1, sha: macOf(R4.peer.address), spa: R4.peer.address, tpa: RELAY4, ethDst: Uint8Array.from([255, 255, 255, 255, 255, 255]) }), action: 'XDP_PASS' },
  ]),
  pass('ARP request for another address teaches nothing', 'pass_not_learned', cdTo(Q4, data), {
    bindings: withFresh(Q4),
    before: [{ frame: arpFrame({ op: 1, sha: macOf(Q4.peer.address), spa: Q4.peer.address, tpa: '203.0.113.77', ethDst: Uint8Array.from([255, 255, 255, 255, 255, 255]) }), action: 'XDP_PASS' }],
  }),
  learnedTx('gratuitous ARP updates a learned MAC', GA4, [
    { frame: learnFrame(GA4.peer, { srcMac: OLD }), action: 'XDP_PASS' },
    { frame: arpFrame({ op: 1, sha: macOf(GA4.peer.address), spa: GA4.peer.address, tpa: GA4.peer.address, ethDst: Uint8Array.from([255, 255, 255, 255, 255, 255]) }), action: 'XDP_PASS' },
  ]),
  pass('gratuitous ARP does not add an unknown address', 'pass_not_learned', cdTo(GB4, data), {
    bindings: withFresh(GB4),
    before: [{ frame: arpFrame({ op: 1, sha: macOf(GB4.peer.address), spa: GB4.peer.address, tpa: GB4.peer.address, ethDst: Uint8Array.from([255, 255, 255, 255, 255, 255]) }), action: 'XDP_PASS' }],
  }),
  learnedTx('IPv6 Neighbor Advertisement to the relay teaches the target\'s MAC', A6, [
    pass_(A6),
    { frame: ndFrame({ type: 136, ethSrc: macOf(A6.peer.address), src: A6.peer.address, dst: RELAY6, target: A6.peer.address }), action: 'XDP_PASS' },
  ]),
  learnedTx('IPv6 Neighbor Solicitation for the relay\'s address teaches the solicitor\'s MAC', S6, [
    { frame: ndFrame({ type: 135, ethSrc: macOf(S6.peer.address), src: S6.peer.address, dst: 'ff02::1:ff00:1', target: RELAY6 }), action: 'XDP_PASS' },
  ]),
  pass('IPv6 Neighbor Advertisement with hop limit below 255 teaches nothing', 'pass_not_learned', cdTo(H6, data), {
    bindings: withFresh(H6),
    before: [{ frame: ndFrame({ type: 136, ethSrc: macOf(H6.peer.address), src: H6.peer.address, dst: RELAY6, target: H6.peer.address, hopLimit: 64 }), action: 'XDP_PASS' }],
  }),
  pass('unsolicited IPv6 Neighbor Advertisement (to all nodes) does not add an unknown address', 'pass_not_learned', cdTo(U6, data), {
    bindings: withFresh(U6),
    before: [{ frame: ndFrame({ type: 136, ethSrc: macOf(U6.peer.address), src: U6.peer.address, dst: 'ff02::1', target: U6.peer.address }), action: 'XDP_PASS' }],
  }),
);

// ---- IPv4 in IPv6 form never meets IPv4 state -------------------------------------------
// ::ffff:a.b.c.d is a.b.c.d in the program's 16-byte form. An IPv6 frame from
// such a source is dropped before any lookup or learning, a binding's IPv6
// address in that form is keyed and sent as IPv6 (so never as the IPv4 one),
// and what ND teaches about such an address stays an IPv6 neighbour.

const mapped = (e: Endpoint): Endpoint => ({ address: `::ffff:${e.address}`, port: e.port });
const ATTACKER = Uint8Array.from([0x02, 0, 0, 0, 0, 0xee]);
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
const Z4 = fresh('198.51.100.75', 6075, 0x4075, 50075);

fixtures.push(
  dropped('IPv6 UDP from ::ffff:<peer> to the IPv4 binding\'s allocation port is dropped, not relayed to the IPv4 client', inFrame(mapped(P4), { address: RELAY6, port: 50001 }, data)),
  dropped('IPv6 ChannelData from ::ffff:<client> with the IPv4 client\'s channel is dropped, not relayed to its peer', inFrame(mapped(C4), toListen(C6), channelData(0x4001, data))),
  dropped('IPv6 STUN from an IPv4-mapped source is dropped too (nothing is learned from it)', learnFrame(mapped(C4))),
  dropped('a binding to an IPv6 peer in ::ffff:0:0/96 is not sent as IPv4 to the address it embeds', cdTo(XM, data), {
    bindings: withFresh(XM),
    neighbours: [...SCENE_ENDPOINTS, X4.peer],
  }),
  pass('an IPv6 frame from ::ffff:<peer> teaches nothing about the IPv4 peer', 'pass_not_learned', cdTo(Y4, data), {
    bindings: withFresh(Y4),
    before: [{ frame: learnFrame(mapped(Y4.peer), { srcMac: ATTACKER }), action: 'XDP_DROP' }],
  }),
  pass('a Neighbor Solicitation from ::ffff:<peer> teaches an IPv6 neighbour, not the IPv4 peer', 'pass_not_learned', cdTo(Z4, data), {
    bindings: withFresh(Z4),
    before: [{ frame: ndFrame({ type: 135, ethSrc: ATTACKER, src: mapped(Z4.peer).address, dst: 'ff02::1:ff00:1', target: RELAY6 }), action: 'XDP_PASS' }],
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
      r.clearNeighbours();
      for (const e of fx.neighbours ?? SCENE_ENDPOINTS) testRun(r, learnFrame(e));
      for (const [i, b] of (fx.before ?? []).entries()) assert.equal(testRun(r, b.frame).actionName, b.action, `verdict of frame ${i} before the input`);
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
    } finally {
      if (r !== router) r.close();
    }
  });
}

test('golden: the program learns exactly the scene endpoints, on lo, with their MACs', (t) => {
  if (!ready(t)) return;
  const r = router!;
  r.writeConfig(BASE_CONFIG);
  r.clearNeighbours();
  for (const e of SCENE_ENDPOINTS) testRun(r, learnFrame(e));
  testRun(r, learnFrame(C4)); // again: still one entry
  const mac = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
  const got = r.neighbours().map((n) => ({ address: n.address, ifindex: n.ifindex, mac: n.mac, timed: n.seenNs > 0n }));
  const want = SCENE_ENDPOINTS.map((e) => ({ address: canonical(e.address), ifindex: 1, mac: mac(macOf(e.address)), timed: true }));
  const byAddress = (a: { address: string }, b: { address: string }) => a.address.localeCompare(b.address);
  assert.deepEqual(got.sort(byAddress), want.sort(byAddress));
  assert.equal(r.clearNeighbours(), SCENE_ENDPOINTS.length);
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
    // the listen port still works (once the peer's MAC is learned)
    testRun(r, learnFrame(P4));
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
