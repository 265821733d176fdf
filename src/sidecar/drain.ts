// Graceful drain for rolling upgrades. Once started (SIGTERM with a drain
// deadline, or POST /drain): /readyz answers 503 so load balancers stop
// sending new clients; the relay is told (DRAIN frame, again on every
// reconnect) to refuse new Allocates (300 Try Alternate to the configured
// alternate server, else 508) while it serves the existing ones; `drained`
// settles when the relay reports no allocation left or the deadline passes,
// and the entry point then stops the sidecar.
import type { Logger } from 'pino';
import type { Frame } from '../link/protocol.ts';
import { familyOf, type TransportAddress } from '../shared/endpoint.ts';

export interface DrainOptions {
  /** Sends a frame to the connected relay (false when none is). */
  sendToRelay: (f: Frame) => boolean;
  /** Subscribes to relay (re)connects. */
  onRelayOpen: (fn: () => void) => void;
  /** The relay's allocation count as it last reported it (undefined: no report). */
  allocations: () => number | undefined;
  alternate: { host: string; port: number } | undefined;
  /** ms; 0: no deadline (until the allocations end). */
  deadlineMs: number;
  log: Logger;
  pollMs?: number;
}

export interface Drain {
  readonly active: boolean;
  /** Starts the drain (idempotent); resolves when it is over. */
  start(reason: string): Promise<void>;
  /** Stops the timers (the sidecar stops). */
  cancel(): void;
}

export function createDrain(opts: DrainOptions): Drain {
  let done: Promise<void> | undefined;
  let timers: NodeJS.Timeout[] = [];
  const alternate: TransportAddress | undefined = opts.alternate
    ? { family: familyOf(opts.alternate.host), address: opts.alternate.host, port: opts.alternate.port }
    : undefined;
  const tell = () => opts.sendToRelay(alternate ? { kind: 'drain', alternate } : { kind: 'drain' });
  return {
    get active() {
      return done !== undefined;
    },
    start(reason) {
      done ??= new Promise<void>((resolve) => {
        const startedAt = Date.now();
        opts.log.info({ reason, deadlineMs: opts.deadlineMs, alternate: opts.alternate, allocations: opts.allocations() }, 'draining: not ready, new allocations refused, existing ones served');
        tell();
        opts.onRelayOpen(tell);
        const finish = (why: string) => {
          for (const t of timers) clearTimeout(t);
          timers = [];
          opts.log.info({ why, afterMs: Date.now() - startedAt, allocations: opts.allocations() }, 'drain over');
          resolve();
        };
        const poll = setInterval(() => {
          if (opts.allocations() === 0) finish('no allocation left');
        }, opts.pollMs ?? 1000);
        timers.push(poll);
        if (opts.deadlineMs > 0) timers.push(setTimeout(() => finish('deadline'), opts.deadlineMs));
      });
      return done;
    },
    cancel() {
      for (const t of timers) clearTimeout(t);
      timers = [];
    },
  };
}
