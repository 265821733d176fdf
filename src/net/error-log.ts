// Socket errors are counted always and logged at most once per interval per
// kind, with how many were suppressed: a flood of EHOSTUNREACH must not turn
// into a flood of log lines.
import type { Logger } from 'pino';

export class ErrorCounter {
  readonly counts: Record<string, number> = {};
  private readonly lastLogged = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger | undefined,
    private readonly intervalMs = 10_000,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Count one error of `kind` without logging it (routine ones, e.g. "bind:EADDRINUSE"). */
  count(kind: string): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
  }

  /** Count one error of `kind` ("send:EHOSTUNREACH"); log it unless one was logged recently. */
  record(kind: string, fields: Record<string, unknown>, msg: string): void {
    this.count(kind);
    if (!this.log) return;
    const now = this.clock();
    const last = this.lastLogged.get(kind);
    if (last && now - last.at < this.intervalMs) {
      last.suppressed++;
      return;
    }
    this.log.warn({ ...fields, kind, suppressed: last?.suppressed ?? 0 }, msg);
    this.lastLogged.set(kind, { at: now, suppressed: 0 });
  }
}
