// What the launcher does when one of its children exits (src/cmd/turnpike.ts).
// Pure, so the policy is tested without processes.
// - exit 2, or a reason on the lifeline: the child cannot start; stop the pair.
// - the sidecar exiting 0 stopped on purpose (SIGTERM to it, or a drain that
//   ended): stop the pair, as the drain promised.
// - EXIT_UPGRADE (the sidecar's SIGUSR2: kernel path and bindings left for the
//   next one), or the relay exiting 0 (SIGTERM to it: its state is with the
//   sidecar): restart at once, not counted as a failure.
// - anything else is a crash: restart at once, since every ms is a gap in the
//   userspace path (issue 12: back within one second); only a child that keeps
//   dying (each within 30 s of its start) backs off, 250 ms doubling up to
//   30 s, and after restartLimit such failures in a row the pair stops.

/** The sidecar's exit code after SIGUSR2 (EX_TEMPFAIL): stopped to be replaced, pins and bindings kept. */
export const EXIT_UPGRADE = 75;

/** A child that ran this long before it died was healthy: its failure count starts over. */
export const HEALTHY_RUN_MS = 30_000;

export type ExitAction =
  | { do: 'stop-pair'; exitCode: number; why: string }
  | { do: 'restart'; delayMs: number; quickFailures: number; crashed: boolean };

export interface ExitInput {
  child: 'sidecar' | 'relay';
  code: number | null;
  /** The reason the child wrote on its lifeline, if any. */
  fatalReason: string | undefined;
  ranMs: number;
  /** Quick failures in a row before this exit (0 after a healthy run). */
  quickFailures: number;
  restartLimit: number;
}

export function onChildExit(e: ExitInput): ExitAction {
  if (e.code === 2 || e.fatalReason !== undefined) {
    return { do: 'stop-pair', exitCode: e.code === 2 ? 2 : 1, why: e.code === 2 ? 'child refused its configuration' : 'child cannot start' };
  }
  if (e.child === 'sidecar' && e.code === 0) return { do: 'stop-pair', exitCode: 0, why: 'the sidecar stopped on purpose (SIGTERM to it, or a drain that ended)' };
  if (e.code === EXIT_UPGRADE || (e.child === 'relay' && e.code === 0)) return { do: 'restart', delayMs: 0, quickFailures: 0, crashed: false };
  const quickFailures = e.ranMs > HEALTHY_RUN_MS ? 0 : e.quickFailures + 1;
  if (quickFailures > e.restartLimit) return { do: 'stop-pair', exitCode: 1, why: 'child keeps failing: cannot keep the pair up' };
  return { do: 'restart', delayMs: restartDelay(quickFailures), quickFailures, crashed: true };
}

/** Delay before the restart after `quickFailures` quick failures in a row (a crash after a healthy run is 0; 0 and 1: none). */
export function restartDelay(quickFailures: number): number {
  return quickFailures <= 1 ? 0 : Math.min(30_000, 250 * 2 ** Math.min(quickFailures - 2, 7));
}
