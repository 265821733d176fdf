// A pino destination for the relay behind the sidecar: each log line goes to
// the sidecar as a LOG frame (the sidecar prints it and streams it to Sentry
// like its own), so the relay needs no telemetry SDK and no egress.
//
// Where a line goes:
//   link open, frame accepted      -> the sidecar only (under `npm start` both
//                                     processes share stdout; printing here too
//                                     would show every relay line twice). The
//                                     sidecar prints it if its local filter
//                                     wants it and streams it if its stream
//                                     filter does: the same filters as here.
//   no link (start-up, sidecar gone)-> the relay's own stdout, so nothing is
//                                     silently lost while there is no agent;
//                                     only lines the local filter wants (a
//                                     line made for the stream has no reader)
//   link open but its queue is full -> dropped and counted (the link writer's
//                                     bound); never blocks, never grows memory
// A line written while a LOG frame is being queued (a log call made from
// inside the link code) goes to stdout: the link is never re-entered.
import { lineMeta, type RoutingDestination } from '../../shared/logger.ts';
import type { DestinationStream } from 'pino';

export { lineMeta };

/** The relay's link as this destination needs it (SidecarTransport implements it). */
export interface LogLink {
  readonly connected: boolean;
  /** Queues a LOG frame; false when the link refused it (down or full). */
  sendLog(level: number, module: string, json: string): boolean;
}

export interface LinkLogStats {
  /** Lines handed to the link. */
  forwarded: number;
  /** Lines written to the relay's stdout because no link was open. */
  local: number;
  /** Lines dropped because the link's queue was full. */
  dropped: number;
  /** Session lines a client's budget suppressed (LogHub.perSource; the relay's telemetry adds it). */
  rateLimited?: number;
}

export class LinkLogDestination implements RoutingDestination {
  private link: LogLink | undefined;
  private sending = false;
  private readonly s: LinkLogStats = { forwarded: 0, local: 0, dropped: 0 };

  /** `local` is where lines go while no link is open (the relay's stdout). */
  constructor(private readonly local: DestinationStream) {}

  /** Starts (or, with undefined, stops) forwarding over `link`. */
  attach(link: LogLink | undefined): void {
    this.link = link;
  }

  write(line: string): void {
    this.writeRouted(line, true);
  }

  writeRouted(line: string, wantedLocally: boolean): void {
    const link = this.link;
    if (!link || this.sending || !link.connected) {
      this.writeLocal(line, wantedLocally);
      return;
    }
    const { level, module } = lineMeta(line);
    this.sending = true;
    let ok = false;
    try {
      ok = link.sendLog(level, module, line.endsWith('\n') ? line.slice(0, -1) : line);
    } catch {
      ok = false;
    } finally {
      this.sending = false;
    }
    if (ok) this.s.forwarded++;
    else if (link.connected) this.s.dropped++;
    // The link went away while we tried: keep the line.
    else this.writeLocal(line, wantedLocally);
  }

  private writeLocal(line: string, wanted: boolean): void {
    if (!wanted) return;
    this.s.local++;
    this.local.write(line);
  }

  stats(): LinkLogStats {
    return { ...this.s };
  }
}
