// The launcher's lifeline to its children: an extra stdio pipe (fd 3) that the
// launcher holds open for as long as it lives. A child watches it and stops
// when it closes, which the kernel does however the launcher ended, SIGKILL
// included. Chosen over PR_SET_PDEATHSIG because that needs prctl through
// koffi in the relay (which loads no native code), is cleared when the relay
// drops to its user, and fires on the death of the spawning thread rather
// than the process; an inherited fd survives unshare and setuid unchanged.
// A child that cannot start writes its reason back on the same pipe (the
// sidecar's end is read; the relay's is not, so the relay cannot stop the
// pair), so the launcher's last line names it.
// A child says on it when it is up (`ready`), after which the launcher makes
// its warm standby. The launcher also writes on it: `go`, to a warm standby (a child started
// ahead with awaitGo, its code loaded, idle) when it takes the place of one
// that exited, so a restart does not wait for Node's start-up.
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';

/** The fd a child finds its lifeline on (the launcher's stdio slot 3). */
export const LIFELINE_FD = 3;
/** Largest reason line the launcher reads from a child. */
const MAX_REASON = 4096;

export interface Lifeline {
  /** Tells the launcher why this child cannot start: it stops the pair instead of restarting the child. */
  fatal(reason: string): void;
  /** Tells the launcher this child is up (its start-up burst is over: a standby may be made now). */
  ready(): void;
  /** Resolves true on the launcher's go, false if the launcher goes first (no lifeline: true at once). */
  go(): Promise<boolean>;
}

const GO = 'go\n';
const READY = '{"ready":true}\n';

/** Launcher side: tells a warm standby child to start. */
export function sendGo(lifeline: Writable): void {
  lifeline.write(GO);
}

/** Child side: calls `onLost` once when the launcher's end closes. No fd (not started by the launcher): a no-op. */
export function watchLifeline(fd: number | undefined, onLost: () => void): Lifeline {
  if (fd === undefined) return { fatal: () => {}, ready: () => {}, go: () => Promise.resolve(true) };
  const pipe = new Socket({ fd, readable: true, writable: true });
  let lost = false;
  let said = '';
  let answer: ((go: boolean) => void) | undefined;
  const went = new Promise<boolean>((resolve) => (answer = resolve));
  const lose = () => {
    answer?.(false);
    if (lost) return;
    lost = true;
    onLost();
  };
  pipe.on('data', (d: Buffer) => {
    if (said.length >= GO.length) return;
    said += d.toString('latin1');
    if (said.startsWith(GO)) answer?.(true);
  });
  pipe.on('end', lose);
  pipe.on('close', lose);
  pipe.on('error', lose);
  pipe.unref(); // watching must not keep the process alive
  return {
    fatal: (reason) => void pipe.write(JSON.stringify({ fatal: reason.slice(0, MAX_REASON - 64) }) + '\n'),
    ready: () => void pipe.write(READY),
    go: () => {
      // Waiting is all a standby does: the pipe keeps it alive until the answer.
      pipe.ref();
      return went.then((v) => (pipe.unref(), v));
    },
  };
}

/**
 * Launcher side: what a child writes on its lifeline (read until it exits,
 * bounded): the reason it cannot start, if any, and `onReady` once it is up.
 */
export function readLifeline(pipe: NodeJS.ReadableStream, onReady: () => void = () => {}): () => string | undefined {
  let text = '';
  let ready = false;
  pipe.on('data', (d: Buffer) => {
    if (text.length < MAX_REASON) text += d.toString('utf8').slice(0, MAX_REASON - text.length);
    if (!ready && text.includes(READY)) {
      ready = true;
      onReady();
    }
  });
  pipe.on('error', () => {});
  return () => {
    for (const line of text.split('\n')) {
      try {
        const v = JSON.parse(line) as { fatal?: unknown };
        if (typeof v.fatal === 'string') return v.fatal;
      } catch {
        // not a JSON line
      }
    }
    return undefined;
  };
}
