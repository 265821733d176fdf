// The relay's TLS certificate and key (PEM files; the certificate file may
// hold the whole chain), reloaded without a restart when they change on disk.
// certbot replaces files through a symlink and cert-manager swaps a mounted
// directory's `..data` link, so the watch is on the directories, not on the
// files (a watch on a file follows the old inode), and any change there
// re-reads both. A pair that does not load (the key written before its
// certificate, mid-renewal) keeps the previous context and waits for the next
// change; the next handshake gets whatever `current` is then.
import { watch, readFileSync, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';

export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
}

/** Debounce for a burst of events from one renewal (several files, rename and write). */
const SETTLE_MS = 100;

/** Loads the pair; throws with the path and reason when it cannot. */
export function loadSecureContext(files: TlsFiles): SecureContext {
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(files.cert);
    key = readFileSync(files.key);
  } catch (e) {
    throw new Error(`cannot read TLS certificate or key: ${(e as Error).message}`);
  }
  try {
    return createSecureContext({ cert, key });
  } catch (e) {
    throw new Error(`TLS certificate ${files.cert} and key ${files.key} do not load: ${(e as Error).message}`);
  }
}

export class TlsContextSource {
  #current: SecureContext;
  readonly #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;
  #reloads = 0;
  #failures = 0;

  constructor(
    private readonly files: TlsFiles,
    private readonly log?: Logger,
  ) {
    this.#current = loadSecureContext(files);
  }

  /** The context the next handshake uses. */
  get current(): SecureContext {
    return this.#current;
  }

  /** Starts watching the files' directories; changes reload the pair. */
  watch(): this {
    for (const dir of new Set([dirname(this.files.cert), dirname(this.files.key)])) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#schedule());
        w.on('error', (e) => this.log?.warn({ err: e.message, dir }, 'TLS certificate watch failed; reload needs a restart'));
        this.#watchers.push(w);
      } catch (e) {
        this.log?.warn({ err: (e as Error).message, dir }, 'cannot watch the TLS certificate directory; reload needs a restart');
      }
    }
    return this;
  }

  /** Re-reads the pair now; false (the old context kept) when it does not load. */
  reload(): boolean {
    try {
      this.#current = loadSecureContext(this.files);
      this.#reloads++;
      this.log?.info({ cert: this.files.cert }, 'TLS certificate reloaded');
      return true;
    } catch (e) {
      this.#failures++;
      this.log?.warn({ err: (e as Error).message }, 'TLS certificate reload failed; the previous one stays in use');
      return false;
    }
  }

  stats(): { reloads: number; reloadFailures: number } {
    return { reloads: this.#reloads, reloadFailures: this.#failures };
  }

  close(): void {
    clearTimeout(this.#timer);
    for (const w of this.#watchers.splice(0)) w.close();
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.reload(), SETTLE_MS);
    this.#timer.unref();
  }
}
