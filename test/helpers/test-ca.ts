// A certificate authority of a test's own and a server certificate it signed
// for one IP address or DNS name (openssl, P-256), in a directory every user can read:
// the relay reads the certificate as its own user, and a client that trusts
// the CA verifies the server for real (no verification switched off).
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isIP } from 'node:net';

export interface TestCertificate {
  /** The CA's certificate (PEM): what a client trusts. */
  readonly ca: string;
  /** The server's certificate and key (PEM files). */
  readonly cert: string;
  readonly key: string;
}

/** Writes ca.pem, cert.pem and key.pem (with the CA's key and request beside them) into `dir`, which must exist; `name` is an IP address or a DNS name. */
export function makeTestCertificate(dir: string, name: string): TestCertificate {
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'server.ext');
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=turnpike test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  ssl('req', ...ec, '-keyout', key, '-out', csr, '-subj', `/CN=${name}`);
  // Browsers check the name against subjectAltName only, and want serverAuth.
  const san = isIP(name) ? `IP:${name}` : `DNS:${name}`;
  writeFileSync(ext, [`subjectAltName=${san}`, 'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth', ''].join('\n'));
  ssl('x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext);
  chmodSync(dir, 0o755);
  for (const f of [cert, key, ca]) chmodSync(f, 0o644);
  return { ca, cert, key };
}
