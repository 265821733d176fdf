// Sends the relay's counters to the sidecar as COUNTERS frames: the server's
// ServerStats (cumulative totals; the sidecar's accumulator turns them into
// OTel counters and treats a decrease as a restart) plus the transport's and
// the log destination's own counters. Sent on every interval while the link
// is open, at once when it opens, and once more on shutdown so the last
// relayed packets are reported. A refused frame (link full or down) is only
// counted: the next snapshot carries the same totals. A snapshot the link's
// schema refuses is never sent (the sidecar would take it for a protocol
// error and drop the link); it is counted and reported once per run.
import { countersProblem, type RelayCounters } from '../../link/counters.ts';

export interface CountersLink {
  readonly connected: boolean;
  /** Queues a COUNTERS frame; false when the link refused it. */
  sendCounters(counters: RelayCounters): boolean;
}

export interface CountersSenderOptions {
  link: CountersLink;
  /** The snapshot to send. */
  collect: () => RelayCounters;
  /** Default 1000 ms. */
  intervalMs?: number;
  /** Told the first time a snapshot does not match the link's schema (a relay bug). */
  onInvalid?: (reason: string) => void;
}

export interface CountersSender {
  /** Sends one snapshot now; false when the link refused it. */
  sendNow(): boolean;
  stats(): { sent: number; refused: number; invalid: number };
  stop(): void;
}

export function startCountersSender(opts: CountersSenderOptions): CountersSender {
  const s = { sent: 0, refused: 0, invalid: 0 };
  const sendNow = (): boolean => {
    if (!opts.link.connected) return false;
    const counters = opts.collect();
    const problem = countersProblem(counters);
    if (problem !== undefined) {
      if (s.invalid++ === 0) opts.onInvalid?.(problem);
      return false;
    }
    const ok = opts.link.sendCounters(counters);
    if (ok) s.sent++;
    else s.refused++;
    return ok;
  };
  const timer = setInterval(sendNow, opts.intervalMs ?? 1000);
  timer.unref();
  return {
    sendNow,
    stats: () => ({ ...s }),
    stop: () => clearInterval(timer),
  };
}
