import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD, encodeChannelData } from '../../../src/relay/stun/index.ts';
import { Harness, LISTEN4, addr, closePort, datagram, event, expectOutputs, response } from './harness.ts';

const c1 = addr('198.51.100.1', 40001);
const peer = addr('203.0.113.5', 6000);
const peer2 = addr('203.0.113.6', 6000);
const bytes = (s: string) => new Uint8Array(Buffer.from(s));

test('an allocation expires at its lifetime: channels unbound, port closed, later requests 437', () => {
  const h = new Harness();
  const c = h.client(c1);
  const port = c.allocate().ports.v4!;
  c.channelBind(0x4000, peer);
  // Keep the permission alive (a lapsed one would unbind the channel by itself).
  expectOutputs(h.advance(250_000), []);
  c.createPermission(peer);
  expectOutputs(h.advance(250_000), []);
  c.createPermission(peer);
  expectOutputs(h.advance(99_999), []);
  assert.equal(h.server.nextDeadline(), h.now + 1);
  expectOutputs(h.advance(1), [
    event('channel-unbound'),
    event('allocation-port-closed', (e) => assert.deepEqual(e, { type: 'allocation-port-closed', family: 4, port, client: c1 })),
    closePort(4, port),
  ]);
  assert.deepEqual(h.server.snapshot(), []);
  assert.equal(h.server.nextDeadline(), undefined);
  expectOutputs(c.refresh(600), [response(c1, METHOD.REFRESH, 437)]);
  expectOutputs(h.input(bytes('late'), { family: 4, port }, peer), []);
  // The 5-tuple is free again.
  c.allocate();
});

test('a permission lasts 300 s unless refreshed; relaying stops when it expires', () => {
  const h = new Harness();
  const c = h.client(c1);
  const port = c.allocate().ports.v4!;
  const from = { family: 4 as const, port };
  c.createPermission(peer);
  h.advance(200_000);
  c.createPermission(peer); // refresh: now lasts until 500 s
  expectOutputs(h.advance(200_000), []);
  expectOutputs(c.sendIndication(peer, bytes('a')), [datagram(from, peer, bytes('a'))]);
  expectOutputs(h.advance(100_000), []);
  assert.equal(h.server.stats().permissions, 0);
  expectOutputs(c.sendIndication(peer, bytes('b')), []);
  expectOutputs(h.input(bytes('c'), from, peer), []);
  assert.equal(h.server.stats().dropped['no-permission'], 2);
});

test('a channel expires after 600 s (channel-unbound), then is held 300 s against reuse', () => {
  const h = new Harness({ defaultLifetime: 3600 });
  const c = h.client(c1);
  const port = c.allocate().ports.v4!;
  const from = { family: 4 as const, port };
  c.channelBind(0x4000, peer);
  h.advance(299_000);
  c.createPermission(peer); // keep the permission alive past the channel's life
  h.advance(299_000);
  c.createPermission(peer);
  expectOutputs(h.advance(2_000), [
    event('channel-unbound', (e) => assert.ok(e.type === 'channel-unbound' && e.binding.channel === 0x4000 && e.binding.peer.address === peer.address)),
  ]);
  assert.equal(h.server.stats().channels, 0);
  // No more ChannelData either way; the peer falls back to Data indications.
  expectOutputs(h.input(encodeChannelData(0x4000, bytes('x')), LISTEN4, c1), []);
  expectOutputs(h.input(bytes('y'), from, peer), [datagram(LISTEN4, c1, () => {})]);
  // Held: neither the number nor the peer may be bound elsewhere.
  expectOutputs(c.channelBind(0x4000, peer2), [response(c1, METHOD.CHANNEL_BIND, 400)]);
  expectOutputs(c.channelBind(0x4001, peer), [response(c1, METHOD.CHANNEL_BIND, 400)]);
  assert.deepEqual(h.server.snapshot().map((e) => e.type), ['allocation-port-opened']);
  // After the hold both are free.
  h.advance(300_000);
  expectOutputs(c.channelBind(0x4000, peer2), [event('channel-bound'), response(c1, METHOD.CHANNEL_BIND, 'success')]);
  expectOutputs(c.channelBind(0x4001, peer), [event('channel-bound'), response(c1, METHOD.CHANNEL_BIND, 'success')]);
});

test('rebinding the same pair while held binds it again', () => {
  const h = new Harness({ defaultLifetime: 3600 });
  const c = h.client(c1);
  c.allocate();
  c.channelBind(0x4000, peer);
  expectOutputs(h.advance(600_000), [event('channel-unbound')]);
  expectOutputs(c.channelBind(0x4000, peer), [event('channel-bound'), response(c1, METHOD.CHANNEL_BIND, 'success')]);
  assert.equal(h.server.stats().channels, 1);
});

test('nextDeadline tracks the earliest of many timers without scanning', () => {
  const h = new Harness({ portRange: { min: 40000, max: 60000 } });
  const clients = Array.from({ length: 200 }, (_, i) => h.client(addr('198.51.100.3', 1000 + i)));
  for (const [i, c] of clients.entries()) {
    c.allocate({ lifetime: 600 + i });
  }
  assert.equal(h.server.nextDeadline(), h.now + 600_000);
  clients[0]!.refresh(3600);
  assert.equal(h.server.nextDeadline(), h.now + 601_000);
  const outs = h.advance(650_000);
  // Allocations 1..50 expired (lifetimes 601..650 s): port-closed event + close-port each.
  assert.equal(outs.length, 100);
  assert.equal(h.server.stats().allocations, 150);
});
