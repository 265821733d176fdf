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
import { Socket } from 'node:net';

/** The fd a child finds its lifeline on (the launcher's stdio slot 3). */
export const LIFELINE_FD = 3;
/** Largest reason line the launcher reads from a child. */
const MAX_REASON = 4096;

export interface Lifeline {
  /** Tells the launcher why this child cannot start: it stops the pair instead of restarting the child. */
  fatal(reason: string): void;
}

/** Child side: calls `onLost` once when the launcher's end closes. No fd (not started by the launcher): a no-op. */
export function watchLifeline(fd: number | undefined, onLost: () => void): Lifeline {
  if (fd === undefined) return { fatal: () => {} };
  const pipe = new Socket({ fd, readable: true, writable: true });
  let lost = false;
  const lose = () => {
    if (lost) return;
    lost = true;
    onLost();
  };
  pipe.on('data', () => {}); // the launcher sends nothing; keep the stream flowing
  pipe.on('end', lose);
  pipe.on('close', lose);
  pipe.on('error', lose);
  pipe.unref(); // watching must not keep the process alive
  return { fatal: (reason) => void pipe.write(JSON.stringify({ fatal: reason.slice(0, MAX_REASON - 64) }) + '\n') };
}

/** Launcher side: the reason a child wrote on its lifeline, if any (read until the child exits). */
export function readFatalReason(pipe: NodeJS.ReadableStream): () => string | undefined {
  let text = '';
  pipe.on('data', (d: Buffer) => {
    if (text.length < MAX_REASON) text += d.toString('utf8').slice(0, MAX_REASON - text.length);
  });
  pipe.on('error', () => {});
  return () => {
    const line = text.split('\n')[0];
    if (!line) return undefined;
    try {
      const v = JSON.parse(line) as { fatal?: unknown };
      return typeof v.fatal === 'string' ? v.fatal : undefined;
    } catch {
      return undefined;
    }
  };
}
