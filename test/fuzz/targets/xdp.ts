// Target "xdp": bpf/turn_router.o through BPF_PROG_TEST_RUN, with the
// bindings of test/bpf/golden-scene.ts installed through src/sidecar/bpf and
// every endpoint's next hop mirrored (installNextHops). Inputs: valid ChannelData and UDP frames of
// every family combination (the corpus, and fresh ones), frames between
// random endpoints, IPv6 frames from IPv4-mapped sources; mutated in their
// headers (ports, channel, lengths, checksums, flags, addresses) or bytes,
// checksums then recomputed or not.
// Invariants: the verdict is XDP_PASS with the frame untouched, XDP_TX, or
// XDP_DROP only for an IPv6 frame from ::ffff:0:0/96 (drop_v4_mapped). Every
// XDP_TX output is well formed: Ethernet/IP/UDP, lengths consistent, the
// IPv4 header checksum valid, the UDP checksum valid (IPv4 may carry none)
// when the input's was, and never made valid when it was not. And it is the
// relaying of an installed binding: ChannelData to a binding's client on its
// channel from the listen port, or UDP to a binding's peer from its
// allocation port, from the relay address of that family, coming from that
// binding's other side, carrying the input's payload unchanged.
import { existsSync } from 'node:fs';
import pino from 'pino';
import { XdpRouter, type ChannelBinding } from '../../../src/sidecar/bpf/router.ts';
import { testRun } from '../../helpers/bpf-test-run.ts';
import { isRoot } from '../../helpers/env.ts';
import { canonical, channelData, decodeFrame, fixChecksums, payloadOf, type DecodedFrame, type Endpoint } from '../../bpf/frames.ts';
import { BASE_CONFIG, BINDINGS, LISTEN, OBJECT, RELAY4, RELAY6, alloc, inFrame, installNextHops, relayOf, toListen } from '../../bpf/golden-scene.ts';
import { readHexCorpus } from '../engine/corpus.ts';
import { mutateBytes } from '../engine/mutate.ts';
import type { Rng } from '../engine/rng.ts';
import { Tally, hex, type Findings, type FuzzTarget, type TargetRun } from '../engine/target.ts';

const ETH = 14;
const sameEndpoint = (a: Endpoint, b: Endpoint) => canonical(a.address) === canonical(b.address) && a.port === b.port;
const v6 = (e: Endpoint) => e.address.includes(':');
/** An IPv4 address in IPv6 form (::ffff:a.b.c.d), as a dual-stack socket would show it. */
const mapped = (e: Endpoint): Endpoint => ({ address: `::ffff:${e.address}`, port: e.port });

const ADDRESSES = [...new Set([...BINDINGS.flatMap((b) => [b.client.address, b.peer.address]), RELAY4, RELAY6, '203.0.113.2', '2001:db8::2'])];
const PORTS = [...new Set([LISTEN, ...BINDINGS.flatMap((b) => [b.client.port, b.peer.port, b.allocationPort]), 0, 53, 65535])];
const CHANNELS = [...new Set([...BINDINGS.map((b) => b.channel), 0x3fff, 0x4000, 0x4fff, 0x5000, 0x7fff, 0x8000])];

/** A valid frame on one of the installed paths: ChannelData from a client, or UDP from a peer. */
function validFrame(rng: Rng): Uint8Array {
  const b = rng.pick(BINDINGS);
  const data = payloadOf(rng.int(rng.chance(0.1) ? 1400 : 200), rng.int(1000));
  if (rng.chance(0.5)) {
    const zero = !v6(b.client) && rng.chance(0.2);
    return inFrame(b.client, toListen(b.client), channelData(b.channel, data, rng.int(4), rng.int(256)), zero ? { udpChecksum: 'zero' } : {});
  }
  const zero = !v6(b.peer) && rng.chance(0.2);
  return inFrame(b.peer, alloc(b.peer, b.allocationPort), data, zero ? { udpChecksum: 'zero' } : {});
}

/** A frame between endpoints of the pools, either family, ChannelData or not. */
function poolFrame(rng: Rng): Uint8Array {
  const six = rng.chance(0.5);
  const addrs = ADDRESSES.filter((a) => a.includes(':') === six);
  const dst = { address: rng.chance(0.7) ? (six ? RELAY6 : RELAY4) : rng.pick(addrs), port: rng.pick(PORTS) };
  const data = payloadOf(rng.int(100), rng.int(1000));
  return inFrame({ address: rng.pick(addrs), port: rng.pick(PORTS) }, dst, rng.chance(0.7) ? channelData(rng.pick(CHANNELS), data, rng.int(4)) : data);
}

