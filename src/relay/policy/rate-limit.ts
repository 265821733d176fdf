// Token buckets per source for the request path, with time injected (the
// server's monotonic clock) and memory bounded.
//
// Sources: an IPv4 address is its own key (/32). IPv6 addresses share a
// bucket per prefix (default /64, what one subscriber is usually given), so a
// host that can pick any address in its /64 cannot multiply its budget by
// rotating them. An IPv4-mapped IPv6 address counts as the IPv4 address.
//
// Memory: at most maxEntries buckets. A bucket is forgotten only once it has
// refilled to `burst`: such a bucket says nothing an absent one does not, so
// forgetting it resets no one. When every tracked bucket is still refilling,
// a new source does not evict one (an evicted bucket would come back full:
// with LRU, a flood of fresh spoofed sources resets the bucket of the address
// the flood reflects to). It shares a single overflow bucket with every other
// untracked source instead. Under such a flood, new sources are throttled
// together while the tracked ones keep their own budgets.
import { addressToBytes, formatAddress, formatV4, isV4Mapped } from '../../shared/ip.ts';

export interface RateLimiterOptions {
  /** Tokens added per second (> 0). */
  readonly perSecond: number;
  /** Bucket size (tokens available after idling). */
  readonly burst: number;
  /** Most sources tracked; beyond, untracked sources share one overflow bucket. */
  readonly maxEntries: number;
  /** IPv6 sources share a bucket per prefix of this length (default 64). */
  readonly ipv6Prefix?: number;
}

/** 'limited-overflow': refused from the bucket shared by sources the full table could not track. */
export type Admission = 'pass' | 'limited' | 'limited-overflow';

export interface RateLimiter {
  /** Take one token for `source` (an IP address text; other text is a key as is) at `now` (ms, monotonic). */
  admit(source: string, now: number): Admission;
  /** Number of sources currently tracked. */
  readonly size: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** The bucket key of an address: IPv4 as is, IPv6 cut to its first `ipv6Prefix` bits. */
export function sourceKey(source: string, ipv6Prefix: number): string {
  if (source.indexOf(':') < 0) return source;
  const bytes = addressToBytes(source);
  if (bytes === undefined || bytes.length !== 16) return source;
  if (isV4Mapped(bytes)) return formatV4(bytes, 12);
  const whole = ipv6Prefix >> 3;
  const bits = ipv6Prefix & 7;
  if (bits !== 0) bytes[whole] = bytes[whole]! & (0xff << (8 - bits));
  bytes.fill(0, bits !== 0 ? whole + 1 : whole);
  return formatAddress(bytes);
}

export function createRateLimiter(opts: RateLimiterOptions): RateLimiter {
  const { perSecond, burst, maxEntries, ipv6Prefix = 64 } = opts;
  if (!(perSecond > 0) || !(burst >= 1) || !Number.isInteger(maxEntries) || maxEntries < 1 || !Number.isInteger(ipv6Prefix) || ipv6Prefix < 1 || ipv6Prefix > 128) {
    throw new Error(`bad rate limiter options: perSecond=${perSecond} burst=${burst} maxEntries=${maxEntries} ipv6Prefix=${ipv6Prefix}`);
  }
  // Insertion order = order of last use (a used key is re-inserted at the end).
  const buckets = new Map<string, Bucket>();
  const overflow: Bucket = { tokens: burst, at: -Infinity };

  const refill = (b: Bucket, now: number): void => {
    // A clock that steps back refills nothing rather than going negative.
    const elapsed = Math.max(0, now - b.at);
    b.tokens = Math.min(burst, b.tokens + (elapsed * perSecond) / 1000);
    b.at = Math.max(b.at, now);
  };

  /** Forget the least recently used buckets that have refilled, until there is room; false when none could go. */
  const makeRoom = (now: number): boolean => {
    while (buckets.size >= maxEntries) {
      const [key, oldest] = buckets.entries().next().value!;
      refill(oldest, now);
      if (oldest.tokens < burst) return false;
      buckets.delete(key);
    }
    return true;
  };

  const take = (b: Bucket): boolean => {
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  };

  return {
    admit(source, now) {
      const key = sourceKey(source, ipv6Prefix);
      let b = buckets.get(key);
      if (b !== undefined) {
        buckets.delete(key);
        refill(b, now);
      } else if (makeRoom(now)) {
        b = { tokens: burst, at: now };
      } else {
        refill(overflow, now);
        return take(overflow) ? 'pass' : 'limited-overflow';
      }
      buckets.set(key, b);
      return take(b) ? 'pass' : 'limited';
    },
    get size() {
      return buckets.size;
    },
  };
}
