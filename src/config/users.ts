// System users by name or number, as the launcher and the sidecar need them:
// the relay's uid and gid. Through id(1), so every NSS source counts, not
// only /etc/passwd.
import { execFileSync } from 'node:child_process';

export interface UserIds {
  readonly uid: number;
  readonly gid: number;
}

/** The user's uid and primary gid; undefined when there is no such user. */
export function resolveUser(user: string): UserIds | undefined {
  try {
    const uid = /^\d+$/.test(user) ? Number(user) : Number(execFileSync('id', ['-u', user], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim());
    const gid = Number(execFileSync('id', ['-g', String(uid)], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim());
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}
