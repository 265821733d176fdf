// Defaults that serve on a fresh machine: which credentials to require when
// none are configured (a generated TURN REST secret kept in the state
// directory, never an open relay). The relayed-address choice lives in
// net/relay-address.ts (the sidecar makes it).
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { isWildcard } from '../shared/endpoint.ts';
import { readOrCreateSecret } from '../shared/secret-file.ts';

export const SECRET_FILE = 'rest-secret';

export interface CredentialSettlement {
  /** The REST secret read from or created in the state directory, when no credentials were configured. */
  readonly generatedSecret: string | undefined;
  readonly created: boolean;
  readonly secretFile: string | undefined;
}

export function hasConfiguredCredentials(config: Pick<Config, 'users' | 'restSecret' | 'firezoneSecret'>): boolean {
  return config.users.length > 0 || !!config.restSecret || !!config.firezoneSecret;
}

/**
 * With no users, REST secret or Firezone secret configured, require a REST
 * credential whose secret lives in `<stateDir>/rest-secret` (0600), created on
 * first start and reused afterwards. Throws only on file-system errors.
 */
export function ensureCredentials(
  config: Pick<Config, 'users' | 'restSecret' | 'firezoneSecret'> & Partial<Pick<Config, 'listenPort' | 'listenAddresses'>>,
  dir: string,
  log?: Logger,
  /** Where the plain how-to-connect hint goes (stderr by default; tests collect it). */
  hint: (text: string) => void = (t) => process.stderr.write(t),
): CredentialSettlement {
  if (hasConfiguredCredentials(config)) return { generatedSecret: undefined, created: false, secretFile: undefined };
  const file = join(dir, SECRET_FILE);
  const { secret, created } = readOrCreateSecret(file);
  if (created) log?.warn({ secretFile: file }, 'no credentials configured: created a TURN REST secret (the relay is not open)');
  else log?.info({ secretFile: file }, 'no credentials configured: using the TURN REST secret in the state directory');
  hint(credentialHint(file, hintHost(config), config.listenPort ?? 3478));
  return { generatedSecret: secret, created, secretFile: file };
}

function hintHost(config: Partial<Pick<Config, 'listenAddresses'>>): string {
  const specific = (config.listenAddresses ?? []).find((a) => !isWildcard(a));
  return specific ?? '127.0.0.1';
}

/** The plain hint printed at start-up when the generated secret is in use. */
export function credentialHint(secretFile: string, host: string, port: number): string {
  return [
    `turnpike: no credentials were configured, so clients need a TURN REST credential`,
    `  signed with the secret in ${secretFile}. Mint one with:`,
    `    npx tsx src/cmd/credential.ts --user alice --ttl 3600`,
    `  (or node dist/src/cmd/credential.js ...), then try the relay with coturn's client:`,
    `    turnutils_peer -p 3480 -L 127.0.0.1 &`,
    `    turnutils_uclient -p ${port} -W "$(cat ${secretFile})" -e 127.0.0.1 -r 3480 ${host}`,
    `  (loopback peers also need TURNPIKE_ALLOWED_PEERS=127.0.0.0/8)`,
    '',
  ].join('\n');
}
