// What the harness needs from a relay under test. A contender starts inside
// the topology's relay namespace and reports the pids whose CPU and memory
// count as "the relay" (children are added by the harness from /proc).
import type { Topology } from '../../test/helpers/netns.ts';

export interface ContenderOptions {
  /** TURN listen port (same for all contenders). */
  port: number;
  /** Relay (allocation) port range. */
  minPort: number;
  maxPort: number;
  /** TURN REST shared secret. */
  secret: string;
  realm: string;
  /** Directory for logs and state of this start. */
  workDir: string;
  /**
   * Serve TURN over TCP (on `port`) and TLS (on `tlsPort`) too, with this
   * certificate (PEM files). Absent: UDP only, as the UDP benchmarks run.
   */
  streams?: { cert: string; key: string; tlsPort: number };
}

export interface ContenderHandle {
  /** Processes whose CPU/RSS count as the relay (their descendants are included). */
  pids(): number[];
  /** Named processes for the memory table, e.g. { relay: 123, sidecar: 456 }. */
  roles(): Record<string, number>;
  /** Where the contender's own log went. */
  logFile: string;
  /**
   * Cumulative GC seconds per process (e.g. { sidecar, relay }), read from
   * the contender's metrics; absent for a contender with no GC to report.
   */
  gcSeconds?(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export interface Contender {
  name: string;
  /** One line for the table: threads, mode, what it is. */
  describe: string;
  start(topo: Topology, opts: ContenderOptions): Promise<ContenderHandle>;
}
