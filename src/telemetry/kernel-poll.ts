// Polls the kernel's per-CPU counters on an interval. The read may be
// asynchronous (a koffi `.async` map lookup on a worker thread); a slow read
// never piles up: a tick that finds the previous read still running is
// skipped. Failures are logged once per streak, not once per tick.
import type { Logger } from 'pino';

export interface KernelCounters {
  /** By path name (`chan_to_udp_44`, ...): per-CPU sums. */
  paths: Record<string, { packets: number | bigint; bytes: number | bigint }>;
  /** By reason name (`pass_stun`, `drop_adjust_head`, ...): per-CPU sums. */
  reasons: Record<string, number | bigint>;
}

export type KernelReader = () => KernelCounters | Promise<KernelCounters>;

export interface KernelPoll {
  /** Reads once now (unless a read is running) and resolves when done. */
  pollNow(): Promise<void>;
  stop(): void;
}

export function startKernelCounterPoll(
  read: KernelReader,
  onSnapshot: (c: KernelCounters) => void,
  opts: { intervalMs?: number; log?: Logger } = {},
): KernelPoll {
  const intervalMs = opts.intervalMs ?? 1000;
  let running: Promise<void> | undefined;
  let failing = false;
  let stopped = false;

  const once = (): Promise<void> => {
    if (running) return running;
    running = (async () => {
      try {
        const snap = await read();
        if (stopped) return;
        onSnapshot(snap);
        if (failing) opts.log?.info('kernel counters readable again');
        failing = false;
      } catch (err) {
        if (!failing) opts.log?.warn({ err }, 'reading kernel counters failed');
        else opts.log?.debug({ err }, 'reading kernel counters still failing');
        failing = true;
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  const timer = setInterval(() => void once(), intervalMs);
  timer.unref();
  return {
    pollNow: once,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
