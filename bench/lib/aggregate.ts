// Per-case summaries of repeated runs, and the figures derived from the
// no-relay baseline: softirq net of the baseline, the relay's own cost per
// packet and packets per CPU-second of that cost.
import type { Family, RttRun, ThroughputRun } from './measure.ts';
import { summarize, type Summary } from './stats.ts';
import type { ProfileSummary } from './profile.ts';

export interface SizeResult {
  family: Family;
  size: number;
  runs: ThroughputRun[];
  rtt: RttRun[];
  relayedPps?: Summary;
  offeredPps?: Summary;
  lossPct?: Summary;
  processUs?: Summary;
  processByRole?: Record<string, Summary>;
  softirqUs?: Summary;
  totalUs?: Summary;
  /** Raw softirq minus the baseline's median softirq per packet for the same family and size. */
  netSoftirqUs?: Summary;
  /** process + net softirq: what the relay itself costs per relayed packet. */
  netTotalUs?: Summary;
  /** 1e6 / netTotalUs: packets relayed per CPU-second the relay consumed. */
  ppsPerCpuSecond?: Summary;
  /** Median baseline softirq per packet the net figures were computed against. */
  baselineSoftirqUs?: number;
  /** Machine-wide softirq CPU-seconds per second before each run (other load), already subtracted from softirqUs. */
  backgroundSoftirq?: Summary;
  rttP50?: Summary;
  rttP99?: Summary;
  /** GC ms per second of the contender's Node.js processes under the flood, and during the RTT runs. */
  gcMsPerSecond?: Summary;
  rttGcMsPerSecond?: Summary;
  /** Every run lost < 0.5 %: the relay kept up with all that was offered. */
  generatorCapped: boolean;
  /** perf profile of one extra run (--profile), not part of the figures. */
  profile?: ProfileSummary;
  profileError?: string;
}

export const caseKey = (family: Family, size: number) => `IPv${family}/${size}`;

/** `baselineSoftirqUs`: the no-relay run's median softirq per packet for this case, if it was measured. */
export function summarizeCase(family: Family, size: number, runs: ThroughputRun[], rtt: RttRun[], baselineSoftirqUs?: number): SizeResult {
  const s: SizeResult = {
    family, size, runs, rtt,
    offeredPps: summarize(runs.map((r) => r.offeredPps)),
    relayedPps: summarize(runs.map((r) => r.relayedPps)),
    lossPct: summarize(runs.map((r) => r.lossPct)),
    processUs: summarize(runs.map((r) => r.processUsPerPkt)),
    softirqUs: summarize(runs.map((r) => r.softirqUsPerPkt)),
    totalUs: summarize(runs.map((r) => r.totalUsPerPkt)),
    backgroundSoftirq: summarize(runs.map((r) => r.backgroundSoftirqPerSecond)),
    rttP50: summarize(rtt.map((r) => r.p50Us)),
    rttP99: summarize(rtt.map((r) => r.p99Us)),
    gcMsPerSecond: summarize(runs.map((r) => r.gcMsPerSecond ?? NaN)),
    rttGcMsPerSecond: summarize(rtt.map((r) => r.gcMsPerSecond ?? NaN)),
    generatorCapped: runs.length > 0 && runs.every((r) => r.generatorCapped),
  };
  const roles = new Set(runs.flatMap((r) => Object.keys(r.processByRole)));
  if (roles.size > 0) {
    s.processByRole = {};
    for (const role of roles) {
      const sum = summarize(runs.map((r) => r.processByRole[role] ?? NaN));
      if (sum) s.processByRole[role] = sum;
    }
  }
  if (baselineSoftirqUs !== undefined && Number.isFinite(baselineSoftirqUs)) {
    s.baselineSoftirqUs = baselineSoftirqUs;
    const net = runs.map((r) => r.softirqUsPerPkt - baselineSoftirqUs);
    const own = runs.map((r, i) => r.processUsPerPkt + net[i]!);
    s.netSoftirqUs = summarize(net);
    s.netTotalUs = summarize(own);
    // A non-positive own cost is tick noise (10 ms samples), not a free relay: left out.
    s.ppsPerCpuSecond = summarize(own.map((us) => (us > 0 ? 1e6 / us : NaN)));
  }
  return s;
}
