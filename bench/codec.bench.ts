// Micro-benchmark of the STUN/TURN codec: ns per operation with a plain
// hrtime loop (median of rounds, after warm-up). Two groups, one table:
//   - the hot calls on normal messages (ChannelData, Send, Allocate, ChannelBind);
//   - the worst datagrams we can build (test/relay/stun/hostile.ts: 64 KiB
//     bodies of tiny or repeated attributes), whose cost per byte must stay
//     near a normal message's: the relay decodes before any rate limit.
// Each row shows ns per message, ns per byte, and its ns/byte against the
// Allocate request's (what a flood of ordinary requests already costs).
// Run: node --import tsx bench/codec.bench.ts [iterations] [--only SUBSTRING]
import { parseArgs } from 'node:util';
import {
  ATTR, METHOD, decodeChannelData, decodeMessage, encodeChannelData, encodeMessage, errorResponse, verifyIntegrity,
} from '../src/relay/stun/index.ts';
import { HOSTILE, attr, hostile, key, message, txid } from '../test/relay/stun/hostile.ts';
import { medianNsPerOp } from './lib/micro.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { only: { type: 'string' } } });
const ITER = Number(positionals[0] ?? 200_000);
const ROUNDS = 5;
/** A round of a slow case is cut to about this long (before the fix some took 250 ms a call). */
const ROUND_BUDGET_NS = 100e6;

const payload = new Uint8Array(1000).fill(0x5a);
const auth = { username: '1700000000:alice', realm: 'turnpike', nonce: 'lp0b4x4g.Jx3jQe0v5y0wq9QXK2vXhA' };
const peer = { family: 4 as const, address: '198.51.100.7', port: 40000 };

const channelData = encodeChannelData(0x4001, payload);
const sendIndication = encodeMessage({ method: METHOD.SEND, cls: 'indication', transactionId: txid, attributes: { xorPeerAddress: [peer], data: payload } });
const allocate = encodeMessage({
  method: METHOD.ALLOCATE, cls: 'request', transactionId: txid,
  attributes: { requestedTransport: 17, lifetime: 600, software: 'bench', ...auth },
}, { key, fingerprint: true });
const channelBind = encodeMessage({
  method: METHOD.CHANNEL_BIND, cls: 'request', transactionId: txid,
  attributes: { channelNumber: 0x4001, xorPeerAddress: [peer], ...auth },
}, { key, fingerprint: true });
/** One bad USERNAME: a small datagram whose cost is the per-value fault handling. */
const badUsername = message(encodeMessage({ method: METHOD.ALLOCATE, cls: 'request', transactionId: txid, attributes: { lifetime: 600 } }), [attr(ATTR.USERNAME, [0x61, 0xff])]);

let sink = 0;
const decodeOnly = (buf: Uint8Array) => () => {
  const r = decodeMessage(buf);
  sink += r.kind === 'message' ? 1 : r.kind === 'reply-error' ? r.code : r.reason.length;
};
/** What the server does with a 420: decode, then encode the error response it sends back. */
const decodeAndAnswer = (buf: Uint8Array) => () => {
  const r = decodeMessage(buf);
  if (r.kind !== 'reply-error') return;
  const attrs = r.unknownAttributes ? { unknownAttributes: r.unknownAttributes } : {};
  sink += encodeMessage(errorResponse(r, r.code, attrs, r.reason), { fingerprint: true }).length;
};
const decodeAndVerify = (buf: Uint8Array) => () => {
  const r = decodeMessage(buf);
  if (r.kind === 'message' && verifyIntegrity(r.message, key).result === 'ok') sink++;
};

const distinctUnknown = hostile('distinct unknown comp.-required, 0-length');
const afterIntegrity = hostile('MESSAGE-INTEGRITY, then 0-length attributes');

