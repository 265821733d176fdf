// The sidecar as one object: start() brings up the XDP program, the UDP
// sockets, the link to the relay and the admin server, in that order, and
// wires them to the telemetry agent; stop() takes them down in the order that
// never leaves the kernel relaying for a binding nobody owns. The entry point
// (src/cmd/sidecar.ts) only loads config, builds the log hub and telemetry,
// and maps the outcome to signals and exit codes.
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { linkSocketPath, stateDir } from '../config/paths.ts';
import { resolveUser } from '../config/users.ts';
import { chooseRelayAddresses, describeRelayAddresses, type RelayAddresses } from '../net/relay-address.ts';
import { filterTexts, formatLogFilter, type LogHub } from '../shared/logger.ts';
import type { Telemetry } from '../telemetry/index.ts';
import { LinkServer, LinkServerError, type RelayCounters, type RelayedAddresses } from '../link/index.ts';
import { UdpSockets } from './sockets.ts';
import { ChannelTable, UserspaceRelayer, bothMaps } from './fastpath.ts';
import { RelayBridge } from './sockets/relay-bridge.ts';
import { relayLimits } from './sockets/relay-guard.ts';
import { ensureAdminToken, startAdmin, statusDocument, type Admin, type Readiness, type SidecarStatus } from './admin.ts';
import { peerCredentials } from './peercred.ts';
import { SecurityEvents } from './security.ts';
import { startEbpf, KernelBindings, EbpfStartError, type EbpfState } from './ebpf.ts';
import { startResyncGrace, type ResyncGrace } from './resync-grace.ts';
import { createDrain, type Drain } from './drain.ts';
import { openDiagnostics, type DiagnosticsReader } from './bpf/perf.ts';
import type { XdpRouter } from './bpf/router.ts';
import { REASON_NAMES, PATH_NAMES } from './bpf/abi.ts';

export interface SidecarDeps {
  version: string;
  logHub: LogHub;
  /** Started by the caller, which also shuts it down after stop() (it outlives a failed start). */
  telemetry: Telemetry;
}

/**
 * Start-up failed for a reason the operator must fix (eBPF required but not
 * loadable, listen port taken, link socket unusable). The fatal line is
 * already logged and what start() had opened is closed.
 */
export class SidecarStartError extends Error {
  readonly code = 'TURNPIKE_SIDECAR_START';
}

/** The flags /status reports. */
const STATUS_FLAGS = ['stream-logs'];

/** What a started sidecar holds, closed by stop(). */
interface Parts {
  router: XdpRouter | undefined;
  sockets: UdpSockets;
  link: LinkServer;
  bridge: RelayBridge;
  grace: ResyncGrace | undefined;
  diagnostics: DiagnosticsReader | undefined;
  statsTimer: NodeJS.Timeout;
  stopFollowingLogFilter: () => void;
  admin: Admin;
  drain: Drain;
}

