// An uncaught exception in the sidecar reaches Sentry before the process exits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startFakeSentry } from '../helpers/fake-sentry.ts';

test('uncaught exception: captured, flushed, then the process exits non-zero', async () => {
  const sentry = await startFakeSentry();
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/uncaught.ts', import.meta.url)), sentry.dsn], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    assert.notEqual(code, 0, stderr);
    const e = await sentry.waitForEvent((x) => x.exception?.values?.[0]?.value === 'uncaught in the sidecar');
    assert.equal(e.exception.values[0].mechanism.handled, false);
    assert.equal(e.release, 'turnpike@0.1.0');
  } finally {
    await sentry.close();
  }
});
