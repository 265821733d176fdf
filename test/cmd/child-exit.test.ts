// The launcher's answer to a child's exit (src/cmd/child-exit.ts): crashes
// restart at once and back off only when repeated; a deliberate stop of the
// sidecar stops the pair; an upgrade stop and a clean relay stop restart at
// once without counting as failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EXIT_UPGRADE, onChildExit, restartDelay, type ExitInput } from '../../src/cmd/child-exit.ts';

const exit = (o: Partial<ExitInput>): ExitInput => ({ child: 'relay', code: null, fatalReason: undefined, ranMs: 60_000, quickFailures: 0, restartLimit: 5, ...o });

test('a crash after a healthy run restarts at once; repeated quick crashes back off, then stop the pair', () => {
  assert.deepEqual(onChildExit(exit({ code: null })), { do: 'restart', delayMs: 0, quickFailures: 0, crashed: true });
  assert.deepEqual(onChildExit(exit({ code: 1, ranMs: 500 })), { do: 'restart', delayMs: 0, quickFailures: 1, crashed: true });
  assert.deepEqual(onChildExit(exit({ code: 1, ranMs: 500, quickFailures: 1 })), { do: 'restart', delayMs: 250, quickFailures: 2, crashed: true });
  assert.equal(onChildExit(exit({ code: 1, ranMs: 500, quickFailures: 3 })).do === 'restart' && restartDelay(4), 1000);
  const gaveUp = onChildExit(exit({ code: 1, ranMs: 500, quickFailures: 5 }));
  assert.equal(gaveUp.do, 'stop-pair');
  assert.equal(gaveUp.do === 'stop-pair' && gaveUp.exitCode, 1);
  assert.equal(restartDelay(100), 30_000);
});

test('a child that cannot start stops the pair with its reason', () => {
  assert.deepEqual(onChildExit(exit({ child: 'sidecar', code: 2 })), { do: 'stop-pair', exitCode: 2, why: 'child refused its configuration' });
  assert.equal(onChildExit(exit({ child: 'sidecar', code: 1, fatalReason: 'eBPF required' })).do, 'stop-pair');
});

test('the sidecar stopping on purpose stops the pair; an upgrade stop and a clean relay stop restart at once, not as failures', () => {
  assert.deepEqual(onChildExit(exit({ child: 'sidecar', code: 0 })).do, 'stop-pair');
  assert.deepEqual(onChildExit(exit({ child: 'sidecar', code: EXIT_UPGRADE, ranMs: 100, quickFailures: 4 })), { do: 'restart', delayMs: 0, quickFailures: 0, crashed: false });
  assert.deepEqual(onChildExit(exit({ child: 'relay', code: 0, ranMs: 100, quickFailures: 4 })), { do: 'restart', delayMs: 0, quickFailures: 0, crashed: false });
});
