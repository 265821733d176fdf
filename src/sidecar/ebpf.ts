// eBPF set-up for the sidecar: mode off | auto | required, the interface and
// attach mode from config, the config map written from the relay's actual
// port range and the interface's addresses. `auto` falls back to userspace
// with a warning; `required` fails start-up with the reason.
import { existsSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { pinDir } from '../config/paths.ts';
import { BINDING_MAPS, XdpRouter, type ChannelBinding as KernelBinding } from './bpf/router.ts';
import type { MapStats } from '../telemetry/index.ts';
import { BpfError } from './bpf/errors.ts';
import type { ChannelMap } from './sockets/relay-bridge.ts';
import type { ChannelBinding } from '../shared/binding.ts';
import { isLinkLocalV6, isWildcard } from '../shared/endpoint.ts';
import { bindingFields } from '../shared/log-fields.ts';


export interface EbpfState {
  requested: Config['ebpf'];
  /** What runs: 'xdp' when the program is attached, else 'userspace'. */
  datapath: 'xdp' | 'userspace';
  interface: string | undefined;
  attachMode: Config['xdpMode'] | undefined;
  /** Why the datapath is userspace although eBPF was not off. */
  reason: string | undefined;
  relayV4: string | undefined;
  relayV6: string | undefined;
}

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

export function startEbpf(config: Config, log: Logger): { router: XdpRouter | undefined; state: EbpfState } {
  const state: EbpfState = {
    requested: config.ebpf,
    datapath: 'userspace',
    interface: config.interface,
    attachMode: undefined,
    reason: undefined,
    relayV4: undefined,
    relayV6: undefined,
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
  if (!config.interface) return fallback('no interface is set (TURNPIKE_INTERFACE)');
  const ifname = config.interface;
  const addrs = interfaceAddresses(ifname, config);
  if (!addrs.v4 && !addrs.v6) return fallback(`interface ${ifname} does not exist or has no address`);
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
      mtu: interfaceMtu(ifname, config.mtu),
      diagPerSec: 10,
    });
    // The link is pinned so a crashed or restarting sidecar leaves the fast
    // path running; a clean stop detaches unless keepPinned is set.
    const a = router.attach(ifname, config.xdpMode, { keepPinned: true });
    state.datapath = 'xdp';
    state.attachMode = config.xdpMode;
    state.relayV4 = addrs.v4;
    state.relayV6 = addrs.v6;
    log.info(
      { interface: ifname, mode: config.xdpMode, how: a.how, relayV4: addrs.v4, relayV6: addrs.v6, reusedMaps: router.reusedMaps, capacity: config.mapCapacity },
      'eBPF fast path active',
    );
    return { router, state };
  } catch (e) {
    router?.close();
    return fallback((e as Error).message);
  }
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

  /** Fill of the binding maps (both directions hold every binding once); ends a full episode once they have room again. */
  stats(): MapStats {
    const entries = this.router.bindingCount();
    const capacity = (m: string) => this.router.maxEntries(m);
    if (this.#full && BINDING_MAPS.every((m) => entries <= capacity(m) * ROOM_AGAIN)) {
      this.#full = false;
      this.log.info({ entries, capacity: capacity(BINDING_MAPS[0]), refusedWrites: this.#refused - this.#refusedAtStart }, 'kernel binding maps have room again');
    }
    return Object.fromEntries(BINDING_MAPS.map((m) => [m, { entries, capacity: capacity(m), full: this.#full, refusedWrites: this.#refused }]));
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
        { map, entries: this.router.bindingCount(), capacity: this.router.maxEntries(map), reason: e.message },
        'kernel binding map full: further channels are relayed in userspace until it has room',
      );
      return false;
    }
  }
}
