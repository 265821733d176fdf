// Environment gates for tests that need root, BPF or network namespaces.
// Outside CI they skip with a visible reason; in CI (CI=true) a missing
// capability is a failure, because CI here runs as root and must exercise them.
import type { TestContext } from 'node:test';
import { execFileSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { readableBy } from '../../src/config/paths.ts';

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Returns true when the test may go on; otherwise skips it (or fails it in CI). */
export function requireCapability(t: TestContext, ok: boolean, reason: string): boolean {
  if (ok) return true;
  if (inCI) throw new Error(`required in CI but unavailable: ${reason}`);
  t.skip(reason);
  return false;
}

export function requireRoot(t: TestContext): boolean {
  return requireCapability(t, isRoot() && process.platform === 'linux', 'needs root on Linux (network namespaces / BPF)');
}

export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * The user the pair's launcher should run the relay as in a test: nobody when
 * nobody can read this checkout (the production shape), else root — a clone
 * under a 0700 directory (mktemp -d) is unreadable to nobody.
 */
export function relayUserForTests(): string {
  const entry = new URL('../../src/cmd/relay.ts', import.meta.url).pathname;
  const tsx = new URL('../../node_modules/tsx/package.json', import.meta.url).pathname;
  return readableBy(entry, 65534, 65534) && readableBy(tsx, 65534, 65534) ? 'nobody' : 'root';
}

/**
 * A clone under `mktemp -d` sits in a 0700 directory, so a user of the test's
 * own (the relay's) cannot reach the code it must run. Gives the directories
 * from the checkout up to / the search bit for others where they lack it, and
 * returns the function that puts their modes back (call it in `after`).
 * Files keep their modes: a checkout made with umask 022 is already o+r.
 */
export function openCheckoutToOtherUsers(): () => void {
  const changed: [string, number][] = [];
  for (let d = new URL('../..', import.meta.url).pathname.replace(/\/$/, ''); ; d = dirname(d)) {
    const mode = statSync(d).mode & 0o7777;
    if ((mode & 0o001) === 0) {
      chmodSync(d, mode | 0o001);
      changed.push([d, mode]);
    }
    if (d === dirname(d)) break;
  }
  return () => {
    for (const [d, mode] of changed.reverse()) chmodSync(d, mode);
  };
}
