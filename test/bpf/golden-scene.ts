// The scene shared by the golden, fuzz and benchmark runs of
// bpf/turn_router.o: relay configuration, installed bindings (one per family
// combination plus allocation pairs for channel -> channel) and helpers that
// build input frames and the frames the relay is expected to send.
//
// Next hops: every endpoint has its own MAC (macOf), the relay's interface
// is MAC_B. A test run has no usable FIB (ingress is lo, where forwarding
// is off: bpf_fib_lookup answers FWD_DISABLED), so an output goes where the
// mirrored kernel tables say, as the sidecar's mirror would write them for
// a host on one LAN with everyone: a default route per family, on-link via
// lo (SCENE_ROUTES), and a neighbour entry per endpoint with its MAC
// (SCENE_NEIGHBOURS); installNextHops() writes them.
import assert from 'node:assert/strict';
import type { ChannelBinding, RouterConfig, XdpRouter } from '../../src/sidecar/bpf/router.ts';
import { macText, type Neighbour, type Route } from '../../src/sidecar/bpf/abi.ts';
import { MAC_B, buildFrame, canonical, decodeFrame, payloadOf, type Endpoint, type FrameSpec } from './frames.ts';

export const OBJECT = new URL('../../bpf/turn_router.o', import.meta.url).pathname;
export const EMPTY_OBJECT = new URL('../../bpf/empty.o', import.meta.url).pathname;

export const RELAY4 = '203.0.113.1';
export const RELAY6 = '2001:db8::1';
export const LISTEN = 3478;
export const BASE_CONFIG: RouterConfig = {
  listenPort: LISTEN,
  portMin: 49152,
  portMax: 65535,
  relayV4: RELAY4,
  relayV6: RELAY6,
  mtu: 1500,
  diagPerSec: 100,
};

export const C4: Endpoint = { address: '192.0.2.10', port: 50000 };
export const C6: Endpoint = { address: '2001:db8:c::10', port: 50001 };
export const P4: Endpoint = { address: '198.51.100.20', port: 6000 };
export const P6: Endpoint = { address: '2001:db8:e::20', port: 6001 };

export const bind = (client: Endpoint, channel: number, peer: Endpoint, allocationPort: number): ChannelBinding => ({
  client,
  channel,
  peer,
  allocationPort,
});

// One binding per family combination, plus pairs of allocations on this
// relay talking to each other (channel -> channel).
export const BINDINGS: ChannelBinding[] = [
  bind(C4, 0x4001, P4, 50001), // 44
  bind(C4, 0x4002, P6, 50002), // 46
  bind(C6, 0x4003, P4, 50003), // 64
  bind(C6, 0x4004, P6, 50004), // 66
  // chan->chan 44: A=C4 alloc v4 50011 <-> B=C4' alloc v4 50012
  bind(C4, 0x4011, { address: RELAY4, port: 50012 }, 50011),
  bind({ address: '192.0.2.11', port: 50100 }, 0x4012, { address: RELAY4, port: 50011 }, 50012),
  // chan->chan 46: A=C4 alloc v6 50021 <-> B=C6' alloc v6 50022
  bind(C4, 0x4021, { address: RELAY6, port: 50022 }, 50021),
  bind({ address: '2001:db8:c::11', port: 50200 }, 0x4022, { address: RELAY6, port: 50021 }, 50022),
  // chan->chan 64: A=C6 alloc v4 50031 <-> B=C4'' alloc v4 50032
  bind(C6, 0x4031, { address: RELAY4, port: 50032 }, 50031),
  bind({ address: '192.0.2.12', port: 50300 }, 0x4032, { address: RELAY4, port: 50031 }, 50032),
  // chan->chan 66: A=C6 alloc v6 50041 <-> B=C6'' alloc v6 50042
  bind(C6, 0x4041, { address: RELAY6, port: 50042 }, 50041),
  bind({ address: '2001:db8:c::12', port: 50400 }, 0x4042, { address: RELAY6, port: 50041 }, 50042),
];

