import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD, decodeMessage, encodeChannelData } from '../../../src/relay/stun/index.ts';
import type { ChannelBinding } from '../../../src/relay/server/types.ts';
import { Harness, LISTEN4, LISTEN6, addr, closePort, datagram, decodeOk, event, expectOutputs, response } from './harness.ts';

const c1 = addr('198.51.100.1', 40001);
const peer = addr('203.0.113.5', 6000);
const peerSamePortOther = addr('203.0.113.5', 6001);
const peer6 = addr('2001:db8:2::7', 7000);
const bytes = (s: string) => new Uint8Array(Buffer.from(s));

function allocated(extra = {}) {
  const h = new Harness();
  const c = h.client(c1);
  const { ports } = c.allocate(extra);
  return { h, c, port: ports.v4!, ports };
}

test('Refresh extends, LIFETIME 0 deletes (channels unbound, port closed); no allocation -> 437', () => {
  const { h, c, port } = allocated();
  expectOutputs(c.refresh(1800), [response(c1, METHOD.REFRESH, 'success', (m) => assert.equal(m.attributes.lifetime, 1800))]);
  assert.equal(h.server.nextDeadline(), h.now + 1_800_000);
  expectOutputs(c.refresh(), [response(c1, METHOD.REFRESH, 'success', (m) => assert.equal(m.attributes.lifetime, 600))]);
  c.createPermission(peer);
  c.channelBind(0x4000, peer);
  expectOutputs(c.refresh(0), [
    event('channel-unbound', (e) => assert.ok(e.type === 'channel-unbound' && e.binding.channel === 0x4000)),
    event('allocation-port-closed', (e) => assert.deepEqual(e, { type: 'allocation-port-closed', family: 4, port, client: c1 })),
    closePort(4, port),
    response(c1, METHOD.REFRESH, 'success', (m) => assert.equal(m.attributes.lifetime, 0)),
  ]);
  assert.deepEqual(h.server.stats().allocations + h.server.stats().permissions + h.server.stats().channels, 0);
  assert.equal(h.server.nextDeadline(), undefined);
  expectOutputs(c.refresh(0), [response(c1, METHOD.REFRESH, 437)]);
  expectOutputs(c.createPermission(peer), [response(c1, METHOD.CREATE_PERMISSION, 437)]);
  expectOutputs(c.channelBind(0x4000, peer), [response(c1, METHOD.CHANNEL_BIND, 437)]);
});

test('Refresh naming a family the allocation lacks -> 443', () => {
  const { c } = allocated();
  expectOutputs(c.refresh(600, { requestedAddressFamily: 6 }), [response(c1, METHOD.REFRESH, 443)]);
  expectOutputs(c.refresh(600, { requestedAddressFamily: 4 }), [response(c1, METHOD.REFRESH, 'success')]);
});

test('CreatePermission: several peers at once; any denied -> 403 and none installed; wrong family -> 443; none -> 400', () => {
  const { h, c } = allocated();
  expectOutputs(c.createPermission(peer, addr('10.0.0.1', 1)), [response(c1, METHOD.CREATE_PERMISSION, 403)]);
  assert.equal(h.server.stats().permissions, 0);
  expectOutputs(c.createPermission(peer6), [response(c1, METHOD.CREATE_PERMISSION, 443)]);
  expectOutputs(c.request(METHOD.CREATE_PERMISSION, {}), [response(c1, METHOD.CREATE_PERMISSION, 400)]);
  expectOutputs(c.createPermission(peer, addr('203.0.113.6', 1)), [response(c1, METHOD.CREATE_PERMISSION, 'success', (m) => assert.ok(m.integrity))]);
  assert.equal(h.server.stats().permissions, 2);
  for (const p of [addr('127.0.0.1', 1), addr('169.254.169.254', 80), addr('192.168.1.1', 1)]) {
    expectOutputs(c.createPermission(p), [response(c1, METHOD.CREATE_PERMISSION, 403)]);
  }
});

