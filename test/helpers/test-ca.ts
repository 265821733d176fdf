// A certificate authority of a test's own and a server certificate it signed
// for one IP address (openssl, P-256), in a directory every user can read:
// the relay reads the certificate as its own user, and a client that trusts
// the CA verifies the server for real (no verification switched off).
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCertificate {
  /** The CA's certificate (PEM): what a client trusts. */
  readonly ca: string;
  /** The server's certificate and key (PEM files). */
  readonly cert: string;
  readonly key: string;
}

/** Writes ca.pem, cert.pem and key.pem (with the CA's key and request beside them) into `dir`, which must exist. */
export function makeTestCertificate(dir: string, ip: string): TestCertificate {
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'server.ext');
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=turnpike test CA');
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${ip}`);
  writeFileSync(ext, `subjectAltName=IP:${ip}\n`);
  ssl('x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext);
  chmodSync(dir, 0o755);
  for (const f of [cert, key, ca]) chmodSync(f, 0o644);
  return { ca, cert, key };
}
