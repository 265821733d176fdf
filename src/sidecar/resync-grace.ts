// Pinned bindings left by an earlier sidecar keep the fast path running while
// the relay reconnects and re-announces its state. If no relay does within the
// grace time, nobody owns those bindings any more and the kernel must stop
// relaying for them: they are cleared.
import type { Logger } from 'pino';

/** The kernel binding maps as the policy needs them (XdpRouter has both). */
export interface PinnedBindings {
  bindingCount(): number;
  /** Returns how many bindings were removed. */
  clearBindings(): number;
}

/** Runs fn once after ms and returns its cancel; injected so tests need no real time. */
export type Schedule = (fn: () => void, ms: number) => () => void;

/** A timer that never keeps the process alive on its own. */
const unrefTimer: Schedule = (fn, ms) => {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
};

export interface ResyncGraceOptions {
  bindings: PinnedBindings;
  graceMs: number;
  /** Whether a relay is connected now: it re-announces on its own schedule, so its bindings are not stale. */
  relayConnected: () => boolean;
  log: Logger;
  schedule?: Schedule;
}

export interface ResyncGrace {
  /** The relay re-announced: from now on its state, not the pins, decides what the maps hold. */
  resynced(): void;
  /** Stop waiting (the sidecar stops). */
  cancel(): void;
}

/** Starts the grace period if the maps hold pinned bindings at start-up; otherwise there is nothing to guard. */
export function startResyncGrace(opts: ResyncGraceOptions): ResyncGrace {
  let resynced = false;
  const pinned = opts.bindings.bindingCount();
  if (pinned === 0) return { resynced: () => {}, cancel: () => {} };
  opts.log.info({ bindings: pinned }, 'pinned bindings found; waiting for the relay to re-announce its state');
  const cancel = (opts.schedule ?? unrefTimer)(() => {
    if (resynced || opts.relayConnected()) return;
    const n = opts.bindings.clearBindings();
    opts.log.warn({ cleared: n, graceMs: opts.graceMs }, 'relay did not re-announce its state: pinned bindings cleared');
  }, opts.graceMs);
  return {
    resynced: () => {
      resynced = true;
    },
    cancel,
  };
}
