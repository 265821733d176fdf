// turnpike-sidecar: the privileged half of the pair. Owns the UDP sockets,
// the XDP program and its maps, the link to the relay, all telemetry and the
// admin HTTP server. It never parses TURN messages: packets it receives go to
// the relay as they are, and the relay's decisions come back as frames.
import { readFileSync } from 'node:fs';
import { loadConfig, ConfigError } from '../config/load.ts';
import { linkSocketPath, stateDir } from '../config/paths.ts';
import { createLogHub, formatLogFilter } from '../shared/logger.ts';
import { startTelemetry } from '../telemetry/index.ts';
import { LinkServer, LinkServerError } from '../link/index.ts';
import { UdpSockets } from '../sidecar/sockets.ts';
import { RelayBridge } from '../sidecar/sockets/relay-bridge.ts';
import { startAdmin } from '../sidecar/admin.ts';
import { startEbpf, kernelChannelMap, EbpfStartError } from '../sidecar/ebpf.ts';
import { openDiagnostics, type DiagnosticsReader } from '../sidecar/bpf/perf.ts';
import { BINDING_MAPS } from '../sidecar/bpf/router.ts';
import { REASON_NAMES, PATH_NAMES } from '../sidecar/bpf/abi.ts';

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url).pathname.replace('/dist/package.json', '/package.json'), 'utf8')) as { version: string }).version;

/**
 * How long pinned bindings from an earlier sidecar wait for the relay to
 * re-announce before they are cleared. TURNPIKE_RESYNC_GRACE_MS overrides it
 * (tests; not part of the configuration contract).
 */
