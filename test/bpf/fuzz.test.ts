// Randomised frames through bpf/turn_router.o (BPF_PROG_TEST_RUN): mutated
// valid fixtures (flipped bytes, lengths, ports, channel numbers, families,
// checksums) from a seeded PRNG. Properties:
// - never XDP_DROP/ABORTED (every drop reason is unreachable by construction);
// - XDP_PASS hands the frame on untouched (never half rewritten);
// - XDP_TX output decodes, lengths agree, the IPv4 header checksum is valid,
//   the UDP checksum is valid exactly when the input's was (an error is
//   carried, never laundered into a valid checksum), IPv6 always has one;
// - every XDP_TX output corresponds to an installed binding, from the right
//   relay address/port, carrying exactly the input's application payload;
// - its MACs are the mirrored next hop's (the scene's tp_neigh entry of the
//   output's destination: its own MAC, from the relay's MAC_B), whatever
//   MACs the inputs carried (every endpoint has its own MAC; test runs have
//   no usable FIB), and no input changed the mirrored tables.
// Set TP_FUZZ_SEED / TP_FUZZ_N to reproduce or lengthen a run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import pino from 'pino';
import { XdpRouter, type ChannelBinding } from '../../src/sidecar/bpf/router.ts';
import { requireRoot, requireCapability } from '../helpers/env.ts';
import { testRun } from '../helpers/bpf-test-run.ts';
import { MAC_B, canonical, channelData, decodeFrame, fixChecksums, hex, payloadOf, type Endpoint } from './frames.ts';
import { BASE_CONFIG, BINDINGS, LISTEN, OBJECT, RELAY4, RELAY6, alloc, inFrame, installNextHops, macOf, relayOf, toListen } from './golden-scene.ts';

const SEED = Number(process.env.TP_FUZZ_SEED ?? 0x7e57c0de);
const N = Number(process.env.TP_FUZZ_N ?? 100_000);

/** mulberry32: small, seedable, good enough to drive mutations. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    chance: (p: number) => next() < p,
  };
}
type Rng = ReturnType<typeof prng>;

const same = (a: Endpoint, b: Endpoint) => canonical(a.address) === canonical(b.address) && a.port === b.port;

// Address and port pools: installed ones plus near misses.
const ADDRS = [
  ...new Set([...BINDINGS.flatMap((b) => [b.client.address, b.peer.address]), RELAY4, RELAY6, '203.0.113.2', '2001:db8::2', '192.0.2.99']),
];
const PORTS = [...new Set([LISTEN, ...BINDINGS.flatMap((b) => [b.client.port, b.peer.port, b.allocationPort]), 80, 49152, 65535, 50000])];
const CHANNELS = [...new Set([...BINDINGS.map((b) => b.channel), 0x4000, 0x4fff, 0x5000, 0x0001, 0x8000])];

/** A well-formed frame on a random installed path (or a near miss). */
function seedFrame(r: Rng): Uint8Array {
  const b = r.pick(BINDINGS);
  const data = payloadOf(r.int(r.chance(0.1) ? 1500 : 200), r.int(1000));
  const zero = r.chance(0.15) ? ({ udpChecksum: 'zero' } as const) : {};
  if (r.chance(0.55)) {
    const pad = r.int(4);
    const f = inFrame(b.client, toListen(b.client), channelData(b.channel, data, pad, r.int(256)), b.client.address.includes(':') ? {} : zero);
    return f;
  }
  return inFrame(b.peer, alloc(b.peer, b.allocationPort), data, b.peer.address.includes(':') ? {} : zero);
}

/** A frame with random endpoints from the pools (families mixed freely). */
function randomFrame(r: Rng): Uint8Array {
  const v6 = r.chance(0.5);
  const addrs = ADDRS.filter((a) => a.includes(':') === v6);
  const src = { address: r.pick(addrs), port: r.pick(PORTS) };
  const dst = { address: r.chance(0.7) ? (v6 ? RELAY6 : RELAY4) : r.pick(addrs), port: r.pick(PORTS) };
  const data = payloadOf(r.int(120), r.int(1000));
  const payload = r.chance(0.7) ? channelData(r.pick(CHANNELS), data, r.int(5)) : data;
  return inFrame(src, dst, payload, !v6 && r.chance(0.2) ? { udpChecksum: 'zero' } : {});
}

