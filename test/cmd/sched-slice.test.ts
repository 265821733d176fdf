// The sidecar's short scheduler slice (src/cmd/sched-slice.ts): a real
// process asks the kernel for a slice and /proc shows the kernel uses it;
// 0 gives the default back; the setting's bad values stop start-up naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { sliceOf } from '../../src/cmd/sched-slice.ts';

const module = new URL('../../src/cmd/sched-slice.ts', import.meta.url).pathname;

/** Runs setSlice for each value in turn in a fresh Node process, returning each result and the slice /proc then shows. */
function inChild(values: number[]): { result: { ok: boolean; sliceUs?: number; reason?: string }; proc: number | undefined }[] {
  const script = `import { setSlice, sliceOf } from ${JSON.stringify(module)};
    const out = ${JSON.stringify(values)}.map((v) => ({ result: setSlice(v), proc: sliceOf(process.pid) }));
    process.stdout.write(JSON.stringify(out));`;
  return JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' }));
}

const perThreadSlice = sliceOf(process.pid) !== undefined;

test('a thread asking for a 250 µs slice gets it, and 0 gives the default back', () => {
  const before = sliceOf(process.pid);
  const [set, reset] = inChild([250, 0]);
  if (!perThreadSlice) {
    // Before Linux 6.12 there is no per-thread slice: the call is harmless and says so.
    assert.equal(set!.result.ok, false);
    assert.match(set!.result.reason!, /6\.12/);
    return;
  }
  assert.deepEqual(set!.result, { ok: true, sliceUs: 250 });
  assert.equal(set!.proc, 250);
  assert.equal(reset!.result.ok, true);
  assert.equal(reset!.proc, before, "the kernel's default again, as this process has it");
});

test('a slice outside what the kernel accepts is clamped by it, never refused', { skip: perThreadSlice ? false : 'no per-thread slice before Linux 6.12' }, () => {
  const [big] = inChild([1_000_000]);
  assert.deepEqual(big!.result, { ok: true, sliceUs: 100_000 });
});

test('TURNPIKE_SCHED_SLICE_US: default 100, 0 allowed, anything else below 100 or above 100000 stops start-up naming the field', () => {
  assert.equal(loadConfig({ argv: [], env: {} }).config.schedSliceUs, 100);
  assert.equal(loadConfig({ argv: [], env: { TURNPIKE_SCHED_SLICE_US: '0' } }).config.schedSliceUs, 0);
  for (const bad of ['50', '100001', '1.5', 'fast']) {
    assert.throws(
      () => loadConfig({ argv: [], env: { TURNPIKE_SCHED_SLICE_US: bad } }),
      (e: unknown) => e instanceof ConfigError && e.issues.length === 1 && e.issues[0]!.field === 'schedSliceUs' && /TURNPIKE_SCHED_SLICE_US/.test(e.issues[0]!.source),
      bad,
    );
  }
});
