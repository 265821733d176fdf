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

/** Namespace names look like `<prefix>-<pid>-<hex>-<role letter>`. */
function parseName(name: string): { prefix: string; pid: number } | undefined {
  const m = /^(.+)-(\d+)-[0-9a-f]{4}-[crps]$/.exec(name);
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

  const children = new Set<ChildProcess>();
  let destroyed = false;
  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    for (const name of Object.values(ns)) {
      if (existsSync(`/run/netns/${name}`)) await run('ip', ['netns', 'delete', name]).catch(() => undefined);
    }
  };

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
    spawn(role, cmd, args = [], o = {}) {
      const child = spawnChild('ip', ['netns', 'exec', ns[role], cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...o });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
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
    async enableRelayXdpTx(o = {}) {
      const obj = o.object ?? defaultPassObject();
      const port = BRIDGE_PORT.relay;
      if (existsSync(obj)) {
        for (const sec of ['xdp', 'xdp_pass', 'prog']) {
          try {
            await run('ip', ['-n', ns.switch, 'link', 'set', 'dev', port, 'xdpdrv', 'obj', obj, 'sec', sec]);
            return { method: 'xdp-pass' };
          } catch {
            // try the next section name
          }
        }
      }
      // Without a program, GRO on the receiving veth enables its NAPI path,
      // which is what XDP_TX frames need to be accepted.
      await nsExec('switch', 'ethtool', ['-K', port, 'gro', 'on']);
      return { method: 'gro', note: existsSync(obj) ? `could not attach ${obj}` : `${obj} not built (make -C bpf)` };
    },
    destroy,
  };
  return topo;
}
