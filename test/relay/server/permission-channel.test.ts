// The data plane relays a bound channel without checking permissions, this
// process relays only to a permitted peer IP. These scripts pin down the
// events that keep the two in step: a permission that lapses under a bound
// channel unbinds it, re-creating the permission binds it again (before the
// response), and the snapshot tells the same story.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD, encodeChannelData } from '../../../src/relay/stun/index.ts';
import type { ChannelBinding, DataPlaneEvent } from '../../../src/relay/server/types.ts';
import { Harness, LISTEN4, T0, addr, closePort, datagram, event, expectOutputs, response } from './harness.ts';

const c1 = addr('198.51.100.1', 40001);
const peer = addr('203.0.113.5', 6000);
const peerOtherPort = addr('203.0.113.5', 6001);
const other = addr('203.0.113.9', 7000);
const bytes = (s: string) => new Uint8Array(Buffer.from(s));

/** An event matcher that also checks the binding's channel and expiry. */
function channelEvent(type: 'channel-bound' | 'channel-refreshed' | 'channel-unbound', channel: number, expiresAt?: number) {
  return event(type, (e) => {
    const b = (e as { binding: ChannelBinding }).binding;
    assert.equal(b.channel, channel);
    if (expiresAt !== undefined) assert.equal(b.expiresAt, expiresAt);
  });
}

function setup() {
  const h = new Harness({ defaultLifetime: 3600 });
  const c = h.client(c1);
  const port = c.allocate().ports.v4!;
  return { h, c, port, relay: { family: 4 as const, port } };
}

const boundChannels = (h: Harness) =>
  h.server
    .snapshot()
    .filter((e): e is Extract<DataPlaneEvent, { type: 'channel-bound' }> => e.type === 'channel-bound')
    .map((e) => e.binding.channel);

test('a permission lapsing under a bound channel unbinds it; CreatePermission binds it again before answering', () => {
  const { h, c, relay } = setup();
  expectOutputs(c.channelBind(0x4000, peer), [channelEvent('channel-bound', 0x4000, T0 + 600_000), response(c1, METHOD.CHANNEL_BIND, 'success')]);
  expectOutputs(h.advance(299_999), []);
  // The permission (300 s) goes first; the channel (600 s) is still bound in the tables.
  expectOutputs(h.advance(1), [channelEvent('channel-unbound', 0x4000)]);
  assert.equal(h.server.stats().channels, 0);
  assert.deepEqual(boundChannels(h), []);
  // Userspace refuses both ways, as the kernel now does.
  expectOutputs(h.input(encodeChannelData(0x4000, bytes('out')), LISTEN4, c1), []);
  expectOutputs(h.input(bytes('in'), relay, peer), []);
  assert.equal(h.server.stats().dropped['no-permission'], 2);

  h.advance(50_000);
  expectOutputs(c.createPermission(peer), [
    channelEvent('channel-bound', 0x4000, T0 + 600_000), // the same binding as before: still expires at 600 s
    response(c1, METHOD.CREATE_PERMISSION, 'success'),
  ]);
  assert.equal(h.server.stats().channels, 1);
  assert.deepEqual(boundChannels(h), [0x4000]);
  expectOutputs(h.input(encodeChannelData(0x4000, bytes('out')), LISTEN4, c1), [datagram(relay, peer, bytes('out'))]);
  expectOutputs(h.input(bytes('in'), relay, peer), [datagram(LISTEN4, c1, encodeChannelData(0x4000, bytes('in')))]);
  // Refreshing a permission that never lapsed announces nothing.
  expectOutputs(c.createPermission(peer), [response(c1, METHOD.CREATE_PERMISSION, 'success')]);
  // The channel itself expires at 600 s: one unbind, not two.
  expectOutputs(h.advance(250_000 - 1), []);
  expectOutputs(h.advance(1), [channelEvent('channel-unbound', 0x4000)]);
  assert.equal(h.server.stats().channels, 0);
});

test('ChannelBind after the permission lapsed: one channel-bound carrying the new binding, then the answer', () => {
  const { h, c } = setup();
  c.channelBind(0x4000, peer);
  expectOutputs(h.advance(400_000), [channelEvent('channel-unbound', 0x4000)]);
  expectOutputs(c.channelBind(0x4000, peer), [channelEvent('channel-bound', 0x4000, h.now + 600_000), response(c1, METHOD.CHANNEL_BIND, 'success')]);
  assert.equal(h.server.stats().channels, 1);
  assert.equal(h.server.stats().permissions, 1);
  // While both are alive a ChannelBind is a plain refresh.
  expectOutputs(c.channelBind(0x4000, peer), [channelEvent('channel-refreshed', 0x4000, h.now + 600_000), response(c1, METHOD.CHANNEL_BIND, 'success')]);
});