export class Sidecar {
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly parts: Parts,
    /** Settles when a drain is over (the entry point then stops the sidecar). */
    readonly drained: Promise<void>,
    private readonly startDrain: (reason: string) => void,
  ) {}

  /** Starts a graceful drain (see drain.ts); `drained` settles when it is over. */
  drain(reason: string): void {
    this.startDrain(reason);
  }

  static async start(config: Config, deps: SidecarDeps): Promise<Sidecar> {
    const { logHub: hub, telemetry, version } = deps;
    const log = hub.get('sidecar');
    const socketPath = linkSocketPath(config);

    let ebpf;
    try {
      ebpf = startEbpf(config, hub.get('bpf'));
    } catch (e) {
      if (e instanceof EbpfStartError) {
        log.fatal({ ebpf: config.ebpf, interface: config.interface, reason: e.message }, 'cannot start');
        throw new SidecarStartError(e.message);
      }
      throw e;
    }
    const { router, state } = ebpf;
    telemetry.flags.setProperties({ datapath: state.datapath });
    telemetry.metrics.setDatapath(state.datapath, state.attachMode);

    let bridge: RelayBridge | undefined;
    // Bound channels the kernel did not relay are relayed here, by the XDP program's rules (fastpath.ts).
    const fastPath = new UserspaceRelayer(new ChannelTable(config.listenPort), {
      listenPort: config.listenPort,
      portMin: config.portRange.min,
      portMax: config.portRange.max,
      mtu: config.mtu,
    });
    const sockets = new UdpSockets({
      listenPort: config.listenPort,
      listenAddresses: config.listenAddresses,
      logger: hub.get('sockets'),
      onPacket: (local, remote, data) => bridge?.packetIn(local, remote, data),
      fastPath: fastPath.handle,
      batchedIo: config.batchedIo,
      udpGso: config.udpGso,
      mtu: config.mtu,
    });
    try {
      await sockets.listenAll();
    } catch (e) {
      log.fatal({ port: config.listenPort, addresses: config.listenAddresses, reason: (e as Error).message }, 'cannot bind the listen port');
      router?.close({ unpin: !config.keepPinned });
      throw new SidecarStartError((e as Error).message);
    }

    // The relay has no network of its own: it relays from the addresses chosen here, named in our HELLO.
    const relayAddresses = await chooseRelayAddresses(config, log);
    fastPath.attach((target, data, start, end) => sockets.forward(target, data, start, end), {
      listenPort: sockets.boundAddresses()[0]?.port ?? config.listenPort,
      relayV4: state.relayV4 ?? relayAddresses.v4.address,
      relayV6: state.relayV6 ?? relayAddresses.v6.address,
    });
    const security = new SecurityEvents(hub.get('security'), (rule) => telemetry.metrics.onSecurityRefusal(rule));
    const link = new LinkServer({
      path: socketPath,
      software: `turnpike-sidecar/${version}`,
      logger: hub.get('link'),
      gid: config.relayGid,
      relayAddresses: helloAddresses(relayAddresses),
      checkPeer: relayPeerCheck(config, log),
    });
    const bindingLog = { log: hub.get('session'), budget: hub.perSource };
    const kernelBindings = router ? new KernelBindings(router, hub.get('bpf'), bindingLog) : undefined;
    link.on('refused', (detail) => security.refuse({ rule: 'link-peer', detail }));
    bridge = new RelayBridge({
      server: link,
      sockets,
      channels: bothMaps(fastPath.table, kernelBindings?.channels),
      limits: relayLimits(config),
      security,
      logger: hub.get('link'),
      graceMs: config.relayGraceMs,
    });
    try {
      await link.listen();
    } catch (e) {
      const reason = e instanceof LinkServerError ? e.message : (e as Error).message;
      log.fatal({ socket: socketPath, reason }, 'cannot listen on the link socket');
      await sockets.close();
      router?.close({ unpin: false });
      throw new SidecarStartError(reason);
    }

    const relay = forwardRelayTelemetry(bridge, link, telemetry, hub);

    const grace = router
      ? startResyncGrace({
          bindings: router,
          graceMs: config.resyncGraceMs,
          relayConnected: () => bridge.stats().relayConnected,
          log,
        })
      : undefined;
    bridge.on('resynced', () => grace?.resynced());

    const diagnostics = router ? openKernelTelemetry(router, config, telemetry, hub) : undefined;

    const pollDrops = dropPoller(sockets, (dropped) => telemetry.metrics.onSocketDrops(dropped));
    const statsTimer = setInterval(() => {
      const ls = link.current?.stats();
      telemetry.metrics.onLinkStats({ queueDepth: ls?.queueFrames ?? 0, droppedFrames: (ls?.packetsDropped ?? 0) + (ls?.telemetryDropped ?? 0) });
      telemetry.metrics.onMapStats(kernelBindings?.stats() ?? {});
      telemetry.metrics.onSidecarRelayed(fastPath.stats().paths);
      pollDrops();
    }, 1000);
    statsTimer.unref();

    const currentStatus = (): SidecarStatus => ({
      version,
      instanceId: telemetry.identity.id,
      ebpf: state,
      maps: kernelBindings?.stats() ?? {},
      kernel: router ? { paths: router.readPathStats(), reasons: router.readReasons() } : null,
      sockets: sockets.stats(),
      relay: bridge.stats(),
      relayCounters: relay.counters(),
      link: link.current?.stats() ?? null,
      flags: Object.fromEntries(STATUS_FLAGS.map((f) => [f, telemetry.flags.isEnabled(f)])),
      security: security.stats(),
      fastPath: fastPath.stats(),
    });
    const drain = createDrain({
      sendToRelay: (f) => link.current?.send(f) ?? false,
      onRelayOpen: (fn) => bridge.on('relay-open', fn),
      allocations: () => relay.counters()?.allocations,
      alternate: config.alternateServer,
      deadlineMs: config.drainDeadline * 1000,
      log,
    });
    let drained: () => void = () => {};
    const onDrained = new Promise<void>((resolve) => (drained = resolve));
    const startDrain = (reason: string) => void drain.start(reason).then(drained);
    const adminToken = ensureAdminToken(stateDir(config));
    if (adminToken.created) log.info({ file: adminToken.file }, 'created the admin token (state-changing admin requests need it)');
    const admin = await startAdmin({
      token: adminToken.token,
      security,
      host: config.admin.host,
      port: config.admin.port,
      logHub: hub,
      metrics: telemetry.metrics,
      log: hub.get('admin'),
      ready: () => readiness(config, state, bridge.stats().relayConnected, drain.active),
      drain: () => startDrain('POST /drain'),
      status: () => statusDocument(currentStatus()),
    });
    log.info(
      {
        version,
        datapath: state.datapath,
        interface: state.interface,
        listen: sockets.boundAddresses(),
        portRange: `${config.portRange.min}-${config.portRange.max}`,
        socket: socketPath,
        relayAddresses: describeRelayAddresses(relayAddresses),
        admin: `${admin.host}:${admin.port}`,
        paths: router ? PATH_NAMES.length : 0,
        reasons: router ? REASON_NAMES.length : 0,
      },
      'sidecar ready',
    );
    return new Sidecar(config, log, {
      router,
      sockets,
      link,
      bridge,
      grace,
      diagnostics,
      statsTimer,
      stopFollowingLogFilter: relay.stopFollowingLogFilter,
      admin,
      drain,
    }, onDrained, startDrain);
  }

  /** Where the admin server listens (port 0 in the config: the one the kernel chose). */
  get adminAddress(): { host: string; port: number } {
    return { host: this.parts.admin.host, port: this.parts.admin.port };
  }

  /**
   * Admin first (no more requests), then the relay link (no more map writes)
   * and the map writes already queued, then the kernel side, then the
   * sockets. Telemetry is the caller's, shut down after this resolves.
   * Calling it again returns the same promise. The kernel side:
   * - a stop (SIGTERM, SIGINT, a drain that ended): nobody will own the
   *   bindings, so they are cleared; the program is detached and unpinned
   *   unless keepPinned (then it stays attached, relaying nothing);
   * - `upgrade` (SIGUSR2): program, maps and bindings stay pinned; the next
   *   sidecar adopts them and the relay re-announces its state to it within
   *   resyncGraceMs, else that sidecar clears them (resync-grace.ts).
   */
  stop(signal?: string, opts: { upgrade?: boolean } = {}): Promise<void> {
    this.stopping ??= this.shutdown(signal, opts.upgrade ?? false);
    return this.stopping;
  }

  private async shutdown(signal: string | undefined, upgrade: boolean): Promise<void> {
    const { config, parts } = this;
    const { router } = parts;
    this.log.info({ signal, keepPinned: config.keepPinned, upgrade, bindings: upgrade ? 'kept for the next sidecar' : 'cleared' }, 'shutting down');
    parts.grace?.cancel();
    parts.drain.cancel();
    clearInterval(parts.statsTimer);
    parts.stopFollowingLogFilter();
    await parts.admin.close().catch(() => {});
    await parts.link.close().catch(() => {});
    // The relay's state goes with this process: nothing waits for it any more.
    parts.bridge.stopGrace();
    await parts.bridge.settled();
    await parts.diagnostics?.close().catch(() => {});
    if (router) {
      if (!upgrade) router.clearBindings();
      router.close({ unpin: !upgrade && !config.keepPinned });
    }
    await parts.sockets.close();
  }
}