test('Send indication and Data indication follow permissions (by IP, port ignored)', () => {
  const { h, c, port } = allocated();
  const from = { family: 4 as const, port };
  expectOutputs(c.sendIndication(peer, bytes('early')), []);
  expectOutputs(h.input(bytes('in-early'), from, peer), []);
  assert.equal(h.server.stats().dropped['no-permission'], 2);
  c.createPermission(peer);
  expectOutputs(c.sendIndication(peer, bytes('hello')), [datagram(from, peer, bytes('hello'))]);
  expectOutputs(c.sendIndication(peerSamePortOther, bytes('other port')), [datagram(from, peerSamePortOther, bytes('other port'))]);
  expectOutputs(h.input(bytes('reply'), from, peerSamePortOther), [
    datagram(LISTEN4, c1, (d) => {
      const m = decodeOk(d);
      assert.equal(m.method, METHOD.DATA);
      assert.equal(m.cls, 'indication');
      assert.deepEqual(m.attributes.xorPeerAddress, [peerSamePortOther]);
      assert.deepEqual(Buffer.from(m.attributes.data!), Buffer.from('reply'));
    }),
  ]);
  // Policy-denied peers never get a permission, so Send to them is dropped.
  expectOutputs(c.sendIndication(addr('10.1.2.3', 1), bytes('x')), []);
  expectOutputs(c.sendIndication(peer6, bytes('x')), []);
  const s = h.server.stats();
  assert.deepEqual(s.relayed, { toPeer: { packets: 2, bytes: 15 }, toClient: { packets: 1, bytes: 5 } });
  assert.equal(s.dropped['peer-family'], 1);
});

test('Send indication from a client with no allocation is dropped', () => {
  const h = new Harness();
  expectOutputs(h.client(c1).sendIndication(peer, bytes('x')), []);
  assert.equal(h.server.stats().dropped['no-allocation'], 1);
});

test('ChannelBind: channel-bound event before the success; ChannelData both ways; permission installed', () => {
  const { h, c, port } = allocated();
  const from = { family: 4 as const, port };
  const [ev] = expectOutputs(c.channelBind(0x4001, peer), [
    event('channel-bound'),
    response(c1, METHOD.CHANNEL_BIND, 'success', (m) => assert.ok(m.integrity && m.hasFingerprint)),
  ]) as [{ binding: ChannelBinding }];
  assert.deepEqual(ev.binding, { client: c1, channel: 0x4001, peer, allocationPort: port, allocationPorts: { v4: port }, expiresAt: h.now + 600_000 });
  assert.equal(h.server.stats().permissions, 1);
  assert.equal(h.server.stats().channels, 1);
  // Client -> peer, padding stripped.
  expectOutputs(h.input(encodeChannelData(0x4001, bytes('abcde'), { pad: true }), LISTEN4, c1), [datagram(from, peer, bytes('abcde'))]);
  // Peer -> client as ChannelData (unpadded).
  expectOutputs(h.input(bytes('xyz'), from, peer), [datagram(LISTEN4, c1, encodeChannelData(0x4001, bytes('xyz')))]);
  // Same peer IP, other port: no channel, but the permission allows a Data indication.
  expectOutputs(h.input(bytes('p2'), from, peerSamePortOther), [datagram(LISTEN4, c1, (d) => assert.equal(decodeOk(d).method, METHOD.DATA))]);
  // Unbound channel number: dropped and counted.
  expectOutputs(h.input(encodeChannelData(0x4002, bytes('zz')), LISTEN4, c1), []);
  assert.equal(h.server.stats().dropped['no-channel'], 1);
  // Refresh of the same pair -> channel-refreshed, then success.
  h.advance(1000);
  expectOutputs(c.channelBind(0x4001, peer), [
    event('channel-refreshed', (e) => assert.ok(e.type === 'channel-refreshed' && e.binding.expiresAt === h.now + 600_000)),
    response(c1, METHOD.CHANNEL_BIND, 'success'),
  ]);
});

test('ChannelBind errors: bad number 400, other peer on bound channel 400, peer on another channel 400, denied 403, family 443', () => {
  const { h, c } = allocated();
  for (const n of [0x3fff, 0x5000, 0x0000, 0xffff]) expectOutputs(c.channelBind(n, peer), [response(c1, METHOD.CHANNEL_BIND, 400)]);
  expectOutputs(c.request(METHOD.CHANNEL_BIND, { channelNumber: 0x4000 }), [response(c1, METHOD.CHANNEL_BIND, 400)]);
  expectOutputs(c.request(METHOD.CHANNEL_BIND, { xorPeerAddress: [peer] }), [response(c1, METHOD.CHANNEL_BIND, 400)]);
  expectOutputs(c.channelBind(0x4000, addr('10.0.0.5', 9)), [response(c1, METHOD.CHANNEL_BIND, 403)]);
  expectOutputs(c.channelBind(0x4000, peer6), [response(c1, METHOD.CHANNEL_BIND, 443)]);
  assert.equal(h.server.stats().channels, 0);
  c.channelBind(0x4000, peer);
  expectOutputs(c.channelBind(0x4000, peerSamePortOther), [response(c1, METHOD.CHANNEL_BIND, 400)]);
  expectOutputs(c.channelBind(0x4005, peer), [response(c1, METHOD.CHANNEL_BIND, 400)]);
  assert.equal(h.server.stats().channels, 1);
  assert.equal(h.server.stats().responses['channel-bind:400'], 8);
});

