// Micro-benchmark of the STUN/TURN codec's hot calls: ns per operation with a
// plain hrtime loop (median of rounds, after warm-up), printed as a table with
// each row's cost relative to ChannelData decode.
// Run: node --import tsx bench/codec.bench.ts [iterations]
import {
  METHOD, decodeChannelData, decodeMessage, encodeChannelData, encodeMessage, longTermKey, verifyIntegrity,
} from '../src/relay/stun/index.ts';
import { medianNsPerOp } from './lib/micro.ts';

const ITER = Number(process.argv[2] ?? 200_000);
const ROUNDS = 5;

const txid = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
const payload = new Uint8Array(1000).fill(0x5a);
const key = longTermKey('1700000000:alice', 'turnpike', 'Oko4dt8u/EbTRjRUJWQDFm/zTCc=');

const channelData = encodeChannelData(0x4001, payload);
const sendIndication = encodeMessage({
  method: METHOD.SEND, cls: 'indication', transactionId: txid,
  attributes: { xorPeerAddress: [{ family: 4, address: '198.51.100.7', port: 40000 }], data: payload },
});
const allocate = encodeMessage({
  method: METHOD.ALLOCATE, cls: 'request', transactionId: txid,
  attributes: { requestedTransport: 17, lifetime: 600, username: '1700000000:alice', realm: 'turnpike', nonce: 'lp0b4x4g.Jx3jQe0v5y0wq9QXK2vXhA', software: 'bench' },
}, { key, fingerprint: true });

let sink = 0;
const cases: Array<[string, () => void]> = [
  ['decode ChannelData (1000 B)', () => { const r = decodeChannelData(channelData); if (r.kind === 'channel-data') sink += r.data.length; }],
  ['decode Send indication (1000 B)', () => { const r = decodeMessage(sendIndication); if (r.kind === 'message') sink += r.message.attributes.data!.length; }],
  ['decode Allocate (auth, no verify)', () => { const r = decodeMessage(allocate); if (r.kind === 'message') sink += r.message.attributes.lifetime!; }],
  ['decode + verify Allocate (HMAC-SHA1)', () => { const r = decodeMessage(allocate); if (r.kind === 'message' && verifyIntegrity(r.message, key).result === 'ok') sink++; }],
  ['encode ChannelData (1000 B)', () => { sink += encodeChannelData(0x4001, payload).length; }],
  ['encode Data indication (1000 B)', () => {
    sink += encodeMessage({ method: METHOD.DATA, cls: 'indication', transactionId: txid, attributes: { xorPeerAddress: [{ family: 4, address: '198.51.100.7', port: 40000 }], data: payload } }).length;
  }],
];

const measure = (fn: () => void): number => medianNsPerOp(fn, { iter: ITER, rounds: ROUNDS, warmup: 20_000 });

const results = cases.map(([name, fn]) => [name, measure(fn)] as const);
const base = results[0]![1];
const w = Math.max(...results.map(([n]) => n.length));
console.log(`codec micro-benchmark: node ${process.version}, ${ITER} iterations x ${ROUNDS} rounds (median)`);
console.log(`${'case'.padEnd(w)} | ${'ns/op'.padStart(9)} | ${'Mops/s'.padStart(7)} | ${'x ChannelData'.padStart(13)}`);
console.log(`${'-'.repeat(w)}-|-${'-'.repeat(9)}-|-${'-'.repeat(7)}-|-${'-'.repeat(13)}`);
for (const [name, ns] of results) {
  console.log(`${name.padEnd(w)} | ${ns.toFixed(1).padStart(9)} | ${(1000 / ns).toFixed(2).padStart(7)} | ${(ns / base).toFixed(1).padStart(13)}`);
}
if (sink === -1) console.log(sink); // keep the work observable