/** Sockets whose drop counters one turn reads: ~1 us each, so a turn's share stays well under the 1 ms RTT budget. */
const DROP_POLL_SLICE = 128;

/**
 * A pass over every socket's kernel drop counter, a slice per turn (packets
 * queued meanwhile are read between slices), then `done` with the totals. A
 * call while a pass is under way does nothing.
 */
function dropPoller(sockets: UdpSockets, done: (dropped: Record<string, number>) => void): () => void {
  let running = false;
  const slice = () => {
    if (!sockets.pollDrops(DROP_POLL_SLICE)) {
      setImmediate(slice);
      return;
    }
    running = false;
    done(sockets.stats().kernelDropped);
  };
  return () => {
    if (running) return;
    running = true;
    slice();
  };
}

/** The relayed addresses as the HELLO carries them (a family without one is left out). */
function helloAddresses(r: RelayAddresses): RelayedAddresses {
  return { ...(r.v4.address ? { v4: r.v4.address } : {}), ...(r.v6.address ? { v6: r.v6.address } : {}) };
}

/**
 * Who may be the relay: a process of the relay's user (the launcher's uid, or
 * relayUser looked up), or of our own user, which could already do all we do.
 * Anything else on the link socket is refused, whatever the file modes let in.
 */
function relayPeerCheck(config: Pick<Config, 'relayUid' | 'relayUser'>, log: Logger): (socket: Socket) => string | null {
  const relayUid = config.relayUid ?? resolveUser(config.relayUser)?.uid;
  const ownUid = process.getuid?.() ?? -1;
  if (relayUid === undefined) log.warn({ relayUser: config.relayUser }, 'relay user not found: the link admits only processes of our own user');
  const who = relayUid === undefined ? `our own uid ${ownUid}` : `the relay user ${config.relayUser} (uid ${relayUid}) or our own uid ${ownUid}`;
  return (socket) => {
    let uid: number;
    let pid: number;
    try {
      ({ uid, pid } = peerCredentials(socket));
    } catch (e) {
      return `cannot tell who connected: ${(e as Error).message}`;
    }
    return uid === relayUid || uid === ownUid ? null : `process ${pid} of uid ${uid} connected to the link; only ${who} may`;
  };
}

