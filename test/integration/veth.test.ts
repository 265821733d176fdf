// End to end through the kernel: bpf/turn_router.o attached to the relay's
// veth in its own namespace; the client and the peer live in a second
// namespace on the other end of the veth (two addresses per family), with
// real UDP sockets. ChannelData from the client must reach the peer as UDP
// from the allocation port, and UDP from the peer must reach the client as
// ChannelData from the listen port, in native and skb mode, for 4->4, 6->6,
// 4->6 and 6->4. Both veth ends have checksum offload off (tx and rx), so
// the client/peer stack verifies every checksum: a datagram that arrives had
// valid IP and UDP checksums, and the UDP InCsumErrors counters must not move.
//
// Next hops: with forwarding off in the relay namespace (the default, as on
// a production relay) bpf_fib_lookup cannot answer and every output goes
// where the kernel's own tables say, as the sidecar's next-hop mirror
// copies them (client and peer are on-link: the mirror has the kernel
// resolve both once their bindings are in), so nothing is passed for lack
// of a next hop, not even the first datagram. With forwarding on, the FIB
// answers first.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { requireRoot, requireCapability, hasCommand } from '../helpers/env.ts';
import { passObject, repoRoot, routerObject } from '../bpf/fixtures/build.ts';
import { Netns, holdRouterChild, uniq } from '../bpf/fixtures/netns.ts';

const spaces = new Netns();
after(() => spaces.cleanup());

const LISTEN = 3478;
const RELAY4 = '10.77.0.1', CLIENT4 = '10.77.0.2', PEER4 = '10.77.0.3';
const RELAY6 = 'fd77::1', CLIENT6 = 'fd77::2', PEER6 = 'fd77::3';

const CASES = [
  { name: '44', client: { address: CLIENT4, port: 40001 }, peer: { address: PEER4, port: 6001 }, allocationPort: 50001, channel: 0x4001, path: ['chan_to_udp_44', 'udp_to_chan_44'] },
  { name: '66', client: { address: CLIENT6, port: 40002 }, peer: { address: PEER6, port: 6002 }, allocationPort: 50002, channel: 0x4002, path: ['chan_to_udp_66', 'udp_to_chan_66'] },
  { name: '46', client: { address: CLIENT4, port: 40003 }, peer: { address: PEER6, port: 6003 }, allocationPort: 50003, channel: 0x4003, path: ['chan_to_udp_46', 'udp_to_chan_64'] },
  { name: '64', client: { address: CLIENT6, port: 40004 }, peer: { address: PEER4, port: 6004 }, allocationPort: 50004, channel: 0x4004, path: ['chan_to_udp_64', 'udp_to_chan_46'] },
];
const relayFor = (address: string) => (address.includes(':') ? RELAY6 : RELAY4);

