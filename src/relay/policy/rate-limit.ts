// Token bucket per key (a source address as text), with time injected and
// memory bounded: at maxEntries the least recently used key is evicted (a Map
// keeps insertion order, so touching a key re-inserts it at the end).
// An evicted key comes back with a full bucket; size maxEntries above the
// number of sources you expect to be active within burst/perSecond seconds.

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

interface Bucket {
  tokens: number;
  at: number;
}

export function createRateLimiter(opts: RateLimiterOptions): RateLimiter {
  const { perSecond, burst, maxEntries } = opts;
  if (!(perSecond >= 0) || !(burst > 0) || !Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new Error(`bad rate limiter options: perSecond=${perSecond} burst=${burst} maxEntries=${maxEntries}`);
  }
  const buckets = new Map<string, Bucket>();
  return {
    take(key, now, cost = 1) {
      let b = buckets.get(key);
      if (b) {
        buckets.delete(key);
        // A clock that steps back refills nothing rather than going negative.
        const elapsed = Math.max(0, now - b.at);
        b.tokens = Math.min(burst, b.tokens + (elapsed * perSecond) / 1000);
        b.at = Math.max(b.at, now);
      } else {
        if (buckets.size >= maxEntries) buckets.delete(buckets.keys().next().value!);
        b = { tokens: burst, at: now };
      }
      buckets.set(key, b);
      if (b.tokens < cost) return false;
      b.tokens -= cost;
      return true;
    },
    get size() {
      return buckets.size;
    },
  };
}