/** Ready when a relay is connected and, if eBPF is required, the program is attached. */
function readiness(config: Pick<Config, 'ebpf'>, state: EbpfState, relayConnected: boolean, draining: boolean): Readiness {
  const reasons: string[] = [];
  if (draining) reasons.push('draining');
  if (!relayConnected) reasons.push('relay not connected');
  if (config.ebpf === 'required' && state.datapath !== 'xdp') reasons.push('eBPF required but not attached');
  // auto accepts the userspace fallback (it warned at start; /status says why).
  return { ready: reasons.length === 0, reasons, datapath: state.datapath };
}

/**
 * The relay's telemetry over the link: its log lines and counters become our
 * logs, Sentry items and metrics, and its module loggers follow our filter.
 */
function forwardRelayTelemetry(bridge: RelayBridge, link: LinkServer, telemetry: Telemetry, hub: LogHub) {
  bridge.on('log', (_level, _module, json) => telemetry.relayLog(json));
  // The relay's own counters (ServerStats), as last reported; /status shows them.
  let relayCounters: RelayCounters | null = null;
  bridge.on('counters', (counters) => {
    relayCounters = counters;
    telemetry.metrics.onRelayStats(counters);
  });
  bridge.on('relay-close', () => {
    relayCounters = null;
    telemetry.metrics.relayDisconnected();
  });

  // The relay's module loggers follow our filters (POST /log, stream-logs): sent when it connects and on every change.
  const sendLogFilter = () => void link.current?.send({ kind: 'log-filter', ...filterTexts(hub) });
  bridge.on('relay-open', sendLogFilter);
  return { counters: () => relayCounters, stopFollowingLogFilter: hub.onChange(sendLogFilter) };
}

/** Perf diagnostics and per-CPU counters of the XDP program, as metrics; diagnostics are optional. */
function openKernelTelemetry(router: XdpRouter, config: Pick<Config, 'perfPages'>, telemetry: Telemetry, hub: LogHub): DiagnosticsReader | undefined {
  const bpfLog = hub.get('bpf');
  let diagnostics: DiagnosticsReader | undefined;
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
  return diagnostics;
}
