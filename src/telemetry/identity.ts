// The instance identity: a random UUID kept in the state directory so a
// sidecar keeps its id across restarts (PostHog distinct id, OTel
// service.instance.id). Created on first start.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface Identity {
  readonly id: string;
  /** True when this start created the id. */
  readonly created: boolean;
}

export function loadIdentity(stateDir: string): Identity {
  const path = join(stateDir, 'instance-id');
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (UUID.test(text)) return { id: text.toLowerCase(), created: false };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  // Missing or unreadable content: a fresh id, written atomically so a crash
  // mid-write never leaves a half id that would be replaced on every start.
  mkdirSync(stateDir, { recursive: true, mode: 0o750 });
  const id = randomUUID();
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, id + '\n', { mode: 0o644 });
  renameSync(tmp, path);
  return { id, created: true };
}