function mutate(r: Rng, f0: Uint8Array): Uint8Array {
  let f = f0.slice();
  const dv = () => new DataView(f.buffer, f.byteOffset, f.byteLength);
  const l4 = f[12] === 0x86 ? 54 : 34;
  const fix = r.chance(0.7);
  switch (r.int(7)) {
    case 0: // flip bytes anywhere
      for (let i = 1 + r.int(4); i > 0; i--) f[r.int(f.length)]! ^= 1 << r.int(8);
      break;
    case 1: // truncate or extend
      f = r.chance(0.5) ? f.slice(0, r.int(f.length + 1)) : Uint8Array.from([...f, ...payloadOf(1 + r.int(8), r.int(99))]);
      break;
    case 2: // ports
      if (f.length >= l4 + 4) dv().setUint16(l4 + (r.chance(0.5) ? 0 : 2), r.chance(0.7) ? r.pick(PORTS) : r.int(65536));
      break;
    case 3: // channel number
      if (f.length >= l4 + 10) dv().setUint16(l4 + 8, r.chance(0.6) ? r.pick(CHANNELS) : r.int(65536));
      break;
    case 4: // ChannelData length field
      if (f.length >= l4 + 12) dv().setUint16(l4 + 10, Math.max(0, dv().getUint16(l4 + 10) + r.int(9) - 4));
      break;
    case 5: // header length fields (IP total/payload length, UDP length)
      if (f.length >= l4 + 8) dv().setUint16(r.pick([l4 === 34 ? 16 : 18, l4 + 4]), Math.max(0, dv().getUint16(l4 + 4) + r.int(9) - 4));
      break;
    case 6: // UDP checksum 0 / random
      if (f.length >= l4 + 8) dv().setUint16(l4 + 6, r.chance(0.5) ? 0 : r.int(65536));
      break;
  }
  if (fix) fixChecksums(f);
  return f;
}

/** The application payload carried by an input or output frame's UDP payload. */
function appPayload(udpPayload: Uint8Array, isChannelData: boolean): Uint8Array {
  if (!isChannelData) return udpPayload;
  const len = (udpPayload[2]! << 8) | udpPayload[3]!;
  return udpPayload.subarray(4, 4 + len);
}

/** Checks the output's MACs: the mirrored next hop's, from the relay's interface. */
function checkMacs(out: Uint8Array): string | undefined {
  const o = decodeFrame(out)!;
  if (hex(o.srcMac) !== hex(MAC_B)) return `output source MAC ${hex(o.srcMac)} is not the interface's (${hex(MAC_B)})`;
  if (hex(o.dstMac) !== hex(macOf(o.dst.address))) return `output destination MAC ${hex(o.dstMac)} is not the mirrored next hop of ${o.dst.address} (${hex(macOf(o.dst.address))})`;
  return undefined;
}

