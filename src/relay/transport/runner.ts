// What cmd/relay.ts hands a transport and gets back. Each transport module
// exports one start function of type StartTransport:
//   standalone.ts -> startStandaloneTransport (the relay's own UDP sockets)
//   sidecar.ts    -> startSidecarTransport    (datagrams over the link socket)
import type { LogHub } from '../../shared/logger.ts';
import type { Config } from '../../config/schema.ts';
import type { RelayedAddresses } from '../../link/protocol.ts';
import type { TurnServer } from '../server/server.ts';
import type { LinkLogDestination } from '../telemetry/link-log.ts';
import type { StreamSocket } from './streams.ts';

export interface TransportContext {
  readonly config: Config;
  /**
   * Builds the TurnServer once the relayed addresses are known: the
   * standalone transport chooses them at start, the sidecar transport takes
   * them from the sidecar's HELLO (the relay has no network to probe).
   */
  readonly buildServer: (addresses: RelayedAddresses) => TurnServer;
  readonly logs: LogHub;
  /** The hub's destination when it forwards lines over the link (sidecar transport only). */
  readonly logDestination?: LinkLogDestination | undefined;
  /** Listening TCP/TLS sockets systemd passed (socket activation; stream-sockets.ts), served besides the launcher's. */
  readonly streamSockets?: readonly StreamSocket[];
}

export interface RunningTransport {
  readonly server: TurnServer;
  /**
   * Settles when the transport can no longer serve this server (the sidecar
   * now names other relayed addresses): the relay exits and is started anew.
   */
  readonly failed?: Promise<string>;
  /** Fields for the "relay ready" start-up line (listen addresses actually bound, socket path, relayed addresses, ...). */
  describe(): Record<string, unknown>;
  /** Transport counters (sent/received/errors) for periodic and shutdown logs. */
  stats(): Record<string, unknown>;
  close(): Promise<void>;
}

export type StartTransport = (ctx: TransportContext) => Promise<RunningTransport>;
