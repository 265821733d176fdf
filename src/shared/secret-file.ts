// A secret kept in a file of the state directory (the generated TURN REST
// secret, the admin token): read when present, created when missing, always
// left 0600. A truncated or hand-emptied file is replaced rather than
// accepted as a weak secret.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** The secret in `file`, and whether it was created now. Throws only on file-system errors. */
export function readOrCreateSecret(file: string, minLength = 16): { secret: string; created: boolean } {
  let secret: string | undefined;
  try {
    secret = readFileSync(file, 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (secret !== undefined && secret.length >= minLength) {
    chmodSync(file, 0o600);
    return { secret, created: false };
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o711 });
  secret = randomBytes(32).toString('base64url');
  writeFileSync(file, secret + '\n', { mode: 0o600 });
  chmodSync(file, 0o600); // writeFileSync's mode applies only when it creates the file
  return { secret, created: true };
}
