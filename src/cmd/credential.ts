// turnpike-credential: mints a time-limited TURN credential from the relay's
// configured secret (same config loading as the relay: file, environment,
// flags), so an operator can hand it to a client or try the relay at once.
//   npx tsx src/cmd/credential.ts --user alice --ttl 3600 [--json] [config flags]
// Secret precedence: TURNPIKE_REST_SECRET, then TURNPIKE_FIREZONE_SECRET, then
// the generated secret in the state directory (the relay's default).
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { parseCommandLine, type EntryFlags } from '../config/args.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import { stateDir } from '../config/paths.ts';
import type { Config } from '../config/schema.ts';
import { mintFirezoneCredential, mintRestCredential } from '../relay/auth/index.ts';
import { ensureCredentials } from '../relay/defaults.ts';
import { randomBytes } from 'node:crypto';

export interface MintRequest {
  readonly user?: string;
  readonly ttlSeconds: number;
  readonly now: number;
}

export interface Minted {
  readonly username: string;
  readonly password: string;
  readonly expiresAt: string;
  readonly scheme: 'rest' | 'firezone';
  readonly secretSource: string;
}

export class CredentialError extends Error {
  readonly code = 'TURNPIKE_CREDENTIAL';
}

/** Mints from the configured secret; static users have nothing to mint. */
export function mintFromConfig(config: Config, req: MintRequest, dir = stateDir(config)): Minted {
  const fmt = (c: { username: string; password: string; expiry: number }, scheme: Minted['scheme'], secretSource: string): Minted => ({
    username: c.username,
    password: c.password,
    expiresAt: new Date(c.expiry * 1000).toISOString(),
    scheme,
    secretSource,
  });
  if (config.restSecret) return fmt(mintRestCredential(config.restSecret, req.user, req.ttlSeconds, req.now), 'rest', 'TURNPIKE_REST_SECRET');
  if (config.firezoneSecret) {
    const salt = req.user || randomBytes(9).toString('base64url');
    return fmt(mintFirezoneCredential(config.firezoneSecret, salt, req.ttlSeconds, req.now), 'firezone', 'TURNPIKE_FIREZONE_SECRET');
  }
  if (config.users.length > 0) {
    throw new CredentialError('only static users are configured (TURNPIKE_USERS); there is no secret to mint from');
  }
  const settled = ensureCredentials(config, dir, undefined, () => {});
  return fmt(mintRestCredential(settled.generatedSecret!, req.user, req.ttlSeconds, req.now), 'rest', settled.secretFile!);
}

/** A ready-to-run uclient line for the minted credential (shell-quoted). */
export function uclientCommand(m: Minted, config: Pick<Config, 'listenPort' | 'listenAddresses'>): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const host = config.listenAddresses.find((a) => a !== '0.0.0.0' && a !== '::') ?? '127.0.0.1';
  return `turnutils_uclient -p ${config.listenPort} -u ${q(m.username)} -w ${q(m.password)} -e 127.0.0.1 -r 3480 ${host}`;
}

interface CliArgs {
  user?: string;
  ttl: number;
  json: boolean;
  rest: string[];
}

const ttlReason = 'must be a positive number of seconds';

/** The credential tool's own flags, beside the configuration's. */
const CREDENTIAL_FLAGS = {
  user: { type: 'string' },
  ttl: { type: 'string', schema: z.coerce.number({ error: ttlReason }).int({ error: ttlReason }).positive({ error: ttlReason }).default(3600) },
  json: { type: 'boolean' },
} as const satisfies EntryFlags;

/** Its own flags, and the configuration flags (`rest`) for loadConfig. */
export function parseCliArgs(argv: readonly string[]): CliArgs {
  const { own, configArgv } = parseCommandLine(argv, CREDENTIAL_FLAGS);
  return { ...(own.user !== undefined ? { user: own.user } : {}), ttl: own.ttl, json: own.json ?? false, rest: configArgv };
}

function main(): void {
  try {
    const args = parseCliArgs(process.argv.slice(2));
    const { config } = loadConfig({ argv: args.rest });
    const m = mintFromConfig(config, { ttlSeconds: args.ttl, now: Date.now(), ...(args.user ? { user: args.user } : {}) });
    if (args.json) {
      process.stdout.write(JSON.stringify({ ...m, realm: config.realm }) + '\n');
      return;
    }
    process.stdout.write(
      [
        `username: ${m.username}`,
        `password: ${m.password}`,
        `realm:    ${config.realm}`,
        `expires:  ${m.expiresAt}`,
        `secret:   ${m.secretSource} (${m.scheme})`,
        '',
        'Try it (a UDP echo peer on loopback; the relay needs TURNPIKE_ALLOWED_PEERS=127.0.0.0/8 for it):',
        '  turnutils_peer -p 3480 -L 127.0.0.1 &',
        `  ${uclientCommand(m, config)}`,
        '',
      ].join('\n'),
    );
  } catch (e) {
    if (e instanceof ConfigError || e instanceof CredentialError) {
      process.stderr.write(`turnpike-credential: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) main();
