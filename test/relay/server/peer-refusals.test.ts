// Peers no allocation may have, at the server: an IPv6 peer that is an IPv4
// address in IPv6 form (refused with 403 before any state or data-plane event,
// so the kernel maps never see it), and the relay's own transport addresses
// (no relaying into the relay, no chaining allocations through it), refused
// for ChannelBind and CreatePermission and dropped for Send indications, whose
// permission covers every port of an address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD, encodeChannelData } from '../../../src/relay/stun/index.ts';
import { createPeerPolicy } from '../../../src/relay/policy/index.ts';
import { Harness, LISTEN6, LISTEN_PORT, RELAY_V4, RELAY_V6, addr, datagram, event, expectOutputs, response } from './harness.ts';

const bytes = (s: string) => new Uint8Array(Buffer.from(s));

test('an IPv4-mapped or -compatible IPv6 peer is refused with 403 on IPv6 and dual allocations, and nothing reaches the data plane', () => {
  const h = new Harness();
  const c6 = addr('2001:db8:c::1', 40000);
  const dual = addr('198.51.100.1', 40001);
  const clients = [h.client(c6), h.client(dual)];
  clients[0]!.allocate({ requestedAddressFamily: 6 });
  clients[1]!.allocate({ additionalAddressFamily: 6 });
  for (const c of clients) {
    const client = c.address;
    for (const peer of [addr('::ffff:203.0.113.5', 6000), addr('::ffff:cb00:7105', 6000), addr('::203.0.113.5', 6000)]) {
      expectOutputs(c.channelBind(0x4000, peer), [response(client, METHOD.CHANNEL_BIND, 403)]);
      expectOutputs(c.createPermission(peer), [response(client, METHOD.CREATE_PERMISSION, 403)]);
      // Without a permission a Send to it goes nowhere.
      expectOutputs(c.sendIndication(peer, bytes('x')), []);
    }
    // The public IPv6 and IPv4 peers themselves are fine.
    expectOutputs(c.channelBind(0x4001, addr('2001:db8:e::5', 6000)), [event('channel-bound'), response(client, METHOD.CHANNEL_BIND, 'success')]);
  }
  assert.equal(h.server.stats().responses['channel-bind:403'], 6);
  assert.equal(h.server.stats().responses['create-permission:403'], 6);
  assert.equal(h.server.stats().channels, 2);
});

test("the relay's own listen and allocation ports are refused as peers even when its addresses are allow-listed", () => {
  const range = { min: 50000, max: 50999 };
  const peerPolicy = createPeerPolicy({
    allowed: ['192.0.2.0/24', '2001:db8::/32'],
    relay: { addresses: [RELAY_V4, RELAY_V6], ports: [{ min: LISTEN_PORT, max: LISTEN_PORT }, range] },
  });
  const h = new Harness({ peerPolicy, portRange: range });
  const a = addr('198.51.100.1', 40000);
  const b = addr('198.51.100.2', 40000);
  const ca = h.client(a);
  const portA = ca.allocate().ports.v4!;
  const portB = h.client(b).allocate().ports.v4!;
  const listen4 = addr(RELAY_V4, LISTEN_PORT);
  const listen6 = addr(RELAY_V6, LISTEN_PORT);
  const allocationB = addr(RELAY_V4, portB);
  for (const peer of [listen4, allocationB, addr(RELAY_V4, range.max)]) {
    expectOutputs(ca.channelBind(0x4000, peer), [response(a, METHOD.CHANNEL_BIND, 403)]);
    expectOutputs(ca.createPermission(peer), [response(a, METHOD.CREATE_PERMISSION, 403)]);
  }
  // Another port of the relay's address is an ordinary peer: its permission
  // covers the address, yet a Send to the relay's own ports is dropped.
  const elsewhere = addr(RELAY_V4, 6000);
  expectOutputs(ca.createPermission(elsewhere), [response(a, METHOD.CREATE_PERMISSION, 'success')]);
  expectOutputs(ca.sendIndication(elsewhere, bytes('ok')), [datagram({ family: 4, port: portA }, elsewhere, bytes('ok'))]);
  expectOutputs(ca.sendIndication(listen4, bytes('loop')), []);
  expectOutputs(ca.sendIndication(allocationB, bytes('chain')), []);
  assert.equal(h.server.stats().dropped['relay-itself'], 2);
  // An IPv6 client cannot reach the relay's IPv6 listen port either.
  const c6 = addr('2001:db8:c::1', 40000);
  const cc6 = h.client(c6);
  cc6.allocate({ requestedAddressFamily: 6 });
  expectOutputs(cc6.channelBind(0x4000, listen6), [response(c6, METHOD.CHANNEL_BIND, 403)]);
  // Nothing was bound: ChannelData on the refused channel goes nowhere.
  expectOutputs(h.input(encodeChannelData(0x4000, bytes('x')), LISTEN6, c6), []);
  assert.equal(h.server.stats().channels, 0);
});