/** Checks a relayed output against the input and the installed bindings. */
function checkRelayed(input: Uint8Array, out: Uint8Array, bindings: readonly ChannelBinding[]): string | undefined {
  const i = decodeFrame(input);
  const o = decodeFrame(out);
  if (!i) return 'input relayed although it does not decode as plain Ethernet/IP/UDP';
  if (!o) return 'output does not decode';
  if (!o.lengthsOk) return 'output lengths disagree';
  if (!o.ipHeaderOk) return 'output IPv4 header checksum';
  if (o.family === 6 && o.udpChecksumField === 0) return 'IPv6 output without UDP checksum';
  if (i.udpOk !== o.udpOk) return `UDP checksum valid in input ${i.udpOk}, output ${o.udpOk}`;
  if (!i.lengthsOk) return 'input lengths disagree but it was relayed';
  if (canonical(i.dst.address) !== canonical(relayOf(i.dst.address))) return 'input not addressed to the relay';

  const inChan = i.dst.port === LISTEN;
  const inApp = appPayload(i.payload, inChan);
  if (o.src.port === LISTEN) {
    // ChannelData to client b
    const ch = (o.payload[0]! << 8) | o.payload[1]!;
    const b = bindings.find((x) => same(x.client, o.dst) && x.channel === ch);
    if (!b) return `no binding for output client ${o.dst.address}:${o.dst.port} channel ${ch.toString(16)}`;
    if (canonical(o.src.address) !== canonical(relayOf(b.client.address))) return 'output not from the relay address of the client family';
    if (inChan) {
      const inCh = (i.payload[0]! << 8) | i.payload[1]!;
      const a = bindings.find((x) => same(x.client, i.src) && x.channel === inCh);
      if (!a) return 'chan->chan without a binding for the sender';
      if (!same(a.peer, { address: relayOf(a.peer.address), port: b.allocationPort }) || !same(b.peer, { address: relayOf(a.peer.address), port: a.allocationPort }))
        return 'chan->chan between allocations that are not each other\'s peers';
    } else if (!same(i.src, b.peer) || i.dst.port !== b.allocationPort) {
      return 'UDP->chan from a peer/port the binding does not name';
    }
    if (o.payload.length !== 4 + ((o.payload[2]! << 8) | o.payload[3]!)) return 'output ChannelData length or padding wrong';
    if (hex(appPayload(o.payload, true)) !== hex(inApp)) return 'payload changed';
  } else {
    const b = bindings.find((x) => same(x.peer, o.dst) && x.allocationPort === o.src.port);
    if (!b) return `no binding for output peer ${o.dst.address}:${o.dst.port} via ${o.src.port}`;
    if (canonical(o.src.address) !== canonical(relayOf(b.peer.address))) return 'output not from the relay address of the peer family';
    const inCh = (i.payload[0]! << 8) | i.payload[1]!;
    if (!inChan || !same(i.src, b.client) || inCh !== b.channel) return 'chan->UDP input does not match the binding';
    if (hex(o.payload) !== hex(inApp)) return 'payload changed';
  }
  return undefined;
}

test(`fuzz: ${N} mutated frames keep the router's invariants (seed 0x${SEED.toString(16)})`, (t) => {
  if (!requireRoot(t) || !requireCapability(t, existsSync(OBJECT), `needs ${OBJECT} (make -C bpf)`)) return;
  const router = XdpRouter.load({ objectPath: OBJECT, mapCapacity: 1024, log: pino({ level: 'silent' }) });
  try {
    router.writeConfig(BASE_CONFIG);
    for (const b of BINDINGS) router.putChannel(b);
    installNextHops(router);
    const mirrored = JSON.stringify(router.neighbours());
    const r = prng(SEED);
    const verdicts: Record<string, number> = {};
    const failures: string[] = [];
    for (let n = 0; n < N && failures.length < 5; n++) {
      const base = r.chance(0.8) ? seedFrame(r) : randomFrame(r);
      const input = r.chance(0.1) ? base : mutate(r, r.chance(0.2) ? mutate(r, base) : base);
      if (input.length < 14) continue; // the kernel refuses frames shorter than Ethernet
      const res = testRun(router, input);
      verdicts[res.actionName] = (verdicts[res.actionName] ?? 0) + 1;
      let why: string | undefined;
      if (res.actionName === 'XDP_PASS') why = hex(res.data) === hex(input) ? undefined : 'passed frame was modified';
      else if (res.actionName === 'XDP_TX') why = checkRelayed(input, res.data, BINDINGS) ?? checkMacs(res.data);
      else why = `verdict ${res.actionName}`;
      if (why) failures.push(`#${n} ${why}\n  in:  ${hex(input)}\n  out: ${hex(res.data)}`);
    }
    t.diagnostic(`verdicts: ${JSON.stringify(verdicts)}`);
    assert.deepEqual(failures, []);
    assert.equal(JSON.stringify(router.neighbours()), mirrored, 'no input changed the mirrored next hops');
    assert.ok((verdicts.XDP_TX ?? 0) > N / 5, 'a good share of the frames took a relay path');
    assert.ok((verdicts.XDP_PASS ?? 0) > N / 10, 'and a good share were passed');
  } finally {
    router.close();
  }
});
