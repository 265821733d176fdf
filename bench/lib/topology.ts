// The two topologies `npm run bench` measures on, built by the shared helpers
// in test/helpers/netns.ts, and the forwarding-hop reference's routing on each.
//
// bridge: client, relay and peer on one bridge; the relay namespace has IP
//   forwarding on and its neighbours seeded for every contender (the XDP
//   program's FIB lookup needs both there).
// routed: client and peer each behind a router namespace, the relay on a LAN
//   with the routers, reaching both through gateways, with forwarding OFF (as a
//   relay host on the internet runs): the XDP program takes next hops from the
//   sidecar's mirror of the kernel's routes and neighbours. Flows are one-way
//   there (the peer sends nothing back).
import { createRoutedTopology, createTopology, type RoutedTopology, type Topology } from '../../test/helpers/netns.ts';

export type TopologyKind = 'bridge' | 'routed';
export const TOPOLOGY_KINDS: readonly TopologyKind[] = ['bridge', 'routed'];

/** `--topology bridge|routed|both` as the list of topologies to run, in run order. */
export function parseTopologies(text: string): TopologyKind[] {
  if (text === 'both') return [...TOPOLOGY_KINDS];
  if ((TOPOLOGY_KINDS as readonly string[]).includes(text)) return [text as TopologyKind];
  throw new Error(`--topology must be bridge, routed or both, not "${text}"`);
}

/** A topology prepared alike for every contender and the references on it. */
export async function benchTopology(kind: TopologyKind): Promise<Topology> {
  // A routed topology is a Topology with more roles (the routers); the bench uses the common ones.
  const topo: Topology = kind === 'routed' ? await createRoutedTopology({ prefix: 'tpbrt' }) : await createTopology({ prefix: 'tpbench' });
  try {
    if (kind === 'bridge') {
      // Resolved neighbours for every contender alike: the XDP fast path takes
      // next-hop MACs from the kernel's FIB and neighbour tables.
      await topo.seedNeighbours();
      // bpf_fib_lookup answers FWD_DISABLED unless forwarding is on for the
      // ingress interface. Enabled in the relay namespace for every contender
      // alike (a no-op for coturn, which relays through sockets).
      await topo.exec('relay', 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1']);
    } else {
      // Stated, not inherited: a new namespace copies the host's IPv4 forwarding setting.
      await topo.exec('relay', 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.forwarding=0', 'net.ipv6.conf.all.forwarding=0']);
    }
    return topo;
  } catch (err) {
    await topo.destroy();
    throw err;
  }
}

/**
 * Makes the relay namespace a kernel IP-forwarding hop between the client and
 * the peer (the forwarding-hop reference row): the client's datagrams to the
 * peer go through it, and it forwards them back out of the interface they came
 * in on. Redirects are off so the sender keeps using the hop.
 *
 * bridge: the client routes the peer's address via the relay, whose
 * forwarding is already on. routed: the client's router routes the peer's
 * network via the relay instead of the peer's router, and forwarding is turned
 * on in the relay namespace for this row only.
 */
export async function routePeerViaRelay(kind: TopologyKind, topo: Topology): Promise<void> {
  await topo.exec('relay', 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.eth0.send_redirects=0']);
  if (kind === 'routed') {
    // benchTopology('routed') made it: the routers are there.
    const r = topo as unknown as RoutedTopology;
    await r.exec('relay', 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1']);
    await r.exec('gateway', 'ip', ['route', 'replace', r.addr.peerNet4, 'via', r.addr.relay4, 'dev', r.links.gatewayLan]);
    await r.exec('gateway', 'ip', ['-6', 'route', 'replace', r.addr.peerNet6, 'via', r.addr.relay6!, 'dev', r.links.gatewayLan]);
    return;
  }
  await topo.exec('client', 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.accept_redirects=0', 'net.ipv4.conf.eth0.accept_redirects=0',
    'net.ipv6.conf.all.accept_redirects=0', 'net.ipv6.conf.eth0.accept_redirects=0']);
  await topo.exec('client', 'ip', ['route', 'replace', `${topo.addr.peer4}/32`, 'via', topo.addr.relay4, 'dev', 'eth0']);
  if (topo.addr.peer6 && topo.addr.relay6) await topo.exec('client', 'ip', ['-6', 'route', 'replace', `${topo.addr.peer6}/128`, 'via', topo.addr.relay6, 'dev', 'eth0']);
}