function inNs(ns: string, cmd: string, args: string[]): string {
  return execFileSync('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot });
}

function csumErrors(ns: string): number {
  const snmp = inNs(ns, 'cat', ['/proc/net/snmp']);
  const udp = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
  const v4 = Number(udp[1]!.split(/\s+/)[udp[0]!.split(/\s+/).indexOf('InCsumErrors')]);
  const v6 = Number(/Udp6InCsumErrors\s+(\d+)/.exec(inNs(ns, 'cat', ['/proc/net/snmp6']))?.[1] ?? 0);
  return v4 + v6;
}

for (const [mode, forwarding] of [['native', false], ['skb', false], ['native', true]] as const) {
  test(`XDP relays ChannelData <-> UDP over veth in ${mode} mode (4-4, 6-6, 4-6, 6-4) with valid checksums, forwarding ${forwarding ? 'on' : 'off'}`, async (t) => {
    if (!requireRoot(t) || !requireCapability(t, hasCommand('ethtool') && hasCommand('nsenter'), 'needs ethtool and nsenter')) return;
    const object = routerObject();
    if (!requireCapability(t, object !== undefined, 'bpf/turn_router.o not built (make -C bpf)')) return;

    const relayNs = spaces.add(uniq('tpbpf-r'));
    const endNs = spaces.add(uniq('tpbpf-c'));
    execFileSync('ip', ['-n', relayNs, 'link', 'add', 'vr', 'type', 'veth', 'peer', 'name', 'vc', 'netns', endNs]);
    const ipR = (...a: string[]) => execFileSync('ip', ['-n', relayNs, ...a]);
    const ipC = (...a: string[]) => execFileSync('ip', ['-n', endNs, ...a]);
    ipR('addr', 'add', `${RELAY4}/24`, 'dev', 'vr');
    ipR('addr', 'add', `${RELAY6}/64`, 'dev', 'vr', 'nodad');
    for (const a of [CLIENT4, PEER4]) ipC('addr', 'add', `${a}/24`, 'dev', 'vc');
    for (const a of [CLIENT6, PEER6]) ipC('addr', 'add', `${a}/64`, 'dev', 'vc', 'nodad');
    ipR('link', 'set', 'vr', 'up');
    if (forwarding) inNs(relayNs, 'sysctl', ['-q', '-w', 'net.ipv4.conf.vr.forwarding=1', 'net.ipv6.conf.vr.forwarding=1']);
    ipC('link', 'set', 'vc', 'up');
    // Full checksums on send, and verified on receive: with rx checksumming on,
    // veth marks a received skb CHECKSUM_UNNECESSARY, and in skb mode that
    // mark would ride along through XDP_TX to the client/peer's stack.
    inNs(endNs, 'ethtool', ['-K', 'vc', 'tx', 'off', 'rx', 'off']);
    inNs(relayNs, 'ethtool', ['-K', 'vr', 'tx', 'off', 'rx', 'off']);
    // XDP_TX on a native-mode veth reaches the other end only if it runs XDP too.
    if (mode === 'native') ipC('link', 'set', 'dev', 'vc', 'xdpdrv', 'obj', passObject(), 'sec', 'xdp');

    const relay = await holdRouterChild(relayNs, {
      object,
      steps: [
        { op: 'config', listenPort: LISTEN, portMin: 50000, portMax: 50100, relayV4: RELAY4, relayV6: RELAY6, mtu: 1500 },
        ...CASES.map((c) => ({ op: 'put', binding: { client: c.client, channel: c.channel, peer: c.peer, allocationPort: c.allocationPort } })),
        { op: 'attach', ifname: 'vr', mode },
        { op: 'mirror' },
        { op: 'hold' },
        { op: 'stats' },
      ],
    });
    let results: Record<string, unknown>[] = [];
    try {
      assert.deepEqual(relay.ready.filter((r) => r.error), [], 'relay set-up steps succeed');
      const errorsBefore = csumErrors(endNs);
      const exchange = JSON.parse(
        inNs(endNs, process.execPath, [
          '--import', 'tsx', `${repoRoot}test/bpf/fixtures/udp-exchange.ts`,
          JSON.stringify({ cases: CASES.map((c) => ({ ...c, relayForClient: relayFor(c.client.address), relayForPeer: relayFor(c.peer.address), listenPort: LISTEN })) }),
        ]),
      ) as Record<string, { atPeer?: { from: string; port: number; hex: string }; atClient?: { from: string; port: number; hex: string }; sent: string; reply: string }>;

      for (const c of CASES) {
        const r = exchange[c.name]!;
        assert.ok(r.atPeer, `${c.name}: the peer received the client's ChannelData as UDP`);
        assert.equal(r.atPeer.hex, r.sent.slice(8), `${c.name}: payload without the ChannelData header`);
        assert.deepEqual([r.atPeer.from, r.atPeer.port], [relayFor(c.peer.address), c.allocationPort], `${c.name}: from the allocation port`);
        assert.ok(r.atClient, `${c.name}: the client received the peer's UDP as ChannelData`);
        const len = r.reply.length / 2;
        const header = c.channel.toString(16).padStart(4, '0') + len.toString(16).padStart(4, '0');
        assert.equal(r.atClient.hex.slice(0, 8 + len * 2), header + r.reply, `${c.name}: ChannelData header + payload`);
        assert.ok(r.atClient.hex.length / 2 <= 4 + ((len + 3) & ~3), `${c.name}: at most padding to 4 after the payload`);
        assert.deepEqual([r.atClient.from, r.atClient.port], [relayFor(c.client.address), LISTEN], `${c.name}: from the listen port`);
      }
      assert.equal(csumErrors(endNs), errorsBefore, 'no UDP checksum errors at the receivers');
    } finally {
      results = await relay.stop();
    }
    const stats = results.find((r) => r.op === 'stats') as { paths: Record<string, { packets: string }>; reasons: Record<string, string> } | undefined;
    assert.ok(stats, JSON.stringify(results));
    for (const c of CASES) {
      for (const p of c.path) assert.ok(Number(stats.paths[p]!.packets) >= 1, `${c.name}: path ${p} counted (${JSON.stringify(stats.paths)})`);
    }
    t.diagnostic(`${mode}, forwarding ${forwarding ? "on" : "off"}: reasons ${JSON.stringify(Object.fromEntries(Object.entries(stats.reasons).filter(([, v]) => v !== '0')))}`);
    const mirror = results.find((r) => r.op === 'mirror') as { needed: number; resolved: number } | undefined;
    assert.deepEqual([mirror?.needed, mirror?.resolved], [4, 4], 'the mirror had the kernel resolve client and peer (both families) before any traffic');
    for (const reason of ['pass_no_neigh', 'pass_no_route', 'pass_other_interface']) assert.equal(stats.reasons[reason], '0', `nothing passed as ${reason}`);
  });
}
