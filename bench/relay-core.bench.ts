// Micro-benchmark of the userspace relay's per-packet work, without sockets:
//   - TurnServer.handleDatagram + pollOutput for ChannelData client->peer and
//     plain UDP peer->client, with 1, 100 and 10,000 allocations installed
//     (one channel each; the packet's flow is picked round-robin over all of
//     them, so map lookups see the whole table, not one hot entry);
//   - the link's packet frames: encode PACKET_IN/PACKET_OUT into a chunk
//     buffer, decode them back.
// Prints ns/op per case (median of rounds, after warm-up) with a ratio column.
// Run: node --import tsx bench/relay-core.bench.ts [iterations] [--only SUBSTRING]
import { parseArgs } from 'node:util';
import { encodeChannelData } from '../src/relay/stun/index.ts';
import { decodeFrame, encodeFrameInto, frameSize, type Frame } from '../src/link/protocol.ts';
import type { LocalEndpoint, TransportAddress } from '../src/relay/server/types.ts';
import { createPeerPolicy } from '../src/relay/policy/index.ts';
import { Harness, addr } from '../test/relay/server/harness.ts';
import { medianNsPerOp } from './lib/micro.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { only: { type: 'string' }, size: { type: 'string', default: '100' } } });
const ITER = Number(positionals[0] ?? 200_000);
const ROUNDS = 5;
const SIZE = Number(values.size);
const payload = new Uint8Array(SIZE).fill(0x5a);

interface Flow {
  client: TransportAddress;
  local: LocalEndpoint;
  channelData: Uint8Array;
  peer: TransportAddress;
  relayPort: LocalEndpoint;
}

/** A server with `n` allocations, each with one channel to its own peer port. */
function setup(n: number): { h: Harness; flows: Flow[] } {
  const h = new Harness({
    portRange: { min: 10000, max: 65000 },
    peerPolicy: createPeerPolicy({ allowed: ['203.0.113.0/24'] }),
    maxChannel: 0x7fff,
  });
  const flows: Flow[] = [];
  for (let i = 0; i < n; i++) {
    const client = addr(`198.51.${100 + (i >> 8)}.${i & 0xff}`, 40000 + (i % 20000));
    const c = h.client(client);
    const { ports } = c.allocate();
    const peer = addr('203.0.113.5', 6000 + (i % 50000));
    const channel = 0x4000 + (i % 0x1000);
    const outs = c.channelBind(channel, peer);
    if (outs.length !== 2) throw new Error(`channel bind ${i}: ${outs.length} outputs`);
    flows.push({ client, local: c.local, channelData: encodeChannelData(channel, payload), peer, relayPort: { family: 4, port: ports.v4! } });
  }
  return { h, flows };
}

let sink = 0;

function drain(h: Harness): void {
  for (let o = h.server.pollOutput(); o !== undefined; o = h.server.pollOutput()) {
    if (o.kind === 'send') sink += o.data.length;
  }
}

const cases: Array<[string, () => () => void]> = [];
for (const n of [1, 100, 10_000]) {
  cases.push([`handleDatagram ChannelData client->peer, ${n} alloc`, () => {
    const { h, flows } = setup(n);
    let i = 0;
    return () => {
      const f = flows[i]!;
      if (++i === flows.length) i = 0;
      h.server.handleDatagram(f.channelData, f.local, f.client, h.now);
      drain(h);
    };
  }]);
  cases.push([`handleDatagram UDP peer->client, ${n} alloc`, () => {
    const { h, flows } = setup(n);
    let i = 0;
    return () => {
      const f = flows[i]!;
      if (++i === flows.length) i = 0;
      h.server.handleDatagram(payload, f.relayPort, f.peer, h.now);
      drain(h);
    };
  }]);
}

const remote: TransportAddress = { family: 4, address: '198.51.100.77', port: 40000 };
const remote6: TransportAddress = { family: 6, address: '2001:db8:1::77', port: 40000 };
const chunk = Buffer.allocUnsafe(64 << 10);
const frameIn: Frame = { kind: 'packet-in', local: { family: 4, port: 3478 }, remote, data: encodeChannelData(0x4001, payload) };
const frameOut: Frame = { kind: 'packet-out', from: { family: 4, port: 50000 }, to: remote6, data: payload };
let chunkOff = 0;
const encodeCase = (f: Frame) => () => () => {
  const size = frameSize(f);
  if (chunkOff + size > chunk.length) chunkOff = 0;
  chunkOff = encodeFrameInto(f, chunk, chunkOff, size);
};
cases.push(['link encode PACKET_IN (v4)', encodeCase(frameIn)]);
cases.push(['link encode PACKET_OUT (v6)', encodeCase(frameOut)]);
const decodeCase = (f: Frame) => () => {
  const buf = Buffer.allocUnsafe(frameSize(f));
  encodeFrameInto(f, buf, 0);
  return () => {
    const r = decodeFrame(buf, 4, buf.length);
    if (r.ok) sink++;
  };
};
cases.push(['link decode PACKET_IN (v4)', decodeCase(frameIn)]);
cases.push(['link decode PACKET_OUT (v6)', decodeCase(frameOut)]);

const measure = (fn: () => void): number => medianNsPerOp(fn, { iter: ITER, rounds: ROUNDS, warmup: 50_000 });

const selected = cases.filter(([name]) => values.only === undefined || name.includes(values.only));
const results: Array<[string, number]> = [];
for (const [name, make] of selected) {
  const fn = make();
  results.push([name, measure(fn)]);
  process.stderr.write('.');
}
process.stderr.write('\n');
const base = results[0]![1];
const w = Math.max(...results.map(([n]) => n.length));
console.log(`relay-core micro-benchmark: node ${process.version}, payload ${SIZE} B, ${ITER} iterations x ${ROUNDS} rounds (median)`);
console.log(`${'case'.padEnd(w)} | ${'ns/op'.padStart(9)} | ${'Mops/s'.padStart(7)} | ${'x first'.padStart(7)}`);
console.log(`${'-'.repeat(w)}-|-${'-'.repeat(9)}-|-${'-'.repeat(7)}-|-${'-'.repeat(7)}`);
for (const [name, ns] of results) {
  console.log(`${name.padEnd(w)} | ${ns.toFixed(1).padStart(9)} | ${(1000 / ns).toFixed(2).padStart(7)} | ${(ns / base).toFixed(2).padStart(7)}`);
}
if (sink === -1) console.log(sink); // keep the work observable