export const relayOf = (address: string) => (address.includes(':') ? RELAY6 : RELAY4);

/** Every non-relay endpoint of BINDINGS: the destinations outputs go to. */
export const SCENE_ENDPOINTS: Endpoint[] = [
  ...new Map(
    BINDINGS.flatMap((b) => [b.client, b.peer])
      .filter((e) => canonical(e.address) !== canonical(relayOf(e.address)))
      .map((e) => [canonical(e.address), e] as const),
  ).values(),
];

/** The next-hop MAC frames from `address` arrive with: 02:00 + 4 bytes of an FNV-1a hash of it. */
export function macOf(address: string): Uint8Array {
  let h = 0x811c9dc5;
  for (const c of canonical(address)) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return Uint8Array.from([0x02, 0x00, h >>> 24, (h >>> 16) & 255, (h >>> 8) & 255, h & 255]);
}

/** ifindex of lo, the ingress interface of every test run. */
export const LO = 1;

/** Default routes of both families, on-link out of lo. */
export const SCENE_ROUTES: Route[] = [
  { prefix: '0.0.0.0', prefixLength: 0, kind: 'unicast', ifindex: LO, mtu: 0 },
  { prefix: '::', prefixLength: 0, kind: 'unicast', ifindex: LO, mtu: 0 },
];

/** The kernel's neighbour entry of an address on lo, as the mirror writes it (own MAC: MAC_B). */
export const neighbourOf = (address: string, mac: Uint8Array = macOf(address)): Neighbour => ({ address, ifindex: LO, mac: macText(mac), ownMac: macText(MAC_B) });

/** Every scene endpoint resolved. */
export const SCENE_NEIGHBOURS: Neighbour[] = SCENE_ENDPOINTS.map((e) => neighbourOf(e.address));

/** Replaces the program's next-hop tables (and its cache of them) with these. */
export function installNextHops(r: XdpRouter, routes: readonly Route[] = SCENE_ROUTES, neighbours: readonly Neighbour[] = SCENE_NEIGHBOURS): void {
  r.clearNextHops();
  for (const x of routes) r.putRoute(x);
  for (const n of neighbours) r.putNeighbour(n);
}

/** A frame from `from` to `to` as it arrives (from's MAC -> the relay's MAC_B). */
export const inFrame = (from: Endpoint, to: Endpoint, payload: Uint8Array, extra: Partial<FrameSpec> = {}) =>
  buildFrame({ src: from, dst: to, payload, srcMac: macOf(from.address), ...extra });

/** What the relay sends: from MAC_B to the destination's MAC, fresh IP header. */
export const outFrame = (from: Endpoint, to: Endpoint, payload: Uint8Array, extra: Partial<FrameSpec> = {}) =>
  buildFrame({ src: from, dst: to, payload, srcMac: MAC_B, dstMac: macOf(to.address), ttl: 64, tos: 0, id: 0, df: true, ...extra });

/** A STUN Binding request from `from` to the listen port: passed (pass_stun); it teaches the program nothing. */
export const learnFrame = (from: Endpoint, extra: Partial<FrameSpec> = {}) =>
  inFrame(from, { address: relayOf(from.address), port: LISTEN }, Uint8Array.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, ...payloadOf(12)]), extra);

export const toListen = (client: Endpoint) => ({ address: relayOf(client.address), port: LISTEN });
export const alloc = (peer: Endpoint, port: number) => ({ address: relayOf(peer.address), port });

/** Independent checks every relayed output must pass. */
export function assertWellFormed(out: Uint8Array, what: string): void {
  const d = decodeFrame(out);
  assert.ok(d, `${what}: output decodes as Ethernet/IP/UDP`);
  assert.ok(d.lengthsOk, `${what}: IP and UDP lengths agree with the frame`);
  assert.ok(d.ipHeaderOk, `${what}: IPv4 header checksum`);
  assert.ok(d.udpOk, `${what}: UDP checksum`);
  if (d.family === 6) assert.notEqual(d.udpChecksumField, 0, `${what}: IPv6 UDP checksum present`);
}

