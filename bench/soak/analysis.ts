// The soak's judgements, pure functions of what was recorded: loss per second
// against the restart gaps, and memory over time.
import type { Second } from './driver.ts';
import type { Role } from './procs.ts';

export interface Gap {
  kind: 'relay' | 'sidecar';
  killedAt: number;
  /** When the killed process's replacement served again (relay: reconnected and resynced; sidecar: ready and resynced by the relay). */
  backAt: number;
}

export interface LossReport {
  /** Seconds of sending that overlap a gap window. */
  inGap: { channel: Flow; send: Flow };
  outside: { channel: Flow; send: Flow };
  /** Seconds outside every gap window that lost something. */
  lossySecondsOutside: number[];
}

interface Flow {
  sent: number;
  lost: number;
}

/** The second overlaps [killedAt, backAt + afterMs]: what was in flight at the kill and what the replacement had not yet caught up. */
export function gapOf(sec: number, gaps: Gap[], afterMs: number): Gap | undefined {
  return gaps.find((g) => sec * 1000 < g.backAt + afterMs && (sec + 1) * 1000 > g.killedAt);
}

export function lossReport(timeline: Second[], gaps: Gap[], afterMs: number): LossReport {
  const zero = () => ({ channel: { sent: 0, lost: 0 }, send: { sent: 0, lost: 0 } });
  const r: LossReport = { inGap: zero(), outside: zero(), lossySecondsOutside: [] };
  for (const s of timeline) {
    const where = gapOf(s.sec, gaps, afterMs) ? r.inGap : r.outside;
    for (const k of ['channel', 'send'] as const) {
      where[k].sent += s[k].sent;
      where[k].lost += s[k].sent - s[k].received;
    }
    if (where === r.outside && s.channel.sent + s.send.sent > s.channel.received + s.send.received) r.lossySecondsOutside.push(s.sec);
  }
  return r;
}

export interface RssSample {
  at: number;
  role: Role;
  pid: number;
  /** The process's start (Unix ms): samples in its first warm-up are left out. */
  startedAt: number;
  rss: number;
}

export interface MemoryReport {
  role: Role;
  instances: number;
  startMb: number;
  endMb: number;
  maxMb: number;
  /** Least-squares slope of RSS over the run (samples after each instance's warm-up), MB per minute. */
  slopeMbPerMin: number;
  /** End minus start, each the median of three samples (after warm-up). */
  growthMb: number;
  samples: number;
}

const MB = 1024 * 1024;

function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  const sxx = points.reduce((a, p) => a + (p.x - mx) ** 2, 0);
  return sxx === 0 ? 0 : points.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0) / sxx;
}

/**
 * Per role. A restarted process starts small again, so samples from an
 * instance's first `warmupMs` (loading code, first allocations) are left
 * out of the slope; what remains shows growth within instances and from one
 * instance to the next (state a restarted process takes over).
 */
export function memoryReport(samples: RssSample[], warmupMs: number): MemoryReport[] {
  const roles: Role[] = ['launcher', 'sidecar', 'relay'];
  return roles.flatMap((role) => {
    const own = samples.filter((s) => s.role === role);
    if (own.length === 0) return [];
    const warm = own.filter((s) => s.at - s.startedAt >= warmupMs);
    const use = warm.length >= 2 ? warm : own;
    const median3 = (l: RssSample[]) => l.map((s) => s.rss).sort((a, b) => a - b)[Math.floor(l.length / 2)]! / MB;
    return [{
      role,
      instances: new Set(own.map((s) => s.pid)).size,
      growthMb: median3(use.slice(-3)) - median3(use.slice(0, 3)),
      startMb: use[0]!.rss / MB,
      endMb: use.at(-1)!.rss / MB,
      maxMb: Math.max(...own.map((s) => s.rss)) / MB,
      slopeMbPerMin: (slope(use.map((s) => ({ x: s.at / 60_000, y: s.rss / MB })))),
      samples: use.length,
    }];
  });
}
