// turnpike-relay: the TURN server process. Loads the configuration, settles
// the credentials, and runs the sans-IO TurnServer behind one transport,
// chosen here and only here (the transport builds the server once it knows
// the relayed addresses: its own choice standalone, the sidecar's HELLO
// behind the link):
//   standalone  the relay's own UDP sockets (development, no sidecar)
//   sidecar     datagrams over the link socket from turnpike-sidecar
// The choice is the relayTransport setting: TURNPIKE_RELAY_TRANSPORT (the
// launcher sets sidecar), --relay-transport or its short name --transport.
import { fileURLToPath } from 'node:url';
import { realpathSync } from 'node:fs';
import type { EntryFlags } from '../config/args.ts';
import { loadConfig, ConfigError, type Loaded } from '../config/load.ts';
import { stateDir } from '../config/paths.ts';
import type { Config } from '../config/schema.ts';
import { createLogHub } from '../shared/logger.ts';
import { LinkLogDestination, stdoutDestination } from '../relay/telemetry/index.ts';
import { authSources, buildServerOptions } from '../relay/build.ts';
import { ensureCredentials } from '../relay/defaults.ts';
import type { RelayedAddresses } from '../link/protocol.ts';
import { systemdStreamSockets } from '../relay/transport/stream-sockets.ts';
import type { StreamSocket } from '../relay/transport/streams.ts';
import { watchLifeline } from './lifeline.ts';
import { TurnServer } from '../relay/server/server.ts';
import { startStandaloneTransport } from '../relay/transport/standalone.ts';
import { startSidecarTransport } from '../relay/transport/sidecar.ts';
import type { RunningTransport, StartTransport } from '../relay/transport/runner.ts';

export type TransportKind = Config['relayTransport'];

/** The relay's own flags, beside the configuration's. */
const RELAY_FLAGS = { transport: { type: 'string', field: 'relayTransport' } } as const satisfies EntryFlags;

function loadRelayConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Loaded<typeof RELAY_FLAGS> {
  return loadConfig({ argv, env, flags: RELAY_FLAGS });
}

/** The transport the command line and environment choose, and the arguments that are configuration flags. */
export function pickTransport(argv: readonly string[], env: NodeJS.ProcessEnv): { transport: TransportKind; argv: string[] } {
  const loaded = loadRelayConfig(argv, env);
  return { transport: loaded.config.relayTransport, argv: loaded.configArgv };
}

function transportStarter(kind: TransportKind): StartTransport {
  return kind === 'standalone' ? startStandaloneTransport : startSidecarTransport;
}

async function main(): Promise<void> {
  let config: Config;
  // Socket activation (systemd .socket units): read first, so the variables go whatever happens next.
  let streamSockets: StreamSocket[];
  try {
    streamSockets = systemdStreamSockets(process.env, process.pid);
  } catch (e) {
    process.stderr.write(`turnpike-relay: sockets from systemd: ${(e as Error).message}\n`);
    process.exit(2);
  }
  try {
    config = loadRelayConfig(process.argv.slice(2), process.env).config;
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`turnpike-relay: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const transportKind = config.relayTransport;
  // Behind the sidecar, log lines travel over the link (stdout only while it is down).
  const logDestination = transportKind === 'sidecar' ? new LinkLogDestination(stdoutDestination()) : undefined;
  const logs = createLogHub({
    filter: config.log,
    name: 'turnpike',
    base: { process: 'relay' },
    perSourceRate: config.sessionLogRate,
    ...(logDestination ? { destination: logDestination } : {}),
  });
  const log = logs.get('relay');

  let running: RunningTransport | undefined;
  let statsTimer: NodeJS.Timeout | undefined;
  let stopping = false;
  const stop = async (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    clearInterval(statsTimer);
    await running?.close();
    log.info({ signal, server: running?.server.stats(), transport: running?.stats() }, 'relay stopped');
    setTimeout(() => process.exit(code), 50);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // Started by the launcher: stop with it, however it ended.
  const lifeline = watchLifeline(config.lifelineFd, () => void stop('launcher gone'));

  const creds = ensureCredentials(config, stateDir(config), log);
  if (creds.generatedSecret) config = { ...config, restSecret: creds.generatedSecret };
  const serverConfig = config;
  const buildServer = (relayAddresses: RelayedAddresses) =>
    new TurnServer(
      buildServerOptions(serverConfig, { relayAddresses, logger: logs.get('server'), sessionLog: { logger: logs.get('session'), budget: logs.perSource } }),
    );

  // A warm standby has loaded its code and waits here, idle and off the
  // link, until the launcher puts it in place of a relay that exited.
  if (config.awaitGo) {
    if (!(await lifeline.go())) return;
    log.info('warm standby relay taking over');
  }
  try {
    if (streamSockets.length > 0 && transportKind === 'standalone') log.warn({ sockets: streamSockets.length }, 'sockets from systemd ignored: the standalone transport binds its own');
    running = await (await transportStarter(transportKind))({ config, buildServer, logs, logDestination, streamSockets });
  } catch (e) {
    log.fatal({ err: e, transport: transportKind }, 'transport failed to start');
    // Give pino's asynchronous destination a moment to flush the reason.
    setTimeout(() => process.exit(1), 100);
    return;
  }
  if (stopping) return void running.close();
  const { server } = running;
  void running.failed?.then((reason) => {
    log.fatal({ reason }, 'the relayed addresses changed under this relay; exiting so it starts anew');
    void stop('relayed addresses changed', 1);
  });

  log.info(
    {
      ...running.describe(),
      portRange: `${config.portRange.min}-${config.portRange.max}`,
      realm: config.realm,
      auth: authSources(config),
      allowedPeers: config.allowedPeers,
      deniedPeers: config.deniedPeers,
    },
    'relay ready',
  );
  lifeline.ready();

  const transport = running;
  statsTimer = setInterval(() => log.debug({ server: server.stats(), transport: transport.stats() }, 'stats'), 60_000);
  statsTimer.unref();
}

// Run only when executed, not when imported (tests import pickTransport).
if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  await main();
}
