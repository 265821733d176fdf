// The sidecar's userspace fast path and the XDP program decide alike: every
// case below (the golden scene's datagram-level fixtures) runs through
// bpf/turn_router.o with BPF_PROG_TEST_RUN and through fastpath.ts decide();
// both must give the same verdict (relayed, or the same pass/drop reason)
// and, when relayed, the same output: source port, destination, family and
// UDP payload bytes. Frame-level reasons (VLAN, IP options, fragments,
// checksums, next hops) are the socket layer's business and not compared.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import pino from 'pino';
import { XdpRouter, type ChannelBinding as KernelBinding, type RouterConfig } from '../../src/sidecar/bpf/router.ts';
import { REASON_NAMES } from '../../src/sidecar/bpf/abi.ts';
import { ChannelTable, RELAYED, decide, dgramText, newOutput, normalized } from '../../src/sidecar/fastpath.ts';
import type { ChannelBinding } from '../../src/shared/binding.ts';
import { familyOf } from '../../src/shared/endpoint.ts';
import { requireRoot, requireCapability } from '../helpers/env.ts';
import { testRun } from '../helpers/bpf-test-run.ts';
import { channelData, decodeFrame, hex, payloadOf, type Endpoint } from '../bpf/frames.ts';
import { BASE_CONFIG, BINDINGS, C4, C6, LISTEN, OBJECT, P4, P6, RELAY4, SCENE_NEIGHBOURS, SCENE_ROUTES, alloc, bind, inFrame, installNextHops, learnFrame, neighbourOf, toListen } from '../bpf/golden-scene.ts';

const log = pino({ level: 'silent' });

interface Case {
  name: string;
  input: Uint8Array;
  config?: RouterConfig;
  bindings?: KernelBinding[];
  /** Extra destinations the kernel must know the MAC of. */
  learn?: Endpoint[];
}

const data = payloadOf(100, 7);
const odd = payloadOf(151, 3);
const mapped = (e: Endpoint): Endpoint => ({ address: `::ffff:${e.address}`, port: e.port });
const cases: Case[] = [];

for (const [client, channel, peer, port] of [[C4, 0x4001, P4, 50001], [C4, 0x4002, P6, 50002], [C6, 0x4003, P4, 50003], [C6, 0x4004, P6, 50004]] as const) {
  cases.push({ name: `ChannelData -> UDP ${client.address} -> ${peer.address}`, input: inFrame(client, toListen(client), channelData(channel, data)) });
  cases.push({ name: `UDP -> ChannelData ${peer.address} -> ${client.address}`, input: inFrame(peer, alloc(peer, port), odd) });
  for (const pad of [1, 2, 3]) {
    const body = payloadOf(4 - pad + 40 + (pad & 1), pad);
    cases.push({ name: `ChannelData with ${pad} padding -> UDP (0x${channel.toString(16)})`, input: inFrame(client, toListen(client), channelData(channel, body, pad, 0xa5)) });
  }
}
for (const [a, ch] of [[C4, 0x4011], [C4, 0x4021], [C6, 0x4031], [C6, 0x4041]] as const) {
  cases.push({ name: `ChannelData -> ChannelData (0x${ch.toString(16)}: both ends allocated here)`, input: inFrame(a, toListen(a), channelData(ch, odd, 1)) });
}
const cd4 = (channel: number, body = channelData(channel, data)) => inFrame(C4, toListen(C4), body);
cases.push(
  { name: 'empty ChannelData', input: inFrame(C6, toListen(C6), channelData(0x4004, new Uint8Array(0))) },
  { name: 'STUN Binding request', input: learnFrame(C4) },
  { name: 'shorter than a ChannelData header', input: cd4(0, Uint8Array.from([0x40, 0x01])) },
  { name: 'ChannelData length beyond the datagram', input: cd4(0, channelData(0x4001, data).subarray(0, 50)) },
  { name: '4 bytes of padding', input: cd4(0, channelData(0x4001, data, 4)) },
  { name: 'first two bits 10', input: cd4(0x8001) },
  { name: 'RFC 5766 channel 0x5000, no binding', input: cd4(0x5000) },
  { name: 'RFC 5766 channel 0x7fff, no binding', input: cd4(0x7fff) },
  { name: 'unknown channel', input: cd4(0x4fff) },
  { name: 'known channel from another client port', input: inFrame({ ...C4, port: 50009 }, toListen(C4), channelData(0x4001, data)) },
  { name: 'UDP from an unknown peer', input: inFrame({ ...P4, port: 6009 }, alloc(P4, 50001), data) },
  { name: 'UDP to the wrong allocation port', input: inFrame(P4, alloc(P4, 50002), data) },
  { name: 'port neither listen nor allocation', input: inFrame(C4, { address: RELAY4, port: 80 }, data) },
  {
    name: 'peer is this relay but not an allocation port',
    input: cd4(0x4009),
    bindings: [...BINDINGS, bind(C4, 0x4009, { address: RELAY4, port: LISTEN }, 50009)],
  },
  { name: 'peer family without a relay address', input: cd4(0x4002), config: { ...BASE_CONFIG, relayV6: undefined } },
  { name: 'client family without a relay address', input: inFrame(P6, alloc(P6, 50002), data), config: { ...BASE_CONFIG, relayV4: undefined } },
  { name: 'output larger than the MTU (44)', input: inFrame(P4, alloc(P4, 50001), payloadOf(1500 - 28 - 3)) },
  { name: 'output larger than the MTU (46)', input: inFrame(P4, alloc(P4, 50003), payloadOf(1500 - 48 - 3)) },
  { name: 'output exactly at the MTU', input: inFrame(P4, alloc(P4, 50001), payloadOf(1500 - 28 - 4)) },
  { name: 'ChannelData -> UDP over the MTU', input: cd4(0, channelData(0x4001, payloadOf(1500 - 28 + 1))) },
  { name: 'IPv6 UDP from ::ffff:<peer> to an allocation port', input: inFrame(mapped(P4), { address: '2001:db8::1', port: 50001 }, data) },
  { name: 'IPv6 ChannelData from ::ffff:<client>', input: inFrame(mapped(C4), toListen(C6), channelData(0x4001, data)) },
  {
    name: 'binding to an IPv6 peer in ::ffff:0:0/96',
    input: inFrame(C6, toListen(C6), channelData(0x4071, data)),
    bindings: [...BINDINGS, bind(C6, 0x4071, mapped({ address: '198.51.100.71', port: 6071 }), 50071)],
    learn: [{ address: '198.51.100.71', port: 6071 }],
  },
);

