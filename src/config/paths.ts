// Where the pair keeps its state: identity, REST secret, link socket, pinned maps.
import { join, resolve } from 'node:path';
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
