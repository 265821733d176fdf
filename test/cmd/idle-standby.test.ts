// Warm standbys wait under SCHED_IDLE and are put back to SCHED_OTHER when
// they take over (src/cmd/idle-standby.ts): a real Node process started the
// way the launcher starts a standby has every thread idle, and after wakeUp
// none is. Needs root (leaving SCHED_IDLE takes CAP_SYS_NICE) and chrt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { SCHED_IDLE, SCHED_OTHER, idleCommand, policyOf, wakeUp } from '../../src/cmd/idle-standby.ts';

const chrt = (() => {
  try {
    return execFileSync('sh', ['-c', 'command -v chrt'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
})();
const skip = process.getuid?.() !== 0 ? 'needs root' : chrt ? false : 'needs chrt (util-linux)';

const policies = (pid: number) => readdirSync(`/proc/${pid}/task`).map((tid) => policyOf(pid, Number(tid))).filter((p) => p >= 0);

test('a standby started idle has every thread under SCHED_IDLE; wakeUp puts them all back', { skip }, async () => {
  // Node's own threads (V8 platform workers, libuv pool) and one the child makes after it started.
  const { command, args } = idleCommand(chrt!, process.execPath, ['-e', "require('node:fs').readFile(__filename, () => {}); process.stdout.write('up\\n'); setTimeout(() => {}, 30000)"]);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await once(child.stdout!, 'data');
    const before = policies(child.pid!);
    assert.ok(before.length >= 4, `a Node process has several threads (${before.length})`);
    assert.deepEqual([...new Set(before)], [SCHED_IDLE], 'every thread is idle');

    const woke = wakeUp(child.pid!);
    assert.equal(woke.error, undefined);
    assert.equal(woke.threads, before.length);
    assert.deepEqual([...new Set(policies(child.pid!))], [SCHED_OTHER]);
  } finally {
    child.kill('SIGKILL');
  }
});

test('waking a process that is gone changes nothing and reports no error', { skip }, () => {
  assert.deepEqual(wakeUp(2 ** 22 + 12345), { threads: 0 });
});
