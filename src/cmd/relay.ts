// turnpike-relay: the TURN server process. Loads the configuration, settles
// defaults (relayed addresses, credentials), builds the sans-IO TurnServer and
// runs it behind one transport, chosen here and only here:
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
import { chooseRelayAddresses, ensureCredentials } from '../relay/defaults.ts';
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

const fmt = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

async function main(): Promise<void> {
  let config: Config;
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

  const creds = ensureCredentials(config, stateDir(config), log);
  if (creds.generatedSecret) config = { ...config, restSecret: creds.generatedSecret };
  const relay = await chooseRelayAddresses(config, log);

  const server = new TurnServer(
    buildServerOptions(config, {
      relayAddresses: { v4: relay.v4.address, v6: relay.v6.address },
      logger: logs.get('server'),
      sessionLog: { logger: logs.get('session'), budget: logs.perSource },
    }),
  );
  let running: RunningTransport;
  try {
    running = await (await transportStarter(transportKind))({ config, server, logs, logDestination });
  } catch (e) {
    log.fatal({ err: e, transport: transportKind }, 'transport failed to start');
    // Give pino's asynchronous destination a moment to flush the reason.
    setTimeout(() => process.exit(1), 100);
    return;
  }

  log.info(
    {
      ...running.describe(),
      relayAddresses: {
        v4: relay.v4.address ? `${relay.v4.address} (${relay.v4.source})` : 'unavailable',
        v6: relay.v6.address ? `${relay.v6.address} (${relay.v6.source})` : 'unavailable',
      },
      portRange: `${config.portRange.min}-${config.portRange.max}`,
      realm: config.realm,
      auth: authSources(config),
      allowedPeers: config.allowedPeers,
      deniedPeers: config.deniedPeers,
    },
    'relay ready',
  );

  const statsTimer = setInterval(() => log.debug({ server: server.stats(), transport: running.stats() }, 'stats'), 60_000);
  statsTimer.unref();

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    clearInterval(statsTimer);
    await running.close();
    log.info({ signal, server: server.stats(), transport: running.stats() }, 'relay stopped');
    setTimeout(() => process.exit(0), 50);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

// Run only when executed, not when imported (tests import pickTransport).
if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  await main();
}
