// Decides which log lines are streamed to Sentry: the `stream-logs` flag
// (on/off), its filter (per-module levels, same syntax as TURNPIKE_LOG) and a
// token bucket that bounds the rate handed to the SDK, so a log storm while
// Sentry is slow or down cannot build an unbounded backlog. Pure apart from
// the injected clock.
import { filterAllows, parseLogFilter, type LogFilter } from '../shared/logger.ts';

export interface StreamGateOptions {
  /** Sustained lines per second handed to the SDK. */
  ratePerSecond?: number;
  /** Lines allowed in a burst above the rate. */
  burst?: number;
  now?: () => number;
}

export type GateVerdict = 'send' | 'off' | 'filtered' | 'over-rate';

export class StreamGate {
  private on = false;
  private filter: LogFilter = parseLogFilter('info');
  private tokens: number;
  private last: number;
  private readonly rate: number;
  private readonly burst: number;
  private readonly now: () => number;
  /** Lines refused by the rate bound since the last takeDropped(). */
  private dropped = 0;

  constructor(opts: StreamGateOptions = {}) {
    this.rate = opts.ratePerSecond ?? 200;
    this.burst = opts.burst ?? 1000;
    this.now = opts.now ?? Date.now;
    this.tokens = this.burst;
    this.last = this.now();
  }

  /** Turns streaming on with `filter` or off. */
  set(on: boolean, filter?: LogFilter): void {
    this.on = on;
    if (filter) this.filter = filter;
  }

  state(): { on: boolean; filter: LogFilter } {
    return { on: this.on, filter: this.filter };
  }

  check(module: string | undefined, level: string | number): GateVerdict {
    if (!this.on) return 'off';
    if (!filterAllows(this.filter, module, typeof level === 'number' ? level : (level as 'info'))) return 'filtered';
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    if (this.tokens < 1) {
      this.dropped++;
      return 'over-rate';
    }
    this.tokens -= 1;
    return 'send';
  }

  takeDropped(): number {
    const n = this.dropped;
    this.dropped = 0;
    return n;
  }
}