/** An IPv6 frame whose source is an IPv4 binding's endpoint in mapped form: must never meet IPv4 state. */
function mappedFrame(rng: Rng): Uint8Array {
  const v4 = BINDINGS.filter((b) => !v6(b.client) || !v6(b.peer));
  const b = rng.pick(v4);
  const data = payloadOf(rng.int(64), 7);
  if (!v6(b.client) && rng.chance(0.5)) return inFrame(mapped(b.client), toListen({ address: RELAY6, port: 0 }), channelData(b.channel, data));
  if (!v6(b.peer)) return inFrame(mapped(b.peer), { address: RELAY6, port: b.allocationPort }, data);
  return inFrame(mapped(b.client), toListen({ address: RELAY6, port: 0 }), channelData(b.channel, data));
}

/** Header-aware damage: the fields the program reads. */
function mutateFrame(rng: Rng, input: Uint8Array): Uint8Array {
  let f: Uint8Array = new Uint8Array(input);
  const l4 = f[12] === 0x86 ? ETH + 40 : ETH + 20;
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const u16 = (at: number, value: number) => { if (at + 2 <= f.length) v.setUint16(at, value & 0xffff); };
  const near = (at: number) => (at + 2 <= f.length ? v.getUint16(at) + rng.range(-4, 4) : 0);
  switch (rng.int(10)) {
    case 0: u16(l4 + rng.pick([0, 2]), rng.chance(0.7) ? rng.pick(PORTS) : rng.int(0x10000)); break;
    case 1: u16(l4 + 8, rng.chance(0.7) ? rng.pick(CHANNELS) : rng.int(0x10000)); break;
    case 2: u16(l4 + 10, near(l4 + 10)); break; // ChannelData length
    case 3: { const at = rng.pick([l4 === ETH + 20 ? ETH + 2 : ETH + 4, l4 + 4]); u16(at, near(at)); break; } // IP / UDP length
    case 4: u16(l4 + 6, rng.chance(0.5) ? 0 : rng.int(0x10000)); break; // UDP checksum
    case 5: if (l4 === ETH + 20) u16(ETH + 6, rng.pick([0, 0x2000, 0x0001, 0x4000, 0x3fff])); else if (f.length > ETH + 6) f[ETH + 6] = rng.pick([0, 44, 6, 58, 17]); break; // fragments, next header
    case 6: if (f.length > ETH) f[ETH] = rng.pick([0x45, 0x46, 0x4f, 0x44, 0x60, 0x65, 0x00]); break; // version / IHL
    case 7: u16(12, rng.pick([0x0800, 0x86dd, 0x8100, 0x0806, 0x88a8])); break; // EtherType
    case 8: f = f.subarray(0, rng.int(f.length + 1)); break;
    default: f = mutateBytes(rng, f, { maxLength: f.length + 64 }, 3); break;
  }
  if (rng.chance(0.7)) fixChecksums(f);
  return f;
}

/** An IPv6 frame from an address in ::ffff:0:0/96. */
function fromMappedSource(f: Uint8Array): boolean {
  if (f.length < ETH + 40 || f[12] !== 0x86 || f[13] !== 0xdd) return false;
  for (let i = ETH + 8; i < ETH + 18; i++) if (f[i] !== 0) return false;
  return f[ETH + 18] === 0xff && f[ETH + 19] === 0xff;
}

const payloadOfChannelData = (p: Uint8Array) => p.subarray(4, 4 + ((p[2]! << 8) | p[3]!));
const channelOf = (p: Uint8Array) => (p.length >= 2 ? (p[0]! << 8) | p[1]! : -1);

