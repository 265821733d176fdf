// eBPF set-up for the sidecar: mode off | auto | required, the interfaces
// (configured, else those of the default routes) and attach modes, the
// config map written from the relay's actual port range and the
// interfaces' addresses, and the next-hop mirror that feeds the program the
// kernel's routes and neighbours. `auto` tries native attach, then skb,
// then falls back to userspace, logging each step with its reason;
// `required` fails start-up with the reason if the asked datapath cannot run.
import { existsSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { pinDir } from '../config/paths.ts';
import { BINDING_MAPS, XdpRouter, type AttachMode, type ChannelBinding as KernelBinding } from './bpf/router.ts';
import type { MapStats } from '../telemetry/index.ts';
import { BpfError } from './bpf/errors.ts';
import type { ChannelMap } from './sockets/relay-bridge.ts';
import type { ChannelBinding } from '../shared/binding.ts';
import { isLinkLocalV6, isWildcard } from '../shared/endpoint.ts';
import { bindingFields } from '../shared/log-fields.ts';
import { NextHopMirror, type MirrorStats } from './next-hops/mirror.ts';
import { defaultRouteInterfaces } from './next-hops/plan.ts';
import { kernelRoutesAndLinks } from './next-hops/kernel-view.ts';


/** One attach the sidecar tried, in order, and how it went. */
export interface AttachAttempt {
  interface: string;
  mode: AttachMode;
  ok: boolean;
  reason?: string;
}

/** The sidecar's eBPF state as /status shows it (the fields after `relayV6` are absent from states built by hand). */
export interface EbpfState {
  requested: Config['ebpf'];
  /** What runs: 'xdp' when the program is attached, else 'userspace'. */
  datapath: 'xdp' | 'userspace';
  /** The first interface the program runs on (see interfaces). */
  interface: string | undefined;
  attachMode: Config['xdpMode'] | undefined;
  /** Why the datapath is userspace although eBPF was not off. */
  reason: string | undefined;
  relayV4: string | undefined;
  relayV6: string | undefined;
  /** Every interface the program runs on. */
  interfaces?: string[];
  /** How the interfaces were chosen. */
  interfaceSource?: 'configured' | 'default-route' | undefined;
  /** Each attach tried, with its outcome. */
  attempts?: AttachAttempt[];
  /** Where the program's next hops come from: the kernel's tables as the mirror keeps them (live figures), or only the FIB. */
  nextHops?: ({ source: 'kernel-mirror' } & MirrorStats) | { source: 'fib-only'; reason: string } | undefined;
}

type StartState = EbpfState & Required<Pick<EbpfState, 'interfaces' | 'attempts'>>;

export class EbpfStartError extends Error {
  readonly code = 'TURNPIKE_EBPF';
}

/** The object next to the sources, whether we run from src/ (tsx) or dist/src/. */
function objectPath(config: Pick<Config, 'bpfObject'>): string {
  // Development override (a debug build of the program); not part of the config contract.
  if (config.bpfObject) return config.bpfObject;
  const candidates = [
    new URL('../../bpf/turn_router.o', import.meta.url),
    new URL('../../../bpf/turn_router.o', import.meta.url),
  ].map((u) => fileURLToPath(u));
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

/** The interface's own addresses: what packets to the relay carry as destination. */
export function interfaceAddresses(ifname: string, config: Pick<Config, 'listenAddresses' | 'publicIpv4' | 'publicIpv6'>): {
  v4?: string;
  v6?: string;
} {
  const addrs = networkInterfaces()[ifname] ?? [];
  const pick = (family: 'IPv4' | 'IPv6', preferred: (string | undefined)[]) => {
    const own = addrs.filter((a) => a.family === family && !(family === 'IPv6' && isLinkLocalV6(a.address)));
    for (const p of preferred) if (p && own.some((a) => a.address === p)) return p;
    return own[0]?.address;
  };
  const specific = config.listenAddresses.filter((a) => !isWildcard(a));
  return {
    v4: pick('IPv4', [...specific, config.publicIpv4]),
    v6: pick('IPv6', [...specific, config.publicIpv6]),
  };
}

function interfaceMtu(ifname: string, fallback: number): number {
  try {
    return Number(readFileSync(`/sys/class/net/${ifname}/mtu`, 'utf8').trim()) || fallback;
  } catch {
    return fallback;
  }
}

/** The interfaces to run on: the configured one, else those of the default routes (IPv4's first); throws why there is none. */
function chooseInterfaces(config: Pick<Config, 'interface'>, log: Logger): { names: string[]; byFamily: { 4?: string; 6?: string }; source: 'configured' | 'default-route' } {
  if (config.interface) return { names: [config.interface], byFamily: { 4: config.interface, 6: config.interface }, source: 'configured' };
  let found, skipped;
  try {
    const { routes, links } = kernelRoutesAndLinks();
    ({ found, skipped } = defaultRouteInterfaces(routes, links));
  } catch (e) {
    throw new Error(`no interface is set (TURNPIKE_INTERFACE) and the routing table could not be read: ${(e as Error).message}`);
  }
  for (const why of skipped) log.warn({ reason: why }, 'not attaching to a default route interface');
  if (found.length === 0) {
    throw new Error(`no interface is set (TURNPIKE_INTERFACE) and no default route leaves by an Ethernet interface${skipped.length ? ` (${skipped.join('; ')})` : ''}`);
  }
  const byFamily = Object.fromEntries(found.map((f) => [f.family, f.name])) as { 4?: string; 6?: string };
  const names = [...new Set(found.map((f) => f.name))];
  log.info({ interfaces: names, ipv4: byFamily[4], ipv6: byFamily[6] }, 'no interface set: using the default routes\' interfaces');
  return { names, byFamily, source: 'default-route' };
}

/** The attach modes to try: the configured one; under auto, skb after native. */
function attachModes(config: Pick<Config, 'ebpf' | 'xdpMode'>): AttachMode[] {
  return config.ebpf === 'auto' && config.xdpMode === 'native' ? ['native', 'skb'] : [config.xdpMode];
}

export function startEbpf(config: Config, log: Logger): { router: XdpRouter | undefined; state: EbpfState } {
  const state: StartState = {
    requested: config.ebpf,
    datapath: 'userspace',
    interface: config.interface,
    interfaces: [],
    interfaceSource: undefined,
    attachMode: undefined,
    attempts: [],
    reason: undefined,
    relayV4: undefined,
    relayV6: undefined,
    nextHops: undefined,
  };
  const fallback = (reason: string) => {
    if (config.ebpf === 'required') throw new EbpfStartError(`eBPF is required but ${reason}`);
    state.reason = reason;
    if (config.ebpf === 'auto') log.warn({ reason }, 'eBPF fast path unavailable: relaying in userspace');
    return { router: undefined, state };
  };
  if (config.ebpf === 'off') {
    state.reason = 'ebpf=off';
    log.info('eBPF off: relaying in userspace');
    return { router: undefined, state };
  }
  if (process.platform !== 'linux') return fallback('not running on Linux');
  let chosen;
  try {
    chosen = chooseInterfaces(config, log);
  } catch (e) {
    return fallback((e as Error).message);
  }
  state.interfaceSource = chosen.source;
  const own = chosen.names.map((n) => interfaceAddresses(n, config));
  const pick = (f: 4 | 6) => {
    const first = chosen.byFamily[f];
    return (first ? interfaceAddresses(first, config)[`v${f}`] : undefined) ?? own.find((a) => a[`v${f}`])?.[`v${f}`];
  };
  const addrs = { v4: pick(4), v6: pick(6) };
  if (!addrs.v4 && !addrs.v6) return fallback(`interface ${chosen.names.join(', ')} does not exist or has no address`);
  const path = objectPath(config);
  if (!existsSync(path)) return fallback(`the XDP object ${path} is not built (make -C bpf)`);

  let router: XdpRouter | undefined;
  try {
    router = XdpRouter.load({ objectPath: path, mapCapacity: config.mapCapacity, pinDir: pinDir(config), log });
    // Written at every load: the kernel's array slot exists zeroed and must never be trusted as "unchanged".
    router.writeConfig({
      listenPort: config.listenPort,
      portMin: config.portRange.min,
      portMax: config.portRange.max,
      relayV4: addrs.v4,
      relayV6: addrs.v6,
      mtu: Math.min(...chosen.names.map((n) => interfaceMtu(n, config.mtu))),
      diagPerSec: 10,
    });
    const failures: string[] = [];
    for (const ifname of chosen.names) {
      const failure = attachOne(router, ifname, attachModes(config), state, log);
      if (failure) failures.push(failure);
    }
    if (state.interfaces.length === 0 || (config.ebpf === 'required' && failures.length > 0)) {
      throw new Error(failures.join('; '));
    }
    state.datapath = 'xdp';
    state.interface = state.interfaces[0];
    state.relayV4 = addrs.v4;
    state.relayV6 = addrs.v6;
    startNextHops(router, state, config, log);
    log.info(
      {
        interfaces: state.interfaces, mode: state.attachMode, relayV4: addrs.v4, relayV6: addrs.v6, reusedMaps: router.reusedMaps,
        capacity: config.mapCapacity, nextHops: state.nextHops?.source,
      },
      'eBPF fast path active',
    );
    return { router, state };
  } catch (e) {
    // Interfaces attached before the failure must not keep relaying through
    // their pinned links, and maps this start pinned go too (pins it found
    // may serve a program an earlier run left attached: they stay).
    if (state.interfaces.length > 0) router?.detach();
    router?.close({ unpin: router.reusedMaps.length === 0 });
    state.interfaces = [];
    state.interface = config.interface;
    return fallback((e as Error).message);
  }
}

/** Attaches to one interface in the first mode that works; returns why none did, or undefined. */
function attachOne(router: XdpRouter, ifname: string, modes: AttachMode[], state: StartState, log: Logger): string | undefined {
  const reasons: string[] = [];
  for (const [i, mode] of modes.entries()) {
    try {
      // The link is pinned so a crashed or restarting sidecar leaves the fast
      // path running; a clean stop detaches unless keepPinned is set.
      const a = router.attach(ifname, mode, { keepPinned: true });
      state.attempts.push({ interface: ifname, mode, ok: true });
      state.interfaces.push(ifname);
      // Several interfaces may end up in different modes; the first one's is reported.
      state.attachMode ??= mode;
      log.info({ interface: ifname, mode, how: a.how }, 'XDP program attached');
      return undefined;
    } catch (e) {
      const reason = e instanceof BpfError ? e.message : (e as Error).message;
      state.attempts.push({ interface: ifname, mode, ok: false, reason });
      reasons.push(`${mode}: ${reason}`);
      const next = modes[i + 1];
      log.warn({ interface: ifname, mode, reason, next: next ?? 'userspace' }, next ? `XDP ${mode} attach failed: trying ${next}` : `XDP ${mode} attach failed`);
    }
  }
  return `cannot attach to ${ifname} (${reasons.join('; ')})`;
}

/**
 * Starts the next-hop mirror for the interfaces the router is attached to,
 * following its bindings (those already in pinned maps too), and closes it
 * with the router. Throws when rtnetlink is unusable.
 */
export function followKernelNextHops(router: XdpRouter, log: Logger): NextHopMirror {
  const mirror = NextHopMirror.start({ maps: router, interfaces: router.attachedTo().map((a) => a.ifindex), log });
  const stopObserving = router.observeBindings(mirror);
  for (const b of router.listBindings()) mirror.put(b);
  router.onClose(() => {
    stopObserving();
    mirror.close();
  });
  return mirror;
}

/**
 * The mirror for the attached interfaces. Without it the program still
 * relays where the FIB answers (forwarding on) and passes everything else:
 * slower, never wrong. The state's nextHops reads the mirror's figures
 * whenever it is read (/status).
 */
function startNextHops(router: XdpRouter, state: EbpfState, config: Pick<Config, 'ebpf'>, log: Logger): void {
  let mirror: NextHopMirror;
  try {
    mirror = followKernelNextHops(router, log);
  } catch (e) {
    const reason = `the next-hop mirror cannot start: ${(e as Error).message}`;
    if (config.ebpf === 'required') throw new Error(reason);
    log.warn({ reason }, 'XDP relays only where the FIB answers (forwarding on); other outputs go through userspace');
    state.nextHops = { source: 'fib-only', reason };
    return;
  }
  Object.defineProperty(state, 'nextHops', { enumerable: true, get: () => ({ source: 'kernel-mirror', ...mirror.stats() }) });
}

const toKernel = (b: ChannelBinding): KernelBinding => ({
  client: { address: b.client.address, port: b.client.port },
  channel: b.channel,
  peer: { address: b.peer.address, port: b.peer.port },
  allocationPort: b.allocationPort,
});
const keyOf = (b: KernelBinding) => `${b.client.address}|${b.client.port}|${b.channel}`;

/** Errno names of a write a full map refused (hash maps say E2BIG). */
const MAP_FULL = new Set(['E2BIG', 'ENOSPC']);
/** A full episode ends once the maps have drained to this share of their capacity, so churn at the brim does not log on every binding. */
const ROOM_AGAIN = 0.9;

/** Where map writes are told, at debug: the `session` module and the per-client budget (LogHub.perSource). */
export interface BindingLog {
  log: Logger;
  budget: { take(source: string): boolean };
}


/**
 * The kernel binding maps as the relay bridge writes them, and their fill.
 * A write a full map refuses is not a failed binding: the kernel just does
 * not relay that channel, so its ChannelData and peer datagrams reach the
 * sockets and the relay relays them in userspace. So it is counted, and
 * reported once per episode (a warning with the map, entries and capacity;
 * `full` in the map stats, hence /status), not thrown: the bridge acks the
 * binding and the relay answers the ChannelBind as usual. An episode runs
 * from the first refused write until the maps have drained to ROOM_AGAIN.
 */
export class KernelBindings {
  readonly channels: ChannelMap;
  #full = false;
  #refused = 0;
  #refusedAtStart = 0;

  constructor(
    private readonly router: XdpRouter,
    private readonly log: Logger,
    /** With it, each binding written or removed is a debug line with the relay's session fields (that channel now takes the XDP datapath). */
    session?: BindingLog,
  ) {
    const told = (b: ChannelBinding, msg: string) => {
      if (session?.log.isLevelEnabled('debug') && session.budget.take(b.client.address)) session.log.debug({ ...bindingFields(b), datapath: 'xdp' }, msg);
    };
    this.channels = {
      install: (b) => {
        if (this.#put(toKernel(b))) told(b, 'kernel binding written');
      },
      remove: (b) => {
        router.deleteChannel(toKernel(b));
        told(b, 'kernel binding removed');
      },
      replaceAll: (bs) => {
        const want = new Map(bs.map((b) => [keyOf(toKernel(b)), toKernel(b)]));
        for (const have of router.listBindings()) {
          const w = want.get(keyOf(have));
          if (!w || w.peer.address !== have.peer.address || w.peer.port !== have.peer.port || w.allocationPort !== have.allocationPort) {
            router.deleteChannel(have);
          }
        }
        for (const b of want.values()) this.#put(b);
      },
      clear: () => {
        router.clearBindings();
      },
    };
  }

  /** Fill of the binding tables, per direction (both name every binding once); ends a full episode once they have room again. */
  stats(): MapStats {
    const entries = this.router.bindingCount();
    const capacity = this.router.bindingCapacity();
    if (this.#full && entries <= capacity * ROOM_AGAIN) {
      this.#full = false;
      this.log.info({ entries, capacity, refusedWrites: this.#refused - this.#refusedAtStart }, 'kernel binding maps have room again');
    }
    return Object.fromEntries(BINDING_MAPS.map((m) => [m, { entries, capacity, full: this.#full, refusedWrites: this.#refused }]));
  }

  /** True when the kernel holds the binding; false when a full map refused it. */
  #put(b: KernelBinding): boolean {
    try {
      this.router.putChannel(b);
      return true;
    } catch (e) {
      if (!(e instanceof BpfError && MAP_FULL.has(e.code))) throw e;
      this.#refused++;
      if (this.#full) return false;
      this.#full = true;
      this.#refusedAtStart = this.#refused - 1;
      const map = BINDING_MAPS.find((m) => e.message.includes(` in ${m} `)) ?? BINDING_MAPS[0];
      this.log.warn(
        { map, entries: this.router.bindingCount(), capacity: this.router.bindingCapacity(), reason: e.message },
        'kernel binding map full: further channels are relayed in userspace until it has room',
      );
      return false;
    }
  }
}
