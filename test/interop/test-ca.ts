// A certificate authority of the test's own (openssl, EC P-256, two days) and
// a server certificate it signs for one DNS name, plus an NSS database under a
// temporary HOME that trusts that CA: Chromium on Linux takes locally added
// trust anchors from $HOME/.pki/nssdb, so a browser started with that HOME
// verifies the server's chain and name for real, and nothing on the host (its
// CA store, root's own NSS database) is touched.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCa {
  /** The CA certificate (PEM). */
  readonly caCert: string;
  /** The server certificate (PEM) for `hostname`, signed by the CA. */
  readonly cert: string;
  /** Its private key (PEM). */
  readonly key: string;
}

const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** Makes the CA and a server certificate for `hostname` in `dir`, readable by every user (the relay reads them as its own user). */
export function makeTestCa(dir: string, hostname: string): TestCa {
  const caCert = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'server.ext');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', caKey, '-out', caCert, '-days', '2', '-subj', '/CN=turnpike test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl('req', ...ec, '-keyout', key, '-out', csr, '-subj', `/CN=${hostname}`);
  // Chromium checks the name against subjectAltName only, and wants serverAuth.
  writeFileSync(ext, [`subjectAltName=DNS:${hostname}`, 'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth', ''].join('\n'));
  openssl('x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext);
  chmodSync(dir, 0o755);
  for (const f of [cert, key]) chmodSync(f, 0o644);
  return { caCert, cert, key };
}

/** Creates $home/.pki/nssdb trusting `caCert` to identify TLS servers (certutil from libnss3-tools). */
export function trustCaForBrowser(home: string, caCert: string): string {
  const db = join(home, '.pki', 'nssdb');
  mkdirSync(db, { recursive: true, mode: 0o700 });
  const certutil = (...args: string[]) => execFileSync('certutil', ['-d', `sql:${db}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  certutil('-N', '--empty-password');
  certutil('-A', '-n', 'turnpike test CA', '-t', 'C,,', '-i', caCert);
  return db;
}
