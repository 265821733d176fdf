// System users by name or number, as the launcher and the sidecar need them:
// the relay's uid and gid. Through id(1), so every NSS source counts, not
// only /etc/passwd.
import { execFileSync } from 'node:child_process';

export interface UserIds {
  readonly uid: number;
  readonly gid: number;
}

/**
 * The user's uid and primary gid; undefined when there is no such user. A
 * number with no passwd entry (a container's runAsUser) is taken as is, its
 * group the same number.
 */
export function resolveUser(user: string): UserIds | undefined {
  const id = (flag: string, who: string) => Number(execFileSync('id', [flag, who], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim());
  const numeric = /^\d+$/.test(user) ? Number(user) : undefined;
  let uid: number;
  try {
    uid = numeric ?? id('-u', user);
  } catch {
    return undefined;
  }
  let gid: number;
  try {
    gid = id('-g', String(uid));
  } catch {
    if (numeric === undefined) return undefined;
    gid = numeric;
  }
  return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
}
