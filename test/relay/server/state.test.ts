import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RelayState, CHANNEL_HOLD_MS, CHANNEL_LIFETIME_MS, PERMISSION_LIFETIME_MS, RESERVATION_LIFETIME_MS } from '../../../src/relay/server/state.ts';
import type { Output, TransportAddress } from '../../../src/relay/server/types.ts';

const client: TransportAddress = { family: 4, address: '198.51.100.7', port: 40000 };
const peer: TransportAddress = { family: 4, address: '203.0.113.9', port: 5000 };
const peer2: TransportAddress = { family: 4, address: '203.0.113.10', port: 5000 };

function setup() {
  const out: Output[] = [];
  const s = new RelayState({ min: 50000, max: 50100 }, (o) => out.push(o));
  s.pools[4].take(50010);
  const a = s.addAllocation({
    client, local: { family: 4, port: 3478 }, username: 'u', user: 'u', key: new Uint8Array(16),
    ports: { v4: 50010 }, expiresAt: 600_000, transactionKey: 't', response: new Uint8Array(),
  });
  return { s, a, out };
}

test('permissions expire after 300 s unless refreshed', () => {
  const { s, a } = setup();
  s.installPermission(a, peer.address, 0);
  s.installPermission(a, peer.address, 100_000);
  assert.equal(s.permissions, 1);
  s.expire(PERMISSION_LIFETIME_MS);
  assert.ok(s.hasPermission(a, peer.address));
  s.expire(100_000 + PERMISSION_LIFETIME_MS);
  assert.ok(!s.hasPermission(a, peer.address));
  assert.equal(s.permissions, 0);
});

test('channel: bind, refresh, expire, hold blocks reuse, then frees', () => {
  const { s, a, out } = setup();
  // A permission for both peers' IPs that outlives the channel (none lapses here).
  s.installPermission(a, peer.address, 0);
  s.installPermission(a, peer2.address, 0);
  s.installPermission(a, peer.address, 1_000_000);
  s.installPermission(a, peer2.address, 1_000_000);
  assert.equal(s.bindChannel(a, 0x4000, peer, 0), 'bound');
  assert.equal(s.bindChannel(a, 0x4000, peer, 1000), 'refreshed');
  assert.equal(s.bindChannel(a, 0x4001, peer, 1000), 'conflict');
  assert.equal(s.bindChannel(a, 0x4000, peer2, 1000), 'conflict');
  assert.deepEqual(out.map((o) => o.kind === 'event' && o.event.type), ['channel-bound', 'channel-refreshed']);
  out.length = 0;
  const expiry = 1000 + CHANNEL_LIFETIME_MS;
  assert.equal(s.nextDeadline(), a.expiresAt); // allocation (600 s) comes before the channel (601 s)
  s.refreshAllocation(a, 10_000_000);
  assert.equal(s.nextDeadline(), expiry);
  s.expire(expiry);
  assert.equal(s.channels, 0);
  assert.equal(s.activeChannel(a, 0x4000), undefined);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.kind === 'event' && out[0]!.event.type, 'channel-unbound');
  assert.equal(s.bindChannel(a, 0x4000, peer2, expiry + 1), 'conflict');
  assert.equal(s.bindChannel(a, 0x4001, peer, expiry + 1), 'conflict');
  s.expire(expiry + CHANNEL_HOLD_MS);
  assert.equal(s.bindChannel(a, 0x4000, peer2, expiry + CHANNEL_HOLD_MS), 'bound');
  assert.equal(s.bindChannel(a, 0x4001, peer, expiry + CHANNEL_HOLD_MS), 'bound');
});

test('rebinding the same pair during the hold revives it', () => {
  const { s, a } = setup();
  s.refreshAllocation(a, 10_000_000);
  s.installPermission(a, peer.address, 0);
  s.bindChannel(a, 0x4000, peer, 0);
  s.installPermission(a, peer.address, 500_000);
  s.expire(CHANNEL_LIFETIME_MS);
  assert.equal(s.channels, 0);
  assert.equal(s.bindChannel(a, 0x4000, peer, CHANNEL_LIFETIME_MS + 1), 'bound');
  assert.equal(s.channels, 1);
  s.expire(CHANNEL_LIFETIME_MS + CHANNEL_HOLD_MS); // the old hold deadline no longer applies
  assert.ok(s.activeChannel(a, 0x4000));
});

test('removing an allocation unbinds channels first, then closes ports', () => {
  const { s, a, out } = setup();
  s.installPermission(a, peer.address, 0);
  s.bindChannel(a, 0x4000, peer, 0);
  out.length = 0;
  s.expire(600_000);
  assert.deepEqual(out.map((o) => (o.kind === 'event' ? o.event.type : o.kind)), ['channel-unbound', 'allocation-port-closed', 'close-port']);
  assert.equal(s.allocations, 0);
  assert.equal(s.permissions, 0);
  assert.equal(s.channels, 0);
  assert.equal(s.allocationsOf('u'), 0);
  assert.equal(s.pools[4].isTaken(50010), false);
  assert.equal(s.nextDeadline(), undefined);
  assert.deepEqual(s.snapshot(), []);
});

test('reservations release their port after 30 s', () => {
  const { s, a } = setup();
  s.pools[4].take(50021);
  s.addReservation('tok', 4, 50021, 0, a);
  s.expire(RESERVATION_LIFETIME_MS - 1);
  assert.ok(s.reservations.has('tok'));
  s.expire(RESERVATION_LIFETIME_MS);
  assert.ok(!s.reservations.has('tok'));
  assert.equal(s.pools[4].isTaken(50021), false);
  assert.equal(s.claimReservation('tok'), undefined);
});
