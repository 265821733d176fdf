// A bpffs of the test's own, for tests that pin maps or links: a fresh
// instance mounted on a new temporary directory and unmounted (and removed)
// when the test ends. Each mount of bpffs is an instance of its own, so the
// test neither needs /sys/fs/bpf to be mounted nor touches it: test files run
// two at a time and other processes of the host pin there, and a test that
// mounted or unmounted the shared one could pull it from under them.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** Mounts a bpffs for test t (needs root) and returns its directory; gone after t. */
export function bpffsFor(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'tpbpf-fs-'));
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', dir], { stdio: 'pipe' });
  } catch (err) {
    rmdirSync(dir);
    throw err;
  }
  t.after(() => {
    execFileSync('umount', [dir], { stdio: 'pipe' });
    rmdirSync(dir);
  });
  return dir;
}
