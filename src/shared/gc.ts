// Garbage collections of this process, as the OpenTelemetry semantic
// conventions name them (v8js.gc.duration: seconds, by v8js.gc.type), from
// perf_hooks' 'gc' performance entries, and their cumulative totals per type
// and histogram bucket. The sidecar records its own GCs into its metrics
// directly; the relay sends its totals in its COUNTERS frames (bounded by
// construction: types × buckets), and the sidecar turns the differences back
// into histogram records (gcDeltas), exact in count, sum and bucket.
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';

export const GC_TYPES = ['major', 'minor', 'incremental', 'weakcb'] as const;
export type GcType = (typeof GC_TYPES)[number];

/**
 * Upper bounds (seconds) of the v8js.gc.duration buckets; one more bucket
 * above the last. Finer than the conventions' advice (10 ms-10 s): the pauses
 * that matter on a relay are milliseconds.
 */
export const GC_BUCKETS = [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 1] as const;

/** Per GC type: count and seconds per bucket (GC_BUCKETS.length + 1 entries each), cumulative. */
export type GcTotals = Partial<Record<GcType, { count: number[]; seconds: number[] }>>;

/** The semantic-convention type of a perf_hooks GC kind (NODE_PERFORMANCE_GC_*), undefined for one it does not name. */
export function gcTypeOf(kind: number): GcType | undefined {
  switch (kind) {
    case constants.NODE_PERFORMANCE_GC_MAJOR: return 'major';
    case constants.NODE_PERFORMANCE_GC_MINOR: return 'minor';
    case constants.NODE_PERFORMANCE_GC_INCREMENTAL: return 'incremental';
    case constants.NODE_PERFORMANCE_GC_WEAKCB: return 'weakcb';
    default: return undefined;
  }
}

/** The bucket a duration falls in, as OpenTelemetry's explicit buckets count it (upper bound inclusive). */
export function gcBucketOf(seconds: number): number {
  const i = GC_BUCKETS.findIndex((b) => seconds <= b);
  return i < 0 ? GC_BUCKETS.length : i;
}

/** Adds one GC to `totals`. */
export function addGc(totals: GcTotals, type: GcType, seconds: number): void {
  const t = (totals[type] ??= { count: new Array<number>(GC_BUCKETS.length + 1).fill(0), seconds: new Array<number>(GC_BUCKETS.length + 1).fill(0) });
  const i = gcBucketOf(seconds);
  t.count[i]! += 1;
  t.seconds[i]! += seconds;
}

/**
 * What happened between two totals, as histogram records: per type and
 * bucket, `n` GCs of `seconds` each (the bucket's mean, which lies in the
 * same bucket, so count, sum and bucket counts are exact). A total below the
 * previous one means its process restarted: the new total is all new.
 */
export function gcDeltas(prev: GcTotals | undefined, next: GcTotals): { type: GcType; n: number; seconds: number }[] {
  const out: { type: GcType; n: number; seconds: number }[] = [];
  for (const type of GC_TYPES) {
    const t = next[type];
    if (!t) continue;
    const p = prev?.[type];
    const restarted = p !== undefined && t.count.some((c, i) => c < (p.count[i] ?? 0));
    t.count.forEach((c, i) => {
      const n = restarted || !p ? c : c - (p.count[i] ?? 0);
      const s = restarted || !p ? t.seconds[i]! : t.seconds[i]! - (p.seconds[i] ?? 0);
      if (n > 0) out.push({ type, n, seconds: Math.max(0, s / n) });
    });
  }
  return out;
}

/** Calls `onGc` for every GC of this process (its type and duration in seconds) until the returned stop is called. */
export function watchGc(onGc: (type: GcType, seconds: number) => void): () => void {
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      const type = kind === undefined ? undefined : gcTypeOf(kind);
      if (type) onGc(type, entry.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}
