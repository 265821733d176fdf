// What cmd/relay.ts hands a transport and gets back. Each transport module
// exports one start function of type StartTransport:
//   standalone.ts -> startStandaloneTransport (the relay's own UDP sockets)
//   sidecar.ts    -> startSidecarTransport    (datagrams over the link socket)
import type { LogHub } from '../../shared/logger.ts';
import type { Config } from '../../config/schema.ts';
import type { TurnServer } from '../server/server.ts';
import type { LinkLogDestination } from '../telemetry/link-log.ts';

export interface TransportContext {
  readonly config: Config;
  readonly server: TurnServer;
  readonly logs: LogHub;
  /** The hub's destination when it forwards lines over the link (sidecar transport only). */
  readonly logDestination?: LinkLogDestination | undefined;
}

export interface RunningTransport {
  /** Fields for the "relay ready" start-up line (listen addresses actually bound, socket path, ...). */
  describe(): Record<string, unknown>;
  /** Transport counters (sent/received/errors) for periodic and shutdown logs. */
  stats(): Record<string, unknown>;
  close(): Promise<void>;
}

export type StartTransport = (ctx: TransportContext) => Promise<RunningTransport>;