/** The shared binding (what the bridge hands both tables) of a kernel one. */
const shared = (b: KernelBinding): ChannelBinding => {
  const pf = familyOf(b.peer.address);
  return {
    client: { family: familyOf(b.client.address), ...b.client },
    channel: b.channel,
    peer: { family: pf, ...b.peer },
    allocationPort: b.allocationPort,
    allocationPorts: pf === 4 ? { v4: b.allocationPort } : { v6: b.allocationPort },
    expiresAt: Date.now() + 600_000,
  };
};

let router: XdpRouter | undefined;
before(() => {
  if (process.getuid?.() !== 0 || !existsSync(OBJECT)) return;
  router = XdpRouter.load({ objectPath: OBJECT, mapCapacity: 1024, log });
});
after(() => router?.close());

/** The kernel's verdict: a reason name, or the relayed output as {from port, to, family, payload hex}. */
function kernel(r: XdpRouter, c: Case): string {
  const before = r.readReasons();
  const res = testRun(r, c.input);
  const after = r.readReasons();
  if (res.actionName === 'XDP_TX') {
    const d = decodeFrame(res.data)!;
    return `relayed ${d.family} ${d.src.port} -> ${dgramText(d.dst.address)}:${d.dst.port} ${hex(d.payload)}`;
  }
  const changed = REASON_NAMES.filter((n) => after[n] !== before[n]);
  return `${res.actionName} ${changed.join(',')}`;
}

function userspace(c: Case): string {
  const cfg = c.config ?? BASE_CONFIG;
  const table = new ChannelTable(cfg.listenPort);
  for (const b of c.bindings ?? BINDINGS) table.install(shared(b));
  const d = decodeFrame(c.input)!;
  const kind = d.dst.port === cfg.listenPort ? 'listen' : 'allocation';
  const out = newOutput();
  const r = decide(table, normalized(cfg), kind, d.dst.port, d.family, dgramText(d.src.address), d.src.port, d.payload, 0, d.payload.length, out);
  if (r !== RELAYED) return `${REASON_NAMES[r]!.startsWith('drop_') ? 'XDP_DROP' : 'XDP_PASS'} ${REASON_NAMES[r]}`;
  const t = out.target!;
  const body = d.payload.subarray(out.start, out.end);
  const payload = t.channel >= 0 ? channelData(t.channel, body) : body;
  return `relayed ${t.to.family} ${t.from.port} -> ${t.to.address}:${t.to.port} ${hex(payload)}`;
}

for (const c of cases) {
  test(`fast path parity: ${c.name}`, (t) => {
    if (!(requireRoot(t) && requireCapability(t, existsSync(OBJECT), `needs ${OBJECT} (make -C bpf)`))) return;
    const r = router!;
    r.writeConfig(c.config ?? BASE_CONFIG);
    r.clearBindings();
    for (const b of c.bindings ?? BINDINGS) r.putChannel(b);
    // Next hops as the sidecar mirrors them from the kernel (nothing is learned from frames).
    installNextHops(r, SCENE_ROUTES, [...SCENE_NEIGHBOURS, ...(c.learn ?? []).map((e) => neighbourOf(e.address))]);
    assert.equal(userspace(c), kernel(r, c));
  });
}

test('fast path parity: every relaying case relays (the comparison is not vacuous)', (t) => {
  if (!(requireRoot(t) && requireCapability(t, existsSync(OBJECT), `needs ${OBJECT}`))) return;
  const relayed = cases.filter((c) => userspace(c).startsWith('relayed')).length;
  assert.ok(relayed >= 25, `${relayed} relayed cases`);
});