const RESYNC_GRACE_MS = Number(process.env.TURNPIKE_RESYNC_GRACE_MS) > 0 ? Number(process.env.TURNPIKE_RESYNC_GRACE_MS) : 15_000;

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
  const hub = createLogHub({ filter: config.log, name: 'turnpike-sidecar', base: { process: 'sidecar' } });
  const log = hub.get('sidecar');
  const dir = stateDir(config);
  const socketPath = linkSocketPath(config);

  const telemetry = await startTelemetry({ config, version, stateDir: dir, logHub: hub });

  let ebpf;
  try {
    ebpf = startEbpf(config, hub.get('bpf'));
  } catch (e) {
    if (e instanceof EbpfStartError) {
      log.fatal({ ebpf: config.ebpf, interface: config.interface, reason: e.message }, 'cannot start');
      await telemetry.shutdown();
      return 1;
    }
    throw e;
  }
  const { router, state } = ebpf;

  let bridge: RelayBridge | undefined;
  const sockets = new UdpSockets({
    listenPort: config.listenPort,
    listenAddresses: config.listenAddresses,
    logger: hub.get('sockets'),
    onPacket: (local, remote, data) => bridge?.packetIn(local, remote, data),
  });
  try {
    await sockets.listenAll();
  } catch (e) {
    log.fatal({ port: config.listenPort, addresses: config.listenAddresses, reason: (e as Error).message }, 'cannot bind the listen port');
    router?.close({ unpin: !config.keepPinned });
    await telemetry.shutdown();
    return 1;
  }

  const relayGid = process.env.TURNPIKE_RELAY_GID ? Number(process.env.TURNPIKE_RELAY_GID) : undefined;
  const link = new LinkServer({ path: socketPath, software: `turnpike-sidecar/${version}`, logger: hub.get('link'), gid: relayGid });
  bridge = new RelayBridge({ server: link, sockets, channels: router ? kernelChannelMap(router) : undefined, logger: hub.get('link') });
  try {
    await link.listen();
  } catch (e) {
    const reason = e instanceof LinkServerError ? e.message : (e as Error).message;
    log.fatal({ socket: socketPath, reason }, 'cannot listen on the link socket');
    await sockets.close();
    router?.close({ unpin: false });
    await telemetry.shutdown();
    return 1;
  }

  // Relay log lines and counters arrive as frames; they become our logs, Sentry items and metrics.
  bridge.on('log', (_level, _module, json) => telemetry.relayLog(json));
  // The relay's own counters (ServerStats), as last reported; /status shows them.
  let relayCounters: unknown = null;
  bridge.on('counters', (counters) => {
    relayCounters = counters;
    telemetry.metrics.onRelayStats(counters);
  });
  bridge.on('relay-close', () => {
    relayCounters = null;
    telemetry.metrics.relayDisconnected();
  });

  // The relay's module loggers follow our filter (POST /log): sent when it connects and on every change.
  const sendLogFilter = () => void link.current?.send({ kind: 'log-filter', filter: formatLogFilter(hub.filter()) });
  bridge.on('relay-open', sendLogFilter);
  hub.onChange(sendLogFilter);

  // Pinned bindings from an earlier sidecar keep the fast path running until
  // the relay re-announces; if it never does, they must not outlive it.
  let resynced = false;
  bridge.on('resynced', () => (resynced = true));
  if (router && router.bindingCount() > 0) {
    log.info({ bindings: router.bindingCount() }, 'pinned bindings found; waiting for the relay to re-announce its state');
    setTimeout(() => {
      if (!resynced && !bridge?.stats().relayConnected) {
        const n = router.clearBindings();
        log.warn({ cleared: n, graceMs: RESYNC_GRACE_MS }, 'relay did not re-announce its state: pinned bindings cleared');
      }
    }, RESYNC_GRACE_MS).unref();
  }

  let diagnostics: DiagnosticsReader | undefined;
  if (router) {
    const bpfLog = hub.get('bpf');
    try {
      diagnostics = openDiagnostics(router, {
        pages: 2 ** Math.round(Math.log2(config.perfPages)),
        onEvent: (ev, cpu) =>
          telemetry.metrics.onDiagEvent({ kind: ev.kind, reason: ev.reason, ret: ev.ret, path: ev.path, cpu }),
        onLost: (cpu, n) => telemetry.metrics.onPerfLost(n, cpu),
        log: bpfLog,
      });
    } catch (e) {
      bpfLog.warn({ reason: (e as Error).message }, 'perf diagnostics unavailable');
    }
    telemetry.metrics.setKernelReader(() => {
      const paths: Record<string, { packets: bigint; bytes: bigint }> = {};
      for (const p of router.readPathStats()) paths[p.path] = { packets: p.packets, bytes: p.bytes };
      return { paths, reasons: router.readReasons() };
    });
  }

  const mapStats = () => {
    if (!router) return {};
    const n = router.bindingCount();
    return Object.fromEntries(BINDING_MAPS.map((m) => [m, { entries: n, capacity: router.maxEntries(m) }]));
  };
  const statsTimer = setInterval(() => {
    const ls = link.current?.stats();
    telemetry.metrics.onLinkStats({ queueDepth: ls?.queueFrames ?? 0, droppedFrames: (ls?.packetsDropped ?? 0) + (ls?.telemetryDropped ?? 0) });
    telemetry.metrics.onMapStats(mapStats());
  }, 1000);
  statsTimer.unref();

  const admin = await startAdmin({
    host: config.admin.host,
    port: config.admin.port,
    logHub: hub,
    metrics: telemetry.metrics,
    log: hub.get('admin'),
    ready: () => {
      const reasons: string[] = [];
      if (!bridge?.stats().relayConnected) reasons.push('relay not connected');
      if (config.ebpf === 'required' && state.datapath !== 'xdp') reasons.push('eBPF required but not attached');
      // auto accepts the userspace fallback (it warned at start; /status says why).
      return { ready: reasons.length === 0, reasons };
    },
    status: () => ({
      version,
      instanceId: telemetry.identity.id,
      mode: state.datapath,
      ebpf: state,
      interface: state.interface ?? null,
      maps: mapStats(),
      kernel: router ? { paths: router.readPathStats(), reasons: router.readReasons() } : null,
      sockets: sockets.stats(),
      relay: bridge?.stats(),
      relayCounters,
      link: link.current?.stats() ?? null,
      flags: Object.fromEntries(['stream-logs'].map((f) => [f, telemetry.flags.isEnabled(f)])),
    }),
  });
  log.info(
    {
      version,
      datapath: state.datapath,
      interface: state.interface,
      listen: sockets.boundAddresses(),
      portRange: `${config.portRange.min}-${config.portRange.max}`,
      socket: socketPath,
      admin: `${admin.host}:${admin.port}`,
      paths: router ? PATH_NAMES.length : 0,
      reasons: router ? REASON_NAMES.length : 0,
    },
    'sidecar ready',
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal, keepPinned: config.keepPinned }, 'shutting down');
      clearInterval(statsTimer);
      await admin.close().catch(() => {});
      await link.close().catch(() => {});
      await bridge?.settled();
      await diagnostics?.close().catch(() => {});
      if (router) {
        if (config.keepPinned) router.close();
        else {
          router.clearBindings();
          router.close({ unpin: true });
        }
      }
      await sockets.close();
      await telemetry.shutdown().catch(() => {});
      resolve(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
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
