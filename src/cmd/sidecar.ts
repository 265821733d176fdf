// turnpike-sidecar: the privileged half of the pair. Owns the UDP sockets,
// the XDP program and its maps, the link to the relay, all telemetry and the
// admin HTTP server. It never parses TURN messages: packets it receives go to
// the relay as they are, and the relay's decisions come back as frames.
// This entry point loads the configuration, starts telemetry and the Sidecar
// (src/sidecar/sidecar.ts), and turns signals and failures into exit codes.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { loadConfig, ConfigError } from '../config/load.ts';
import { stateDir } from '../config/paths.ts';
import { createLogHub } from '../shared/logger.ts';
import { startTelemetry } from '../telemetry/index.ts';
import { Sidecar, SidecarStartError } from '../sidecar/sidecar.ts';
import { watchLifeline } from './lifeline.ts';
import { EXIT_UPGRADE } from './child-exit.ts';
import { setSlice } from './sched-slice.ts';

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url).pathname.replace('/dist/package.json', '/package.json'), 'utf8')) as { version: string }).version;

/** After a standby's takeover too: the launcher's SCHED_IDLE -> SCHED_OTHER resets any slice. */
function applySlice(sliceUs: number, log: Logger): void {
  if (sliceUs === 0) return;
  const r = setSlice(sliceUs);
  if (r.ok) log.info({ sliceUs: r.sliceUs }, 'event loop runs with a short scheduler slice');
  else log.info({ sliceUs, errno: r.errno, reason: r.reason }, 'scheduler slice not set; the kernel default applies');
}

async function main(): Promise<number> {
  let loaded;
  try {
    loaded = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`turnpike-sidecar: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const { config } = loaded;
  const hub = createLogHub({ filter: config.log, name: 'turnpike-sidecar', base: { process: 'sidecar' }, perSourceRate: config.sessionLogRate });
  // Started by the launcher: stop with it, however it ended (SIGKILL included).
  let launcherGone = false;
  let onLauncherGone = () => void (launcherGone = true);
  const lifeline = watchLifeline(config.lifelineFd, () => onLauncherGone());
  // A warm standby has loaded its code and waits here, holding nothing, until
  // the launcher puts it in place of a sidecar that exited.
  if (config.awaitGo) {
    if (!(await lifeline.go())) return 0;
    hub.get('sidecar').info('warm standby sidecar taking over');
  }
  applySlice(config.schedSliceUs, hub.get('sidecar'));
  const telemetry = await startTelemetry({ config, version, stateDir: stateDir(config), logHub: hub });

  let sidecar: Sidecar;
  try {
    sidecar = await Sidecar.start(config, { version, logHub: hub, telemetry });
  } catch (e) {
    if (e instanceof SidecarStartError) {
      // The reason is logged; what the sidecar had opened is closed. The launcher stops the pair on it.
      lifeline.fatal(e.message);
      await telemetry.shutdown();
      return 1;
    }
    throw e;
  }

  lifeline.ready();
  return new Promise<number>((resolve) => {
    let stopping = false;
    let draining = false;
    const stop = async (signal: string, upgrade = false) => {
      if (stopping) return;
      stopping = true;
      await sidecar.stop(signal, { upgrade });
      await telemetry.shutdown().catch(() => {});
      resolve(upgrade ? EXIT_UPGRADE : 0);
    };
    // With a drain deadline, SIGTERM drains first (rolling upgrades); a second SIGTERM, or SIGINT, stops at once.
    process.on('SIGTERM', () => (config.drainDeadline > 0 && !draining ? ((draining = true), sidecar.drain('SIGTERM')) : void stop('SIGTERM')));
    process.on('SIGINT', () => void stop('SIGINT'));
    // An upgrade: stop now, leaving the kernel path and its bindings for the next sidecar (exit EXIT_UPGRADE: the launcher starts it at once).
    process.on('SIGUSR2', () => void stop('SIGUSR2', true));
    void sidecar.drained.then(() => stop('drained'));
    onLauncherGone = () => void stop('launcher gone');
    if (launcherGone) onLauncherGone();
  });
}

main().then(
  (code) => {
    process.exitCode = code;
    // Let pino flush, then leave even if a library keeps a handle open.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (e) => {
    process.stderr.write(`turnpike-sidecar: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
