// An NSS database under a temporary HOME that trusts a test's own CA
// (test/helpers/test-ca.ts makes the CA and the server certificate): Chromium on Linux takes locally added
// trust anchors from $HOME/.pki/nssdb, so a browser started with that HOME
// verifies the server's chain and name for real, and nothing on the host (its
// CA store, root's own NSS database) is touched.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** Creates $home/.pki/nssdb trusting `caCert` to identify TLS servers (certutil from libnss3-tools). */
export function trustCaForBrowser(home: string, caCert: string): string {
  const db = join(home, '.pki', 'nssdb');
  mkdirSync(db, { recursive: true, mode: 0o700 });
  const certutil = (...args: string[]) => execFileSync('certutil', ['-d', `sql:${db}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  certutil('-N', '--empty-password');
  certutil('-A', '-n', 'turnpike test CA', '-t', 'C,,', '-i', caCert);
  return db;
}
