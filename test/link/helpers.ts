// Shared helpers for link tests: a temp socket path and a pino logger whose
// records land in an array, so tests assert on what was logged.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pino, { type Logger } from 'pino';

export function tempSocketPath(): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `tplink-${randomBytes(2).toString('hex')}-`));
  return { path: join(dir, 'link.sock'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Captured {
  logger: Logger;
  records: { level: number; msg: string; [k: string]: unknown }[];
  has(re: RegExp): boolean;
}

export function captureLogger(name: string): Captured {
  const records: Captured['records'] = [];
  const logger = pino({ level: 'trace', name }, { write: (line: string) => void records.push(JSON.parse(line)) });
  return { logger, records, has: (re) => records.some((r) => re.test(r.msg)) };
}

/** Resolves when `cond()` holds; polls each turn (no wall-clock assertion). */
export async function until(cond: () => boolean, what = 'condition', maxMs = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > maxMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
