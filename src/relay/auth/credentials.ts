// Long-term credential sources. Each answers "what is the password for this
// username now?"; the server turns that into the MD5 key (longTermKey).
// Ephemeral schemes (coturn REST, Firezone) derive the password from the
// username and a shared secret, so they need no user table.
import { createHash, createHmac } from 'node:crypto';

/**
 * A source of long-term credential passwords.
 * `now` is ms since the epoch; undefined = unknown user or expired credential.
 */
export interface CredentialSource {
  passwordFor(username: string, now: number): string | undefined;
  /**
   * The user a username belongs to in this source's scheme: the key of the
   * per-user quotas, so that a freshly minted credential for the same user
   * does not bring a fresh quota. Undefined when the username is not of this
   * source's form. Says nothing about validity (passwordFor does).
   */
  userOf(username: string): string | undefined;
}

export interface RestCredential {
  readonly username: string;
  readonly password: string;
  /** Unix seconds after which the credential is refused. */
  readonly expiry: number;
}

/** Static users: a map, a record, or `[user, pass]` pairs. */
export function createStaticCredentials(
  users: ReadonlyMap<string, string> | Readonly<Record<string, string>> | ReadonlyArray<readonly [string, string]>,
): CredentialSource {
  const table = new Map<string, string>(
    users instanceof Map ? users : Array.isArray(users) ? (users as ReadonlyArray<readonly [string, string]>) : Object.entries(users),
  );
  return { passwordFor: (username) => table.get(username), userOf: (username) => (table.has(username) ? username : undefined) };
}

/**
 * The expiry (unix seconds) at the front of `expiry:rest` or a bare `expiry`;
 * undefined when the username does not start with a plain decimal number.
 */
function leadingExpiry(username: string): number | undefined {
  const colon = username.indexOf(':');
  const head = colon < 0 ? username : username.slice(0, colon);
  if (!/^\d{1,12}$/.test(head)) return undefined;
  return Number(head);
}

/**
 * The user of `expiry:user`: what follows the first colon. A bare `expiry`
 * (or an empty user) names nobody, so the whole username is its own user:
 * such credentials cannot be told apart, and one shared quota for all of
 * them would let one holder exhaust everyone's.
 */
function userAfterExpiry(username: string): string | undefined {
  if (leadingExpiry(username) === undefined) return undefined;
  const colon = username.indexOf(':');
  return colon < 0 || colon === username.length - 1 ? username : username.slice(colon + 1);
}

/** Still valid at `now` (ms): expiry is the last second the credential is accepted. */
function unexpired(expiry: number, now: number): boolean {
  return expiry * 1000 >= now;
}

/** The REST password for a username (coturn formula: base64(HMAC-SHA1(secret, username))). */
export function restPassword(secret: string, username: string): string {
  return createHmac('sha1', secret).update(username, 'utf8').digest('base64');
}

/**
 * coturn TURN REST API (use-auth-secret): username `expiry:user` or a bare
 * `expiry` (unix seconds), password = base64(HMAC-SHA1(secret, username)).
 * A list is accepted for configuration convenience, but only its first
 * secret is used: a lookup returns one password, and a chain stops at the
 * first source that answers, so secret rotation cannot be expressed here.
 */
export function createRestCredentials(secret: string | readonly string[]): CredentialSource {
  const secrets = typeof secret === 'string' ? [secret] : [...secret];
  if (secrets.length === 0 || secrets.some((s) => s.length === 0)) throw new Error('REST secret must not be empty');
  const current = secrets[0]!;
  return {
    passwordFor(username, now) {
      const expiry = leadingExpiry(username);
      if (expiry === undefined || !unexpired(expiry, now)) return undefined;
      return restPassword(current, username);
    },
    userOf: userAfterExpiry,
  };
}

/** The Firezone password for `expiry:salt`: unpadded base64 of SHA-256("expiry:secret:salt"). */
export function firezonePassword(secret: string, expiry: number, salt: string): string {
  return createHash('sha256').update(`${expiry}:${secret}:${salt}`, 'utf8').digest('base64').replace(/=+$/, '');
}

/**
 * Firezone: username `expiry:salt`, password = unpadded base64(SHA-256("expiry:secret:salt")).
 * The portal derives the salt from the client's public key, so the salt is
 * the user: the same device under every credential minted for it.
 */
export function createFirezoneCredentials(secret: string): CredentialSource {
  if (secret.length === 0) throw new Error('Firezone secret must not be empty');
  return {
    passwordFor(username, now) {
      const colon = username.indexOf(':');
      if (colon < 0) return undefined;
      const expiry = leadingExpiry(username);
      const salt = username.slice(colon + 1);
      if (expiry === undefined || salt.length === 0 || !unexpired(expiry, now)) return undefined;
      return firezonePassword(secret, expiry, salt);
    },
    userOf: (username) => (username.indexOf(':') > 0 ? userAfterExpiry(username) : undefined),
  };
}

/** Tries each source in order; the first password found wins, and the user of the source that knows the username. */
export function createCredentialChain(sources: readonly CredentialSource[]): CredentialSource {
  const list = [...sources];
  const first = (ask: (s: CredentialSource) => string | undefined): string | undefined => {
    for (const s of list) {
      const answer = ask(s);
      if (answer !== undefined) return answer;
    }
    return undefined;
  };
  return {
    passwordFor: (username, now) => first((s) => s.passwordFor(username, now)),
    userOf: (username) => first((s) => s.userOf(username)),
  };
}

/** Mint a coturn-style REST credential valid for ttlSeconds from `now` (ms). Empty/undefined user -> bare expiry username. */
export function mintRestCredential(secret: string, user: string | undefined, ttlSeconds: number, now: number): RestCredential {
  const expiry = Math.floor(now / 1000) + Math.floor(ttlSeconds);
  const username = user ? `${expiry}:${user}` : `${expiry}`;
  return { username, password: restPassword(secret, username), expiry };
}

/** Mint a Firezone-style credential (username `expiry:salt`). */
export function mintFirezoneCredential(secret: string, salt: string, ttlSeconds: number, now: number): RestCredential {
  const expiry = Math.floor(now / 1000) + Math.floor(ttlSeconds);
  return { username: `${expiry}:${salt}`, password: firezonePassword(secret, expiry, salt), expiry };
}
