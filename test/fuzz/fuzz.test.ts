// The fuzz targets of `npm run fuzz` at a small count, on a fixed seed (set
// FUZZ_SEED / FUZZ_INPUTS to vary): each must finish with no exception and no
// invariant violation. The XDP target needs root and bpf/turn_router.o: it
// skips with the reason otherwise, and fails under CI=true (test/helpers/env.ts).
// Also checks that the committed seeds are still valid inputs, so the
// mutations start from something the parsers accept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { decodeChannelData, decodeMessage } from '../../src/relay/stun/index.ts';
import { FrameReader } from '../../src/link/index.ts';
import { requireCapability } from '../helpers/env.ts';
import { CORPUS_ROOT, readHexCorpus, readJsonCorpus } from './engine/corpus.ts';
import { describeFindings, runTarget } from './engine/runner.ts';
import { TARGETS } from './targets/index.ts';
import type { Script } from './targets/server.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);
const INPUTS = Number(process.env.FUZZ_INPUTS ?? 5000);

for (const target of TARGETS) {
  test(`fuzz ${target.name}: ${INPUTS} inputs, no exception escapes, every invariant holds (seed ${SEED})`, (t) => {
    const why = target.unavailable?.();
    if (!requireCapability(t, why === undefined, why ?? '')) return;
    const r = runTarget(target, { inputs: INPUTS, seed: SEED });
    t.diagnostic(`${r.inputs} inputs in ${r.seconds.toFixed(2)} s; ${r.summary.join('; ')}`);
    assert.ok(r.inputs >= INPUTS);
    assert.equal(r.exceptions + r.violations, 0, describeFindings(r, SEED));
  });
}

test('the committed STUN seeds decode (as messages, or ChannelData)', () => {
  const seeds = readHexCorpus(join(CORPUS_ROOT, 'stun'));
  assert.ok(seeds.length >= 10);
  for (const s of seeds) assert.ok(decodeMessage(s).kind === 'message' || decodeChannelData(s).kind === 'channel-data', Buffer.from(s).toString('hex'));
  assert.deepEqual(readHexCorpus(join(CORPUS_ROOT, 'server', 'datagrams')), seeds, 'the server\'s datagram seeds are the STUN seeds');
});

test('the committed link seeds are whole, valid frame streams', () => {
  for (const s of readHexCorpus(join(CORPUS_ROOT, 'link'))) {
    let frames = 0;
    const errors: string[] = [];
    const reader = new FrameReader({ onFrame: () => frames++, onError: (e) => errors.push(e) });
    reader.push(Buffer.from(s));
    assert.deepEqual(errors, []);
    assert.ok(frames >= 1 && reader.buffered === 0);
  }
});

test('the committed server scripts use only known steps', () => {
  const ops = new Set(['allocate', 'refresh', 'permission', 'bind', 'binding', 'channel-data', 'send', 'peer-data', 'time', 'ports', 'port-lost', 'retransmit', 'junk']);
  const scripts = readJsonCorpus<Script>(join(CORPUS_ROOT, 'server'));
  assert.ok(scripts.length >= 5);
  for (const s of scripts) for (const step of s.steps) assert.ok(ops.has(step.op), JSON.stringify(step));
});