type Case = [name: string, bytes: number, fn: () => void];
const cases: Case[] = [
  ['decode ChannelData (1000 B)', channelData.length, () => { const r = decodeChannelData(channelData); if (r.kind === 'channel-data') sink += r.data.length; }],
  ['decode Send indication (1000 B)', sendIndication.length, () => { const r = decodeMessage(sendIndication); if (r.kind === 'message') sink += r.message.attributes.data!.length; }],
  ['decode Allocate (auth, no verify)', allocate.length, () => { const r = decodeMessage(allocate); if (r.kind === 'message') sink += r.message.attributes.lifetime!; }],
  ['decode + verify Allocate (HMAC-SHA1)', allocate.length, decodeAndVerify(allocate)],
  ['decode ChannelBind (auth, no verify)', channelBind.length, decodeOnly(channelBind)],
  ['encode ChannelData (1000 B)', channelData.length, () => { sink += encodeChannelData(0x4001, payload).length; }],
  ['encode Data indication (1000 B)', sendIndication.length, () => {
    sink += encodeMessage({ method: METHOD.DATA, cls: 'indication', transactionId: txid, attributes: { xorPeerAddress: [peer], data: payload } }).length;
  }],
  ['decode Allocate with one invalid-UTF-8 USERNAME (400)', badUsername.length, decodeOnly(badUsername)],
  ...HOSTILE.map((h): Case => [`decode 64K: ${h.name}`, h.bytes.length, decodeOnly(h.bytes)]),
  [`decode + answer 420, 64K: ${distinctUnknown.name}`, distinctUnknown.bytes.length, decodeAndAnswer(distinctUnknown.bytes)],
  [`decode + verify, 64K: ${afterIntegrity.name}`, afterIntegrity.bytes.length, decodeAndVerify(afterIntegrity.bytes)],
];

/** Iterations for a round of about ROUND_BUDGET_NS, at most ITER: calls for 50 ms (warming the JIT) set the scale. */
function iterationsFor(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  let calls = 0, elapsed = 0;
  do { fn(); calls++; elapsed = Number(process.hrtime.bigint() - t0); } while (elapsed < 50e6 || calls < 3);
  return Math.max(3, Math.min(ITER, Math.round(ROUND_BUDGET_NS / (elapsed / calls))));
}

const selected = cases.filter(([name]) => values.only === undefined || name.includes(values.only));
const results = selected.map(([name, bytes, fn]) => {
  const iter = iterationsFor(fn);
  return { name, bytes, iter, ns: medianNsPerOp(fn, { iter, rounds: ROUNDS, warmup: Math.min(iter, 20_000) }) };
});
const yardstick = results.find((r) => r.name.startsWith('decode Allocate'));
const perByteBase = yardstick ? yardstick.ns / yardstick.bytes : undefined;

const w = Math.max(...results.map((r) => r.name.length));
console.log(`codec micro-benchmark: node ${process.version}, up to ${ITER} iterations x ${ROUNDS} rounds (median)`);
console.log(`${'case'.padEnd(w)} | ${'bytes'.padStart(6)} | ${'iter'.padStart(6)} | ${'ns/msg'.padStart(11)} | ${'ns/byte'.padStart(8)} | ${'ns/B x Allocate'.padStart(15)}`);
console.log(`${'-'.repeat(w)}-|-${'-'.repeat(6)}-|-${'-'.repeat(6)}-|-${'-'.repeat(11)}-|-${'-'.repeat(8)}-|-${'-'.repeat(15)}`);
for (const r of results) {
  const perByte = r.ns / r.bytes;
  const ratio = perByteBase === undefined ? '' : (perByte / perByteBase).toFixed(1);
  console.log(`${r.name.padEnd(w)} | ${String(r.bytes).padStart(6)} | ${String(r.iter).padStart(6)} | ${r.ns.toFixed(1).padStart(11)} | ${perByte.toFixed(2).padStart(8)} | ${ratio.padStart(15)}`);
}
if (sink === -1) console.log(sink); // keep the work observable
