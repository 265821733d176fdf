// Sends the relay's counters to the sidecar as COUNTERS frames: the server's
// ServerStats (cumulative totals; the sidecar's accumulator turns them into
// OTel counters and treats a decrease as a restart) plus the transport's and
// the log destination's own counters. Sent on every interval while the link
// is open, at once when it opens, and once more on shutdown so the last
// relayed packets are reported. A refused frame (link full or down) is only
// counted: the next snapshot carries the same totals.
export interface CountersLink {
  readonly connected: boolean;
  /** Queues a COUNTERS frame; false when the link refused it. */
  sendCounters(json: string): boolean;
}

export interface CountersSenderOptions {
  link: CountersLink;
  /** The snapshot to send (must be JSON-serializable). */
  collect: () => object;
  /** Default 1000 ms. */
  intervalMs?: number;
}

export interface CountersSender {
  /** Sends one snapshot now; false when the link refused it. */
  sendNow(): boolean;
  stats(): { sent: number; refused: number };
  stop(): void;
}

export function startCountersSender(opts: CountersSenderOptions): CountersSender {
  const s = { sent: 0, refused: 0 };
  const sendNow = (): boolean => {
    if (!opts.link.connected) return false;
    let json: string;
    try {
      json = JSON.stringify(opts.collect());
    } catch {
      s.refused++;
      return false;
    }
    const ok = opts.link.sendCounters(json);
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
