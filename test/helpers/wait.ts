// Polling waits for tests that drive real processes: a condition is probed
// until it holds or a deadline passes, and the timeout error names what was
// awaited and the probe's last failure. No timed assertions: the deadline is
// only a bound on a hang.
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves with the first probe result that is neither undefined nor false; a probe that throws is retried. */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, ms = 15_000, every = 100): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
