// Shared helpers for link tests: a temp socket path and a pino logger whose
// records land in an array, so tests assert on what was logged.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pino, { type Logger } from 'pino';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import type { ChannelMap } from '../../src/sidecar/sockets/relay-bridge.ts';
import type { ChannelBinding } from '../../src/shared/binding.ts';

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

/** A channel map in memory, whose installs can be held back to test ordering. */
export class MemoryChannelMap implements ChannelMap {
  readonly map = new Map<string, ChannelBinding>();
  readonly ops: string[] = [];
  gate: Promise<void> | null = null;
  installsStarted = 0;
  private key = (b: ChannelBinding) => `${b.client.address}|${b.client.port}|${b.channel}`;
  async install(b: ChannelBinding) {
    this.installsStarted++;
    if (this.gate) await this.gate;
    this.map.set(this.key(b), b);
    this.ops.push(`install ${b.channel}`);
  }
  remove(b: ChannelBinding) {
    this.map.delete(this.key(b));
    this.ops.push(`remove ${b.channel}`);
  }
  replaceAll(bs: readonly ChannelBinding[]) {
    this.map.clear();
    for (const b of bs) this.map.set(this.key(b), b);
    this.ops.push(`replace ${bs.length}`);
  }
  clear() {
    this.map.clear();
    this.ops.push('clear');
  }
}

export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}