/** Whether `o` is the relaying of `i` by an installed binding; the reason when it is not. */
function notRelayed(i: DecodedFrame, o: DecodedFrame, bindings: readonly ChannelBinding[]): string | undefined {
  const fromListen = i.dst.port === LISTEN;
  const inApp = fromListen ? payloadOfChannelData(i.payload) : i.payload;
  if (canonical(i.dst.address) !== canonical(relayOf(i.dst.address))) return 'relayed a frame not addressed to the relay';
  // The binding whose client/channel or peer/port the input came in on.
  const entry = fromListen
    ? bindings.find((b) => sameEndpoint(b.client, i.src) && b.channel === channelOf(i.payload))
    : bindings.find((b) => sameEndpoint(b.peer, i.src) && b.allocationPort === i.dst.port);
  if (!entry) return `no installed binding for the input (${i.src.address}:${i.src.port} -> ${i.dst.port}, channel ${channelOf(i.payload)})`;
  let out: { to: Endpoint; from: Endpoint; app: Uint8Array };
  if (o.src.port === LISTEN) {
    // To a client as ChannelData: from the peer side of the entry, or from a relay-to-relay binding whose peer is the entry's allocation.
    const exit = fromListen
      ? bindings.find((b) => sameEndpoint(entry.peer, { address: relayOf(b.peer.address), port: b.allocationPort }) && sameEndpoint(b.peer, { address: relayOf(entry.peer.address), port: entry.allocationPort }))
      : entry;
    if (!exit) return 'ChannelData out for a ChannelData in without a binding for its relayed peer';
    if (channelOf(o.payload) !== exit.channel) return `ChannelData out on channel ${channelOf(o.payload)}, binding has ${exit.channel}`;
    if (o.payload.length !== 4 + ((o.payload[2]! << 8) | o.payload[3]!)) return 'ChannelData out with a length field that disagrees';
    out = { to: exit.client, from: { address: relayOf(exit.client.address), port: LISTEN }, app: payloadOfChannelData(o.payload) };
  } else {
    if (!fromListen) return 'UDP in, UDP out';
    out = { to: entry.peer, from: { address: relayOf(entry.peer.address), port: entry.allocationPort }, app: o.payload };
  }
  if (!sameEndpoint(o.dst, out.to)) return `sent to ${o.dst.address}:${o.dst.port}, the binding says ${out.to.address}:${out.to.port}`;
  if (!sameEndpoint(o.src, out.from)) return `sent from ${o.src.address}:${o.src.port}, the binding says ${out.from.address}:${out.from.port}`;
  if (hex(out.app) !== hex(inApp)) return 'payload changed';
  return undefined;
}

/** Why an XDP_TX output is not a well-formed relaying of the input, or undefined. */
export function txProblem(input: Uint8Array, output: Uint8Array, bindings: readonly ChannelBinding[]): string | undefined {
  const o = decodeFrame(output);
  if (!o) return 'output does not decode as Ethernet/IP/UDP';
  if (!o.lengthsOk) return 'output IP/UDP lengths disagree with each other or the frame';
  if (!o.ipHeaderOk) return 'output IPv4 header checksum wrong';
  const i = decodeFrame(input);
  if (!i) return 'relayed a frame that does not decode as plain Ethernet/IP/UDP';
  if (!i.lengthsOk) return 'relayed a frame whose lengths disagree';
  if (o.family === 6 && o.udpChecksumField === 0) return 'IPv6 output without a UDP checksum';
  if (i.udpOk && !o.udpOk) return 'input UDP checksum valid, output not';
  if (!i.udpOk && o.udpOk) return 'input UDP checksum wrong, output made valid';
  return notRelayed(i, o, bindings);
}

export const xdpTarget: FuzzTarget = {
  name: 'xdp',
  unavailable() {
    if (!isRoot() || process.platform !== 'linux') return 'needs root on Linux (BPF_PROG_TEST_RUN)';
    if (!existsSync(OBJECT)) return `needs ${OBJECT} (make -C bpf)`;
    return undefined;
  },
  open(corpusDir): TargetRun {
    const corpus = readHexCorpus(corpusDir);
    const router = XdpRouter.load({ objectPath: OBJECT, mapCapacity: 1024, log: pino({ level: 'silent' }) });
    const verdicts = new Tally();
    try {
      router.writeConfig(BASE_CONFIG);
      for (const b of BINDINGS) router.putChannel(b);
      installNextHops(router);
    } catch (err) {
      router.close();
      throw err;
    }
    return {
      one(rng: Rng, findings: Findings): number {
        const base = rng.weighted<() => Uint8Array>([
          [4, () => rng.pick(corpus)],
          [4, () => validFrame(rng)],
          [1, () => poolFrame(rng)],
          [1, () => mappedFrame(rng)],
        ])();
        let input = rng.chance(0.15) ? base : mutateFrame(rng, base);
        if (rng.chance(0.2)) input = mutateFrame(rng, input);
        if (input.length < ETH) input = base; // the kernel refuses frames shorter than Ethernet
        const show = () => hex(input);
        let res: ReturnType<typeof testRun>;
        try {
          res = testRun(router, input);
        } catch (err) {
          findings.exception(err, show);
          return 1;
        }
        verdicts.add(res.actionName);
        let why: string | undefined;
        if (res.actionName === 'XDP_PASS') why = hex(res.data) === hex(input) ? undefined : 'XDP_PASS with the frame changed';
        else if (res.actionName === 'XDP_TX') why = txProblem(input, res.data, BINDINGS);
        else if (res.actionName === 'XDP_DROP') why = fromMappedSource(input) ? undefined : 'XDP_DROP of a frame not from an IPv4-mapped source';
        else why = `verdict ${res.actionName}`;
        if (why) findings.violation(why, () => `${show()}\n  output: ${hex(res.data)}`);
        return 1;
      },
      summary: () => [`verdicts: ${verdicts}`, `bindings installed: ${router.bindingCount()}`],
      close() {
        router.close();
      },
    };
  },
};
