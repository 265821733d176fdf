// The launcher's side of a child's lifeline (src/cmd/lifeline.ts): it learns
// when the child is up (then a warm standby may load) and why one cannot start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { readLifeline } from '../../src/cmd/lifeline.ts';

test('ready is reported once, in whatever chunks it comes; a fatal reason is found on any line', async () => {
  const pipe = new PassThrough();
  let ready = 0;
  const reason = readLifeline(pipe, () => ready++);
  pipe.write('{"rea');
  pipe.write('dy":true}\n');
  pipe.write('{"ready":true}\n');
  pipe.write(JSON.stringify({ fatal: 'eBPF required but not loadable' }) + '\n');
  await new Promise((r) => setImmediate(r));
  assert.equal(ready, 1);
  assert.equal(reason(), 'eBPF required but not loadable');
});

test('no fatal line: no reason; what a child writes is bounded', async () => {
  const pipe = new PassThrough();
  const reason = readLifeline(pipe);
  pipe.write('x'.repeat(100_000) + '\n');
  await new Promise((r) => setImmediate(r));
  assert.equal(reason(), undefined);
});
