// Builds the C load generator and sink into bench/bin/ when missing or stale.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const benchDir = new URL('..', import.meta.url).pathname;

export function buildTools(): { flood: string; sink: string } {
  const bin = join(benchDir, 'bin');
  mkdirSync(bin, { recursive: true });
  const out: Record<string, string> = {};
  for (const name of ['flood', 'sink']) {
    const src = join(benchDir, `${name}.c`);
    const exe = join(bin, name);
    if (!existsSync(exe) || statSync(exe).mtimeMs < statSync(src).mtimeMs) {
      execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-o', exe, src], { stdio: ['ignore', 'inherit', 'inherit'] });
    }
    out[name] = exe;
  }
  return { flood: out.flood!, sink: out.sink! };
}

/**
 * The user `npm start` runs the relay as (set-up creates it for `npm start`;
 * a benchmark starts the launcher the same way, so it needs it too). Only
 * created when missing, and only as root, where the launcher drops to it.
 */
export function ensureRelayUser(name = 'turnpike-relay'): void {
  if (process.getuid?.() !== 0) return;
  execFileSync('bash', [join(benchDir, '..', 'scripts', 'setup.sh'), '--relay-user', name], { stdio: ['ignore', 'inherit', 'inherit'] });
}
