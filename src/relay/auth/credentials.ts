/**
 * A source of long-term credential passwords.
 * `now` is ms since the epoch; undefined = unknown user or expired credential.
 */
export interface CredentialSource {
  passwordFor(username: string, now: number): string | undefined;
}

export interface RestCredential {
  readonly username: string;
  readonly password: string;
  /** Unix seconds after which the credential is refused. */
  readonly expiry: number;
}

/** Static users: a map, a record, or `[user, pass]` pairs. */
export function createStaticCredentials(users: ReadonlyMap<string, string> | Readonly<Record<string, string>> | ReadonlyArray<readonly [string, string]>): CredentialSource {
  void users;
  throw new Error('TODO');
}

/**
 * coturn TURN REST API (use-auth-secret): username `expiry:user` or a bare
 * `expiry` (unix seconds), password = base64(HMAC-SHA1(secret, username)).
 * Several secrets may be given (rotation): any of them works.
 */
export function createRestCredentials(secret: string | readonly string[]): CredentialSource {
  void secret;
  throw new Error('TODO');
}

/** Firezone: username `expiry:salt`, password = unpadded base64(SHA-256("expiry:secret:salt")). */
export function createFirezoneCredentials(secret: string): CredentialSource {
  void secret;
  throw new Error('TODO');
}

/** Tries each source in order; the first password found wins. */
export function createCredentialChain(sources: readonly CredentialSource[]): CredentialSource {
  void sources;
  throw new Error('TODO');
}

/** The REST password for a username (coturn formula). */
export function restPassword(secret: string, username: string): string {
  void secret; void username;
  throw new Error('TODO');
}

/** The Firezone password for `expiry:salt`. */
export function firezonePassword(secret: string, expiry: number, salt: string): string {
  void secret; void expiry; void salt;
  throw new Error('TODO');
}

/** Mint a coturn-style REST credential valid for ttlSeconds from `now` (ms). Empty/undefined user -> bare expiry username. */
export function mintRestCredential(secret: string, user: string | undefined, ttlSeconds: number, now: number): RestCredential {
  void secret; void user; void ttlSeconds; void now;
  throw new Error('TODO');
}

/** Mint a Firezone-style credential (username `expiry:salt`). */
export function mintFirezoneCredential(secret: string, salt: string, ttlSeconds: number, now: number): RestCredential {
  void secret; void salt; void ttlSeconds; void now;
  throw new Error('TODO');
}
