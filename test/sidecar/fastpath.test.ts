// The sidecar's userspace fast path around its decision (the decision itself
// is compared with the XDP program in fastpath-parity.test.ts): the binding
// table follows the bridge's map calls, a removed binding is gone before the
// kernel's half of the call settles (so before the CHANNEL_ACK, hence the
// relay's answer), outputs carry the right bytes, and counts are per path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelTable, UserspaceRelayer, bothMaps, type Target } from '../../src/sidecar/fastpath.ts';
import type { ChannelBinding } from '../../src/shared/binding.ts';
import type { ChannelMap } from '../../src/sidecar/sockets/relay-bridge.ts';

const LISTEN = 3478;
const RELAY = '203.0.113.1';
const cfg = { listenPort: LISTEN, portMin: 49152, portMax: 65535, relayV4: RELAY, mtu: 1500 };
const binding = (peer = { address: '198.51.100.20', port: 6000 }, channel = 0x4001): ChannelBinding => ({
  client: { family: 4, address: '192.0.2.10', port: 50000 },
  channel,
  peer: { family: 4, ...peer },
  allocationPort: 50001,
  allocationPorts: { v4: 50001 },
  expiresAt: 0,
});
const cd = (channel: number, payload: number[]) => Buffer.from([channel >> 8, channel & 255, 0, payload.length, ...payload]);

function relayer() {
  const sent: { target: Target; bytes: number[] }[] = [];
  const r = new UserspaceRelayer(new ChannelTable(LISTEN), cfg);
  r.attach((target, data, start, end) => {
    sent.push({ target, bytes: [...data.subarray(start, end)] });
    return true;
  });
  return { r, sent };
}
const listen = { family: 4, port: LISTEN } as const;
const allocation = { family: 4, port: 50001 } as const;

test('fast path: ChannelData of a bound channel leaves as UDP to the peer from the allocation port, and back as ChannelData', () => {
  const { r, sent } = relayer();
  r.table.install(binding());
  assert.equal(r.handle(listen, 'listen', cd(0x4001, [1, 2, 3]), 0, 7, 4, '192.0.2.10', 50000), true);
  assert.deepEqual(sent[0]!.bytes, [1, 2, 3]);
  assert.deepEqual(sent[0]!.target.from, { family: 4, port: 50001 });
  assert.deepEqual(sent[0]!.target.to, { family: 4, address: '198.51.100.20', port: 6000 });
  assert.equal(sent[0]!.target.channel, -1);
  // at an offset inside a larger buffer (a drain's memory)
  const big = Buffer.concat([Buffer.alloc(9), Buffer.from([7, 7])]);
  assert.equal(r.handle(allocation, 'allocation', big, 9, 2, 4, '198.51.100.20', 6000), true);
  assert.deepEqual(sent[1]!.bytes, [7, 7]);
  assert.deepEqual(sent[1]!.target.from, { family: 4, port: LISTEN });
  assert.equal(sent[1]!.target.channel, 0x4001);
  const st = r.stats();
  assert.deepEqual(st.paths.chan_to_udp_44, { packets: 1, bytes: 3 });
  assert.deepEqual(st.paths.udp_to_chan_44, { packets: 1, bytes: 2 });
});

test('fast path: what it does not relay goes on to the relay, counted by kernel reason', () => {
  const { r, sent } = relayer();
  r.table.install(binding());
  const stun = Buffer.from([0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]);
  assert.equal(r.handle(listen, 'listen', stun, 0, stun.length, 4, '192.0.2.10', 50000), false);
  assert.equal(r.handle(listen, 'listen', cd(0x4002, [1]), 0, 5, 4, '192.0.2.10', 50000), false);
  assert.equal(r.handle(allocation, 'allocation', Buffer.from([1]), 0, 1, 4, '198.51.100.21', 6000), false);
  assert.equal(sent.length, 0);
  assert.deepEqual(r.stats().passed, { pass_stun: 1, pass_no_binding: 2 });
});

test('fast path: a peer on this host outside the relay ports is relayed as the relay would (the kernel passes it)', () => {
  const { r, sent } = relayer();
  r.table.install(binding({ address: RELAY, port: 6000 }, 0x4001));
  r.table.install(binding({ address: RELAY, port: LISTEN }, 0x4002));
  assert.equal(r.handle(listen, 'listen', cd(0x4001, [5]), 0, 5, 4, '192.0.2.10', 50000), true);
  assert.deepEqual(sent[0]!.target.to, { family: 4, address: RELAY, port: 6000 });
  // the listen port is the relay's to refuse
  assert.equal(r.handle(listen, 'listen', cd(0x4002, [5]), 0, 5, 4, '192.0.2.10', 50000), false);
  assert.equal(sent.length, 1);
});

test('fast path: a binding removed through the bridge is gone before the kernel half settles (so before the ack)', async () => {
  const { r, sent } = relayer();
  let settle!: () => void;
  const kernel: ChannelMap = {
    install: () => {},
    remove: () => new Promise<void>((res) => (settle = res)),
    replaceAll: () => {},
    clear: () => {},
  };
  const maps = bothMaps(r.table, kernel);
  await maps.install(binding());
  assert.equal(r.handle(listen, 'listen', cd(0x4001, [1]), 0, 5, 4, '192.0.2.10', 50000), true);
  const removing = maps.remove(binding());
  // The kernel's delete has not finished: the userspace half is already gone.
  assert.equal(r.handle(listen, 'listen', cd(0x4001, [1]), 0, 5, 4, '192.0.2.10', 50000), false);
  assert.equal(r.handle(allocation, 'allocation', Buffer.from([1]), 0, 1, 4, '198.51.100.20', 6000), false);
  settle();
  await removing;
  assert.equal(sent.length, 1);
  assert.equal(r.table.size, 0);
});

test('fast path: the table follows the kernel writer (a key of another binding refuses; remove only what it holds; replaceAll; clear)', () => {
  const t = new ChannelTable(LISTEN);
  t.install(binding());
  t.install(binding()); // a refresh
  assert.equal(t.size, 1);
  assert.throws(() => t.install(binding({ address: '198.51.100.99', port: 6000 })), /EEXIST/);
  t.remove(binding({ address: '198.51.100.99', port: 6000 }));
  assert.equal(t.size, 1, 'another binding of the same channel key removes nothing');
  t.replaceAll([binding({ address: '198.51.100.30', port: 7000 }, 0x4005)]);
  assert.equal(t.bindings().length, 1);
  assert.equal(t.chan(4, '192.0.2.10', 50000, 0x4001), undefined);
  assert.ok(t.chan(4, '192.0.2.10', 50000, 0x4005));
  assert.equal(t.chan(6, '192.0.2.10', 50000, 0x4005), undefined, 'the family is part of the key');
  t.clear();
  assert.equal(t.size, 0);
});
