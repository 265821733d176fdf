export interface RateLimiterOptions {
  /** Tokens added per second. */
  readonly perSecond: number;
  /** Bucket size (tokens available after idling). */
  readonly burst: number;
  /** Most keys kept; the least recently used is evicted beyond it. */
  readonly maxEntries: number;
}

export interface RateLimiter {
  /** Take `cost` tokens (default 1) for `key` at `now` (ms); false = over the limit. */
  take(key: string, now: number, cost?: number): boolean;
  /** Number of keys currently tracked. */
  readonly size: number;
}

export function createRateLimiter(opts: RateLimiterOptions): RateLimiter {
  void opts;
  throw new Error('TODO');
}
