// Network-namespace topology shared by integration tests and benchmarks.
//
//            client ns            relay ns             peer ns
//              eth0                 eth0                 eth0
//               |                    |                    |
//          [cl]-+------ bridge br0 --+-[rl]---------------+-[pr]     switch ns
//
// The relay has ONE interface facing a Linux bridge in a fourth "switch"
// namespace, to which client and peer are attached too. TURN relays at L4, so
// client and peer both talk to the relay's address; XDP_TX sends a rewritten
// frame back out of the interface it came in on, and the bridge delivers it to
// the peer (or client). A relay with two interfaces could not use XDP_TX.
//
// Names embed the creating process id, so a sweeper can remove leftovers of
// crashed runs without touching a live run of another process.
import { execFile, spawn as spawnChild, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export type Role = 'client' | 'relay' | 'peer' | 'switch';
const ENDPOINTS = ['client', 'relay', 'peer'] as const;
type Endpoint = (typeof ENDPOINTS)[number];
/** Host part of each endpoint's address in the run's /24 and /64. */
const HOST: Record<Endpoint, number> = { client: 10, relay: 1, peer: 20 };
/** Name of each endpoint's veth end inside the switch namespace (<= 15 chars). */
const BRIDGE_PORT: Record<Endpoint, string> = { client: 'cl', relay: 'rl', peer: 'pr' };
const SHORT: Record<Role, string> = { client: 'c', relay: 'r', peer: 'p', switch: 's' };

export interface TopologyOptions {
  /** Namespace name prefix; default 'tpnet'. Keep it short and area-specific. */
  prefix?: string;
  /** Add IPv6 addresses (fd00:<random>::/64, DAD off); default true. */
  ipv6?: boolean;
  /**
   * Turn off tx checksum offload on the client's and peer's interfaces so the
   * relay (and an XDP program on it) sees complete checksums; default true.
   * The relay's own interface keeps its defaults, as a real host would.
   */
  checksumOffloadOff?: boolean;
  /** MTU on every link; default 1500. */
  mtu?: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface Topology {
  /** Namespace names, usable with `ip netns exec` / `ip -n`. */
  ns: Record<Role, string>;
  addr: {
    client4: string; relay4: string; peer4: string;
    client6?: string; relay6?: string; peer6?: string;
    /** The run's subnets in CIDR form, e.g. for TURNPIKE_ALLOWED_PEERS. */
    subnet4: string; subnet6?: string;
  };
  /** Interface names: `dev.relay` is inside the relay namespace; `bridgePort.relay` is its peer end in the switch namespace. */
  dev: Record<Endpoint, string>;
  bridgePort: Record<Endpoint, string>;
  /** Runs a command inside a namespace and resolves with its output; rejects on a non-zero exit. */
  exec(ns: Role, cmd: string, args?: string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
  /** Starts a long-running process inside a namespace. Its pid is the command's own pid (ip netns exec execs it). Killed by destroy(). */
  spawn(ns: Role, cmd: string, args?: string[], opts?: SpawnOptions): ChildProcess;
  /** Attaches a pass-all XDP program to the switch-side end of the relay's veth (needed for native XDP_TX on veth). */
  enableRelayXdpTx(opts?: { object?: string }): Promise<XdpTxPeerResult>;
  /**
   * Installs permanent neighbour entries (ARP/NDP) between the relay and the
   * client and peer, as a host whose gateway is always resolved would have.
   * An XDP program that takes next-hop MACs from bpf_fib_lookup finds no
   * neighbour otherwise until the kernel itself has talked to that address.
   */
  seedNeighbours(): Promise<void>;
  /** Kills spawned processes and deletes the namespaces; safe to call more than once. */
  destroy(): Promise<void>;
}

export interface XdpTxPeerResult {
  /** How the bridge-side end was made ready: an XDP pass program, or GRO (which enables veth NAPI on kernels >= 5.13). */
  method: 'xdp-pass' | 'gro';
  note?: string;
}

async function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<ExecResult> {
  try {
    const { stdout, stderr } = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return { stdout, stderr };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Namespace names look like `<prefix>-<pid>-<hex>-<role letter>` (g, h: the routed topology's gateways). */
function parseName(name: string): { prefix: string; pid: number } | undefined {
  const m = /^(.+)-(\d+)-[0-9a-f]{4}-[crpsgh]$/.exec(name);
  return m ? { prefix: m[1]!, pid: Number(m[2]) } : undefined;
}

/**
 * Deletes namespaces with this prefix whose creating process is gone (leftovers
 * of crashed runs). Namespaces of live processes, ours included, are kept.
 */
export async function sweepStaleNamespaces(prefix = 'tpnet'): Promise<string[]> {
  const dir = '/run/netns';
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = parseName(name);
    if (!p || p.prefix !== prefix || pidAlive(p.pid)) continue;
    try {
      await run('ip', ['netns', 'delete', name]);
      removed.push(name);
    } catch {
      // Another sweeper got there first.
    }
  }
  return removed;
}

/**
 * The processes a topology started in its namespaces and its teardown:
 * spawn() runs a command in a namespace (its pid is the command's own: ip
 * netns exec execs it); destroy() kills them all, then deletes the
 * namespaces, once.
 */
function namespaceLife(names: () => string[]) {
  const children = new Set<ChildProcess>();
  let destroyed = false;
  return {
    spawn(namespace: string, cmd: string, args: string[], o: SpawnOptions): ChildProcess {
      const child = spawnChild('ip', ['netns', 'exec', namespace, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...o });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    async destroy(): Promise<void> {
      if (destroyed) return;
      destroyed = true;
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      for (const name of names()) {
        if (existsSync(`/run/netns/${name}`)) await run('ip', ['netns', 'delete', name]).catch(() => undefined);
      }
    },
  };
}

/** Path of the pass-all XDP object built by `make -C bpf`, if present. */
export function defaultPassObject(): string {
  return new URL('../../bpf/empty.o', import.meta.url).pathname;
}

export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const prefix = opts.prefix ?? 'tpnet';
  const ipv6 = opts.ipv6 ?? true;
  const mtu = opts.mtu ?? 1500;
  await sweepStaleNamespaces(prefix);

  const tag = `${process.pid}-${randomBytes(2).toString('hex')}`;
  const ns = {} as Record<Role, string>;
  for (const r of ['client', 'relay', 'peer', 'switch'] as Role[]) ns[r] = `${prefix}-${tag}-${SHORT[r]}`;

  // 10.64-254.x/24 and fd00:xxxx:xxxx::/64, random per run so a capture or log
  // line from one run is never mistaken for another's.
  const rnd = randomBytes(5);
  const net4 = `10.${64 + (rnd[0]! % 190)}.${rnd[1]!}`;
  const net6 = `fd00:${rnd.readUInt16BE(2).toString(16)}:${rnd[4]!.toString(16)}::`;
  const addr: Topology['addr'] = {
    client4: `${net4}.${HOST.client}`, relay4: `${net4}.${HOST.relay}`, peer4: `${net4}.${HOST.peer}`,
    subnet4: `${net4}.0/24`,
  };
  if (ipv6) {
    addr.client6 = `${net6}${HOST.client.toString(16)}`;
    addr.relay6 = `${net6}${HOST.relay.toString(16)}`;
    addr.peer6 = `${net6}${HOST.peer.toString(16)}`;
    addr.subnet6 = `${net6}/64`;
  }

  const life = namespaceLife(() => Object.values(ns));
  const destroy = life.destroy;

  const nsExec = (role: Role, cmd: string, args: string[] = [], o: { timeoutMs?: number } = {}) =>
    run('ip', ['netns', 'exec', ns[role], cmd, ...args], o.timeoutMs);

  try {
    for (const name of Object.values(ns)) await run('ip', ['netns', 'add', name]);
    const sw = ns.switch;
    await run('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0']);
    await run('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
    await run('ip', ['-n', sw, 'link', 'set', 'lo', 'up']);

    for (const ep of ENDPOINTS) {
      const e = ns[ep];
      // Created inside the endpoint namespace with its peer end placed in the
      // switch namespace, so no interface ever appears in the root namespace.
      await nsExec(ep, 'ip', ['link', 'add', 'eth0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', BRIDGE_PORT[ep], 'mtu', String(mtu), 'netns', sw]);
      await run('ip', ['-n', sw, 'link', 'set', BRIDGE_PORT[ep], 'master', 'br0', 'up']);
      if (ipv6) {
        await nsExec(ep, 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.eth0.accept_dad=0']);
      }
      await run('ip', ['-n', e, 'link', 'set', 'lo', 'up']);
      await run('ip', ['-n', e, 'addr', 'add', `${addr[`${ep}4`]}/24`, 'dev', 'eth0']);
      if (ipv6) await run('ip', ['-n', e, '-6', 'addr', 'add', `${addr[`${ep}6`]}/64`, 'dev', 'eth0', 'nodad']);
      await run('ip', ['-n', e, 'link', 'set', 'eth0', 'up']);
      if ((opts.checksumOffloadOff ?? true) && ep !== 'relay') {
        await nsExec(ep, 'ethtool', ['-K', 'eth0', 'tx', 'off']).catch(() => undefined);
      }
    }
  } catch (err) {
    await destroy();
    throw err;
  }

  const topo: Topology = {
    ns,
    addr,
    dev: { client: 'eth0', relay: 'eth0', peer: 'eth0' },
    bridgePort: { ...BRIDGE_PORT },
    exec: nsExec,
    spawn: (role, cmd, args = [], o = {}) => life.spawn(ns[role], cmd, args, o),
    async seedNeighbours() {
      const mac: Partial<Record<Endpoint, string>> = {};
      for (const ep of ENDPOINTS) {
        const { stdout } = await run('ip', ['-n', ns[ep], '-j', 'link', 'show', 'eth0']);
        mac[ep] = (JSON.parse(stdout) as { address: string }[])[0]!.address;
      }
      const pairs: [Endpoint, Endpoint][] = [['relay', 'client'], ['relay', 'peer'], ['client', 'relay'], ['peer', 'relay']];
      for (const [at, other] of pairs) {
        for (const fam of ipv6 ? (['4', '6'] as const) : (['4'] as const)) {
          const ip = addr[`${other}${fam}`]!;
          await run('ip', ['-n', ns[at], `-${fam}`, 'neigh', 'replace', ip, 'lladdr', mac[other]!, 'dev', 'eth0', 'nud', 'permanent']);
        }
      }
    },
    enableRelayXdpTx: (o = {}) => readyForXdpTx(ns.switch, BRIDGE_PORT.relay, o.object),
    destroy,
  };
  return topo;
}

/** Makes a veth end accept XDP_TX frames from its peer: a pass-all XDP program on it, else GRO. */
async function readyForXdpTx(namespace: string, dev: string, object?: string): Promise<XdpTxPeerResult> {
  const obj = object ?? defaultPassObject();
  if (existsSync(obj)) {
    for (const sec of ['xdp', 'xdp_pass', 'prog']) {
      try {
        await run('ip', ['-n', namespace, 'link', 'set', 'dev', dev, 'xdpdrv', 'obj', obj, 'sec', sec]);
        return { method: 'xdp-pass' };
      } catch {
        // try the next section name
      }
    }
  }
  // Without a program, GRO on the receiving veth enables its NAPI path,
  // which is what XDP_TX frames need to be accepted.
  await run('ip', ['netns', 'exec', namespace, 'ethtool', '-K', dev, 'gro', 'on']);
  return { method: 'gro', note: existsSync(obj) ? `could not attach ${obj}` : `${obj} not built (make -C bpf)` };
}

// ---- routed topology ------------------------------------------------------------
//
//   client ns          gateway ns                                      peerGateway ns          peer ns
//     eth0 ------------ eth1   eth0 --+                         +-- eth0   eth1 ------------ eth0
//   (client net)        (router)      |      switch ns          |    (router)  eth2 -+    (peer net)
//                                     +------ bridge br0 -------+                    |
//                                     |   (the LAN; br0 itself is an attacker .60)  |
//                         relay ns   eth0 (forwarding off)      eth1 ---------------+  (side link)
//
// The relay sits on a LAN with two routers, as a relay on the internet sits
// behind its gateway: its default routes (both families) go via `gateway`,
// its route to the peer's network via `peerGateway` (IPv6 routes via the
// routers' link-local addresses, as router advertisements would set them).
// Client and peer are each behind their router, never on the relay's link:
// every relayed frame goes to a router's MAC. The side link is a second path
// from the relay to the peer's router, not on the LAN (a route there leaves
// by an interface the XDP program is not on). The routers forward, send no
// redirects, and announce a MAC change (arp_notify, ndisc_notify) as a
// failover would. Every veth end has checksum offload off (tx and rx), so
// each receiving stack verifies every checksum.

export type RoutedRole = Role | 'gateway' | 'peerGateway';

export interface RoutedTopology extends Omit<Topology, 'ns' | 'exec' | 'spawn'> {
  ns: Record<RoutedRole, string>;
  addr: Topology['addr'] & {
    /** The relay's LAN addresses are relay4/relay6; these are the routers' on the LAN. */
    gateway4: string; gateway6: string; peerGateway4: string; peerGateway6: string;
    /** The routers' link-local addresses on the LAN (the relay's IPv6 next hops). */
    gatewayLinkLocal: string; peerGatewayLinkLocal: string;
    /** The attacker on the LAN (br0 in the switch namespace). */
    attacker4: string; attacker6: string;
    /** The networks behind the routers, and the side link's addresses. */
    clientNet4: string; clientNet6: string; peerNet4: string; peerNet6: string;
    relaySide4: string; relaySide6: string; peerGatewaySide4: string; peerGatewaySide6: string;
  };
  /** Interface names beyond `dev`: the relay's side link, the routers' LAN interfaces, the attacker's. */
  links: { relaySide: string; gatewayLan: string; peerGatewayLan: string; attacker: string };
  exec(ns: RoutedRole, cmd: string, args?: string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
  spawn(ns: RoutedRole, cmd: string, args?: string[], opts?: SpawnOptions): ChildProcess;
  /** An interface's MAC address. */
  mac(ns: RoutedRole, dev: string): Promise<string>;
}

const ROUTED_SHORT: Record<RoutedRole, string> = { ...SHORT, gateway: 'g', peerGateway: 'h' };

export async function createRoutedTopology(opts: { prefix?: string } = {}): Promise<RoutedTopology> {
  const prefix = opts.prefix ?? 'tprt';
  await sweepStaleNamespaces(prefix);
  const tag = `${process.pid}-${randomBytes(2).toString('hex')}`;
  const ns = {} as Record<RoutedRole, string>;
  for (const r of Object.keys(ROUTED_SHORT) as RoutedRole[]) ns[r] = `${prefix}-${tag}-${ROUTED_SHORT[r]}`;

  // One random /24 in 10/8 cut into /26s, and one random /48 in fd00::/8 cut into /64s.
  const rnd = randomBytes(5);
  const n4 = `10.${64 + (rnd[0]! % 190)}.${rnd[1]!}`;
  const p6 = `fd00:${rnd.readUInt16BE(2).toString(16)}:${rnd[4]!.toString(16)}`;
  const v6 = (subnet: number, host: string) => `${p6}:${subnet}::${host}`;
  const addr: RoutedTopology['addr'] = {
    relay4: `${n4}.1`, gateway4: `${n4}.2`, peerGateway4: `${n4}.3`, attacker4: `${n4}.60`,
    relay6: v6(1, '1'), gateway6: v6(1, '2'), peerGateway6: v6(1, '3'), attacker6: v6(1, '60'),
    gatewayLinkLocal: 'fe80::2', peerGatewayLinkLocal: 'fe80::3',
    client4: `${n4}.70`, client6: v6(2, '10'), clientNet4: `${n4}.64/26`, clientNet6: `${p6}:2::/64`,
    peer4: `${n4}.140`, peer6: v6(3, '10'), peerNet4: `${n4}.128/26`, peerNet6: `${p6}:3::/64`,
    relaySide4: `${n4}.193`, relaySide6: v6(4, '1'), peerGatewaySide4: `${n4}.194`, peerGatewaySide6: v6(4, '2'),
    subnet4: `${n4}.0/24`, subnet6: `${p6}::/48`,
  };

  const life = namespaceLife(() => Object.values(ns));
  const destroy = life.destroy;
  const nsExec = (role: RoutedRole, cmd: string, args: string[] = [], o: { timeoutMs?: number } = {}) => run('ip', ['netns', 'exec', ns[role], cmd, ...args], o.timeoutMs);
  const ip = (role: RoutedRole, ...args: string[]) => run('ip', ['-n', ns[role], ...args]);
  const sysctl = (role: RoutedRole, ...settings: string[]) => nsExec(role, 'sysctl', ['-q', '-w', ...settings]);
  /** A veth pair between two namespaces, created inside `a` so nothing appears in the root namespace. */
  const link = async (a: RoutedRole, devA: string, b: RoutedRole, devB: string) => {
    await ip(a, 'link', 'add', devA, 'type', 'veth', 'peer', 'name', devB, 'netns', ns[b]);
  };
  const up = async (role: RoutedRole, dev: string, ...addresses: string[]) => {
    for (const a of addresses) await ip(role, ...(a.includes(':') ? ['-6', 'addr', 'add', a, 'dev', dev, 'nodad'] : ['addr', 'add', a, 'dev', dev]));
    await nsExec(role, 'ethtool', ['-K', dev, 'tx', 'off', 'rx', 'off']).catch(() => undefined);
    await ip(role, 'link', 'set', dev, 'up');
  };

  try {
    for (const name of Object.values(ns)) await run('ip', ['netns', 'add', name]);
    for (const r of Object.keys(ns) as RoutedRole[]) {
      await ip(r, 'link', 'set', 'lo', 'up');
      await sysctl(r, 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
    }
    await ip('switch', 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0');
    for (const [role, port] of [['relay', 'rl'], ['gateway', 'gl'], ['peerGateway', 'hl']] as const) {
      await link(role, 'eth0', 'switch', port);
      await ip('switch', 'link', 'set', port, 'master', 'br0');
      await up('switch', port);
    }
    await up('switch', 'br0', `${addr.attacker4}/26`, `${addr.attacker6}/64`);
    await link('client', 'eth0', 'gateway', 'eth1');
    await link('peer', 'eth0', 'peerGateway', 'eth1');
    await link('relay', 'eth1', 'peerGateway', 'eth2');

    await up('relay', 'eth0', `${addr.relay4}/26`, `${addr.relay6}/64`);
    await up('relay', 'eth1', `${addr.relaySide4}/26`, `${addr.relaySide6}/64`);
    await up('gateway', 'eth0', `${addr.gateway4}/26`, `${addr.gateway6}/64`, `${addr.gatewayLinkLocal}/64`);
    await up('gateway', 'eth1', `${n4}.65/26`, `${v6(2, '1')}/64`);
    await up('peerGateway', 'eth0', `${addr.peerGateway4}/26`, `${addr.peerGateway6}/64`, `${addr.peerGatewayLinkLocal}/64`);
    await up('peerGateway', 'eth1', `${n4}.129/26`, `${v6(3, '1')}/64`);
    await up('peerGateway', 'eth2', `${addr.peerGatewaySide4}/26`, `${addr.peerGatewaySide6}/64`);
    await up('client', 'eth0', `${addr.client4}/26`, `${addr.client6}/64`);
    await up('peer', 'eth0', `${addr.peer4}/26`, `${addr.peer6}/64`);

    for (const r of ['gateway', 'peerGateway'] as const) {
      await sysctl(r, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0',
        'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.eth0.send_redirects=0', 'net.ipv4.conf.eth0.arp_notify=1', 'net.ipv6.conf.eth0.ndisc_notify=1');
    }
    await ip('relay', 'route', 'add', 'default', 'via', addr.gateway4, 'dev', 'eth0');
    await ip('relay', '-6', 'route', 'add', 'default', 'via', addr.gatewayLinkLocal, 'dev', 'eth0');
    await ip('relay', 'route', 'add', addr.peerNet4, 'via', addr.peerGateway4, 'dev', 'eth0');
    await ip('relay', '-6', 'route', 'add', addr.peerNet6, 'via', addr.peerGatewayLinkLocal, 'dev', 'eth0');
    // The client's gateway knows the way to the peer's network too (as the internet would), so the relay's default route reaches it.
    await ip('gateway', 'route', 'add', addr.peerNet4, 'via', addr.peerGateway4, 'dev', 'eth0');
    await ip('gateway', '-6', 'route', 'add', addr.peerNet6, 'via', addr.peerGatewayLinkLocal, 'dev', 'eth0');
    await ip('client', 'route', 'add', 'default', 'via', `${n4}.65`);
    await ip('client', '-6', 'route', 'add', 'default', 'via', v6(2, '1'));
    await ip('peer', 'route', 'add', 'default', 'via', `${n4}.129`);
    await ip('peer', '-6', 'route', 'add', 'default', 'via', v6(3, '1'));
  } catch (err) {
    await destroy();
    throw err;
  }

  const topo: RoutedTopology = {
    ns,
    addr,
    dev: { client: 'eth0', relay: 'eth0', peer: 'eth0' },
    bridgePort: { client: 'eth1', relay: 'rl', peer: 'eth1' },
    links: { relaySide: 'eth1', gatewayLan: 'eth0', peerGatewayLan: 'eth0', attacker: 'br0' },
    exec: nsExec,
    spawn: (role, cmd, args = [], o = {}) => life.spawn(ns[role], cmd, args, o),
    async mac(role, dev) {
      const { stdout } = await ip(role, '-j', 'link', 'show', dev);
      return (JSON.parse(stdout) as { address: string }[])[0]!.address;
    },
    async seedNeighbours() {
      throw new Error('the routed topology has nobody on-link to seed: the relay resolves its routers itself');
    },
    enableRelayXdpTx: (o = {}) => readyForXdpTx(ns.switch, 'rl', o.object),
    destroy,
  };
  return topo;
}
