// Where the pair keeps its state: identity, REST secret, link socket, pinned maps.
import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Config } from './schema.ts';

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/** /var/lib/turnpike as root, ./.turnpike otherwise, unless configured. */
export function stateDir(config: Pick<Config, 'stateDir'>): string {
  return resolve(config.stateDir ?? (isRoot() ? '/var/lib/turnpike' : '.turnpike'));
}

export function linkSocketPath(config: Pick<Config, 'stateDir' | 'socket'>): string {
  return config.socket ? resolve(config.socket) : join(stateDir(config), 'link.sock');
}

/** bpffs directory for pinned maps; one per listen port so two pairs on a host do not collide. */
export function pinDir(config: Pick<Config, 'listenPort'>): string {
  return `/sys/fs/bpf/turnpike-${config.listenPort}`;
}

/**
 * Whether a user may read `path` (every directory on the way searchable, the
 * file readable), judged from mode bits: the launcher runs the relay as
 * another user, who must be able to load the code it runs.
 */
export function readableBy(path: string, uid: number, gid: number): boolean {
  const allowed = (p: string, bits: number): boolean => {
    let st;
    try {
      st = statSync(p);
    } catch {
      return false;
    }
    if (uid === 0) return true;
    const shift = st.uid === uid ? 6 : st.gid === gid ? 3 : 0;
    return ((st.mode >> shift) & bits) === bits;
  };
  const full = resolve(path);
  const dirs: string[] = [];
  for (let d = dirname(full); ; d = dirname(d)) {
    dirs.push(d);
    if (d === dirname(d)) break;
  }
  return dirs.every((d) => allowed(d, 0o1)) && allowed(full, 0o4);
}