test('dual allocation relays to IPv6 peers from the IPv6 port and IPv4 peers from the IPv4 port', () => {
  const { h, c, ports } = allocated({ additionalAddressFamily: 6 });
  const [ev] = expectOutputs(c.channelBind(0x4000, peer6), [event('channel-bound'), response(c1, METHOD.CHANNEL_BIND, 'success')]) as [{ binding: ChannelBinding }];
  assert.equal(ev.binding.allocationPort, ports.v6);
  assert.deepEqual(ev.binding.allocationPorts, ports);
  c.createPermission(peer);
  expectOutputs(h.input(encodeChannelData(0x4000, bytes('six')), LISTEN4, c1), [datagram({ family: 6, port: ports.v6! }, peer6, bytes('six'))]);
  expectOutputs(c.sendIndication(peer, bytes('four')), [datagram({ family: 4, port: ports.v4! }, peer, bytes('four'))]);
  expectOutputs(h.input(bytes('back6'), { family: 6, port: ports.v6! }, peer6), [datagram(LISTEN4, c1, encodeChannelData(0x4000, bytes('back6')))]);
  // An IPv4 source on the IPv6 port is not a valid peer.
  expectOutputs(h.input(bytes('x'), { family: 6, port: ports.v6! }, peer), []);
});

test('IPv6 client on the IPv6 listen socket', () => {
  const h = new Harness();
  const c6 = addr('2001:db8:1::1', 5555);
  const c = h.client(c6);
  const { ports } = c.allocate({ requestedAddressFamily: 6 });
  c.createPermission(peer6);
  expectOutputs(h.input(bytes('hi'), { family: 6, port: ports.v6! }, peer6), [
    datagram(LISTEN6, c6, (d) => assert.deepEqual(decodeOk(d).attributes.xorPeerAddress, [peer6])),
  ]);
  // Non-canonical IPv6 text from the transport maps onto the same permission.
  expectOutputs(h.input(bytes('hi'), { family: 6, port: ports.v6! }, addr('2001:DB8:2:0::7', 7000)), [datagram(LISTEN6, c6, () => {})]);
});

test('datagrams on an unknown port or from a peer that is really the client are handled quietly', () => {
  const { h } = allocated();
  expectOutputs(h.input(bytes('x'), { family: 4, port: 51234 }, peer), []);
  assert.equal(h.server.stats().dropped['no-allocation'], 1);
  assert.equal(decodeMessage(bytes('x')).kind, 'drop');
});

test('channels above 0x4FFF: 400 by default (RFC 8656), accepted with maxChannel 0x7FFF (RFC 5766 clients)', () => {
  const strict = allocated();
  expectOutputs(strict.c.channelBind(0x5000, peer), [response(c1, METHOD.CHANNEL_BIND, 400)]);
  expectOutputs(strict.h.input(new Uint8Array([0x50, 0x00, 0, 1, 7]), LISTEN4, c1), []);
  assert.equal(strict.h.server.stats().dropped['channel-data-bad-channel'], 1);

  const h = new Harness({ maxChannel: 0x7fff });
  const c = h.client(c1);
  const port = c.allocate().ports.v4!;
  const from = { family: 4 as const, port };
  expectOutputs(c.channelBind(0x7abc, peer), [event('channel-bound'), response(c1, METHOD.CHANNEL_BIND, 'success')]);
  expectOutputs(c.channelBind(0x8000, peer2()), [response(c1, METHOD.CHANNEL_BIND, 400)]);
  expectOutputs(h.input(new Uint8Array([0x7a, 0xbc, 0, 2, 7, 8, 0, 0]), LISTEN4, c1), [datagram(from, peer, new Uint8Array([7, 8]))]);
  expectOutputs(h.input(new Uint8Array([9]), from, peer), [datagram(LISTEN4, c1, new Uint8Array([0x7a, 0xbc, 0, 1, 9]))]);
  expectOutputs(h.input(new Uint8Array([0x7a, 0xbc, 0, 9, 7]), LISTEN4, c1), []);
  assert.equal(h.server.stats().dropped['channel-data-truncated'], 1);
});

function peer2() {
  return addr('203.0.113.77', 1);
}
