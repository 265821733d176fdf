// GC time of turnpike's processes, from the sidecar's Prometheus text: the
// `v8js.gc.duration` histogram (seconds, by `v8js.gc.type` and `process`),
// whose _sum series are cumulative GC seconds. A run reads them before and
// after and divides the difference by its wall time.

/** Cumulative GC seconds per process (sidecar, relay), summed over GC types, from /metrics text. */
export function parseGcSeconds(prometheusText: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of prometheusText.split('\n')) {
    const m = /^v8js_gc_duration(?:_seconds)?_sum\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const process = /(?:^|,)process="([^"]*)"/.exec(m[1]!)?.[1] ?? 'unknown';
    const v = Number(m[2]);
    if (Number.isFinite(v)) out[process] = (out[process] ?? 0) + v;
  }
  return out;
}

/** GC milliseconds per second of `wallSeconds` between two readings, per process and in total; undefined when the reading after has no GC series. */
export function gcMsPerSecond(before: Record<string, number>, after: Record<string, number>, wallSeconds: number): { total: number; byProcess: Record<string, number> } | undefined {
  if (Object.keys(after).length === 0) return undefined;
  const byProcess: Record<string, number> = {};
  let total = 0;
  for (const [p, v] of Object.entries(after)) {
    // A process that restarted counts from zero: its reading after is its GC since then.
    const d = v >= (before[p] ?? 0) ? v - (before[p] ?? 0) : v;
    byProcess[p] = (d * 1000) / wallSeconds;
    total += byProcess[p]!;
  }
  return { total, byProcess };
}