test('a client that refreshes the channel by ChannelBind keeps the permission too: never unbound', () => {
  const { h, c } = setup();
  c.channelBind(0x4000, peer);
  for (let i = 0; i < 8; i++) {
    expectOutputs(h.advance(290_000), []);
    expectOutputs(c.channelBind(0x4000, peer), [channelEvent('channel-refreshed', 0x4000), response(c1, METHOD.CHANNEL_BIND, 'success')]);
  }
  assert.deepEqual(boundChannels(h), [0x4000]);
});

test('a permission is per IP: every channel to that IP follows it, other IPs are untouched', () => {
  const { h, c } = setup();
  c.channelBind(0x4000, peer);
  c.channelBind(0x4001, peerOtherPort);
  h.advance(100_000);
  c.channelBind(0x4002, other);
  expectOutputs(h.advance(200_000), [channelEvent('channel-unbound', 0x4000), channelEvent('channel-unbound', 0x4001)]);
  assert.deepEqual(boundChannels(h), [0x4002]);
  // A ChannelBind to one port re-creates the IP's permission: both come back,
  // each once, the rebound one with its new expiry.
  expectOutputs(c.channelBind(0x4001, peerOtherPort), [
    channelEvent('channel-bound', 0x4000, T0 + 600_000),
    channelEvent('channel-bound', 0x4001, h.now + 600_000),
    response(c1, METHOD.CHANNEL_BIND, 'success'),
  ]);
  assert.deepEqual(boundChannels(h).sort(), [0x4000, 0x4001, 0x4002]);
  assert.equal(h.server.stats().channels, 3);
});

test('CreatePermission for several IPs binds the channels of each before its one answer', () => {
  const { h, c } = setup();
  c.channelBind(0x4000, peer);
  c.channelBind(0x4001, other);
  expectOutputs(h.advance(300_000), [channelEvent('channel-unbound', 0x4000), channelEvent('channel-unbound', 0x4001)]);
  expectOutputs(c.createPermission(peer, other), [
    channelEvent('channel-bound', 0x4000),
    channelEvent('channel-bound', 0x4001),
    response(c1, METHOD.CREATE_PERMISSION, 'success'),
  ]);
});

test('a channel in its hold stays unbound whatever happens to the permission', () => {
  const { h, c } = setup();
  c.channelBind(0x4000, peer);
  h.advance(299_000);
  c.createPermission(peer); // until 599 s
  expectOutputs(h.advance(1_000), []);
  h.advance(298_000);
  c.createPermission(peer); // until 897 s: outlives the channel
  expectOutputs(h.advance(2_000), [channelEvent('channel-unbound', 0x4000)]); // channel expiry at 600 s
  // Held: the permission lapsing or coming back announces nothing.
  expectOutputs(h.advance(298_000), []); // 898 s: the permission lapses, 2 s of hold left
  assert.equal(h.server.stats().permissions, 0);
  expectOutputs(c.createPermission(peer), [response(c1, METHOD.CREATE_PERMISSION, 'success')]);
  assert.deepEqual(boundChannels(h), []);
  // Reviving the held pair binds it once.
  expectOutputs(c.channelBind(0x4000, peer), [channelEvent('channel-bound', 0x4000, h.now + 600_000), response(c1, METHOD.CHANNEL_BIND, 'success')]);
});

test('a permission lapsed, then the channel expires: no second unbind; held then freed', () => {
  const { h, c } = setup();
  c.channelBind(0x4000, peer);
  expectOutputs(h.advance(300_000), [channelEvent('channel-unbound', 0x4000)]);
  expectOutputs(h.advance(300_000), []);
  expectOutputs(c.channelBind(0x4000, other), [response(c1, METHOD.CHANNEL_BIND, 400)]); // held
  expectOutputs(h.advance(300_000), []);
  expectOutputs(c.channelBind(0x4000, other), [channelEvent('channel-bound', 0x4000), response(c1, METHOD.CHANNEL_BIND, 'success')]);
});

test('Refresh of the allocation touches neither; deleting it unbinds only channels still bound', () => {
  const { h, c, port } = setup();
  c.channelBind(0x4000, peer);
  c.channelBind(0x4001, other);
  h.advance(200_000);
  expectOutputs(c.refresh(3600), [response(c1, METHOD.REFRESH, 'success')]);
  expectOutputs(c.createPermission(other), [response(c1, METHOD.CREATE_PERMISSION, 'success')]);
  expectOutputs(h.advance(100_000), [channelEvent('channel-unbound', 0x4000)]);
  expectOutputs(c.refresh(0), [
    channelEvent('channel-unbound', 0x4001),
    event('allocation-port-closed'),
    closePort(4, port),
    response(c1, METHOD.REFRESH, 'success'),
  ]);
});
