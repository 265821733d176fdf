// The configured limits (src/relay/server/limits.ts): what one request, one
// allocation and one user may hold, the RFC 8656 code each refusal gets, the
// refusal counters, and the user the quotas are keyed by.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { METHOD } from '../../../src/relay/stun/index.ts';
import { createFirezoneCredentials, createRestCredentials, mintFirezoneCredential, mintRestCredential } from '../../../src/relay/auth/index.ts';
import { CHANNEL_HOLD_MS, CHANNEL_LIFETIME_MS, PERMISSION_LIFETIME_MS, RESERVATION_LIFETIME_MS } from '../../../src/relay/server/state.ts';
import type { Output } from '../../../src/relay/server/types.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { ENV_NAMES, fromEnv } from '../../../src/config/env.ts';
import { buildServerOptions } from '../../../src/relay/build.ts';
import { Harness, addr, closePort, event, expectOutputs, response, type TurnClient } from './harness.ts';

const peers = Array.from({ length: 8 }, (_, i) => addr(`203.0.113.${i + 1}`, 6000));
const c1 = addr('198.51.100.1', 40001);

/** An Allocate from `c` that must be refused with `code`. */
function refusedAllocate(c: TurnClient, code: number, attributes = {}): void {
  if (c.nonce === undefined) c.challenge();
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17, ...attributes }), [response(c.address, METHOD.ALLOCATE, code)]);
}

test('quota key: freshly minted REST credentials of one user share its allocation quota', () => {
  const secret = 'rest-secret';
  const h = new Harness({ credentials: createRestCredentials(secret), maxAllocationsPerUser: 2 });
  const mint = (user: string, ttl: number) => mintRestCredential(secret, user, ttl, h.now);
  let port = 40000;
  const as = (cred: { username: string; password: string }) => h.client(addr('198.51.100.1', ++port), cred.username, cred.password);
  const first = as(mint('alice', 600));
  first.allocate();
  as(mint('alice', 601)).allocate();
  const fresh = mint('alice', 7200);
  refusedAllocate(as(fresh), 486);
  // Another user, and a bare expiry (no user named: its own quota), are not affected.
  as(mint('bob', 600)).allocate();
  as(mintRestCredential(secret, undefined, 600, h.now)).allocate();
  assert.deepEqual(h.server.stats().refused, { 'allocations-per-user': 1 });
  // Deleting one of alice's allocations gives the quota back, to any of her credentials.
  expectOutputs(first.refresh(0), [event('allocation-port-closed'), closePort(4), response(first.address, METHOD.REFRESH, 'success')]);
  as(fresh).allocate();
});

test('quota key: Firezone credentials are keyed by their salt, static users by their name', () => {
  const h = new Harness({ credentials: createFirezoneCredentials('fz-secret'), maxAllocationsPerUser: 1 });
  const a = mintFirezoneCredential('fz-secret', 'device-a', 600, h.now);
  const a2 = mintFirezoneCredential('fz-secret', 'device-a', 900, h.now);
  const b = mintFirezoneCredential('fz-secret', 'device-b', 600, h.now);
  h.client(addr('198.51.100.1', 1), a.username, a.password).allocate();
  refusedAllocate(h.client(addr('198.51.100.1', 2), a2.username, a2.password), 486);
  h.client(addr('198.51.100.1', 3), b.username, b.password).allocate();

  const s = new Harness({ maxAllocationsPerUser: 1 });
  s.client(addr('198.51.100.1', 1), 'alice').allocate();
  refusedAllocate(s.client(addr('198.51.100.1', 2), 'alice'), 486);
  s.client(addr('198.51.100.1', 3), 'bob').allocate();
});

test('peers per request: more XOR-PEER-ADDRESS than allowed -> 508, nothing installed (§9.2)', () => {
  const h = new Harness({ maxPeersPerRequest: 3 });
  const c = h.client(c1);
  c.allocate();
  expectOutputs(c.createPermission(...peers.slice(0, 4)), [response(c1, METHOD.CREATE_PERMISSION, 508)]);
  assert.equal(h.server.stats().permissions, 0);
  expectOutputs(c.createPermission(...peers.slice(0, 3)), [response(c1, METHOD.CREATE_PERMISSION, 'success')]);
  assert.equal(h.server.stats().permissions, 3);
  assert.deepEqual(h.server.stats().refused, { 'peers-per-request': 1 });
  assert.equal(h.server.stats().responses['create-permission:508'], 1);
});

test('permissions per allocation: new peer IPs beyond the limit -> 508, all or nothing; refreshing is always allowed', () => {
  const h = new Harness({ maxPermissionsPerAllocation: 2 });
  const c = h.client(c1);
  c.allocate();
  expectOutputs(c.createPermission(peers[0]!, peers[1]!), [response(c1, METHOD.CREATE_PERMISSION, 'success')]);
  // Another port of a permitted IP is the same permission (§9).
  expectOutputs(c.createPermission(peers[0]!, { ...peers[1]!, port: 7 }), [response(c1, METHOD.CREATE_PERMISSION, 'success')]);
  expectOutputs(c.createPermission(peers[0]!, peers[2]!), [response(c1, METHOD.CREATE_PERMISSION, 508)]);
  // A ChannelBind installs a permission too: to a new IP it is refused, to a permitted one it binds.
  expectOutputs(c.channelBind(0x4000, peers[3]!), [response(c1, METHOD.CHANNEL_BIND, 508)]);
  expectOutputs(c.channelBind(0x4000, peers[1]!), [event('channel-bound'), response(c1, METHOD.CHANNEL_BIND, 'success')]);
  assert.equal(h.server.stats().permissions, 2);
  assert.deepEqual(h.server.stats().refused, { 'permissions-per-allocation': 2 });
  // Once one lapses, there is room again.
  h.advance(PERMISSION_LIFETIME_MS - 1);
  expectOutputs(c.createPermission(peers[1]!), [response(c1, METHOD.CREATE_PERMISSION, 'success')]);
  expectOutputs(h.advance(1), []); // peers[0] lapses; the channel's permission (peers[1]) was refreshed
  expectOutputs(c.createPermission(peers[2]!), [response(c1, METHOD.CREATE_PERMISSION, 'success')]);
});

test('channels per allocation: a new number beyond the limit -> 508 (§12.2); held numbers count until their hold ends', () => {
  const h = new Harness({ maxChannelsPerAllocation: 2, defaultLifetime: 3600 });
  const c = h.client(c1);
  c.allocate();
  const bound = [event('channel-bound'), response(c1, METHOD.CHANNEL_BIND, 'success')];
  expectOutputs(c.channelBind(0x4000, peers[0]!), bound);
  expectOutputs(c.channelBind(0x4001, peers[1]!), bound);
  expectOutputs(c.channelBind(0x4002, peers[2]!), [response(c1, METHOD.CHANNEL_BIND, 508)]);
  // Refreshing a bound number is not a new channel.
  expectOutputs(c.channelBind(0x4000, peers[0]!), [event('channel-refreshed'), response(c1, METHOD.CHANNEL_BIND, 'success')]);
  assert.deepEqual(h.server.stats().refused, { 'channels-per-allocation': 1 });
  // The channels expire into their 5-minute hold (permissions kept alive): still counted.
  const permitAll = () => expectOutputs(c.createPermission(peers[0]!, peers[1]!, peers[2]!), [response(c1, METHOD.CREATE_PERMISSION, 'success')]);
  for (let i = 0; i < 2; i++) {
    expectOutputs(h.advance(CHANNEL_LIFETIME_MS / 3), []);
    permitAll();
  }
  expectOutputs(h.advance(CHANNEL_LIFETIME_MS / 3), [event('channel-unbound'), event('channel-unbound')]);
  expectOutputs(c.channelBind(0x4002, peers[2]!), [response(c1, METHOD.CHANNEL_BIND, 508)]);
  permitAll();
  expectOutputs(h.advance(CHANNEL_HOLD_MS), []); // the holds end: the numbers are free
  expectOutputs(c.channelBind(0x4002, peers[2]!), bound);
});

test('channels per user: counted over all of the user\'s allocations -> 508; deleting an allocation gives them back', () => {
  const h = new Harness({ maxChannelsPerUser: 3 });
  const a = h.client(addr('198.51.100.1', 1));
  const b = h.client(addr('198.51.100.1', 2));
  const other = h.client(addr('198.51.100.1', 3), 'bob');
  for (const c of [a, b, other]) c.allocate();
  const ok = (c: TurnClient) => [event('channel-bound'), response(c.address, METHOD.CHANNEL_BIND, 'success')];
  expectOutputs(a.channelBind(0x4000, peers[0]!), ok(a));
  expectOutputs(a.channelBind(0x4001, peers[1]!), ok(a));
  expectOutputs(b.channelBind(0x4000, peers[0]!), ok(b));
  expectOutputs(b.channelBind(0x4001, peers[1]!), [response(b.address, METHOD.CHANNEL_BIND, 508)]);
  expectOutputs(other.channelBind(0x4000, peers[0]!), ok(other));
  assert.deepEqual(h.server.stats().refused, { 'channels-per-user': 1 });
  assert.equal(h.server.stats().channels, 4);
  expectOutputs(a.refresh(0), [
    event('channel-unbound'),
    event('channel-unbound'),
    event('allocation-port-closed'),
    closePort(4),
    response(a.address, METHOD.REFRESH, 'success'),
  ]);
  expectOutputs(b.channelBind(0x4001, peers[1]!), ok(b));
});

test('reservations: per user -> 486, in all -> 508; counted in stats', () => {
  const h = new Harness({ maxReservationsPerUser: 1, maxReservations: 2 });
  const reserve = { evenPort: { reserve: true } };
  h.client(addr('198.51.100.1', 1)).allocate(reserve);
  refusedAllocate(h.client(addr('198.51.100.1', 2)), 486, reserve);
  h.client(addr('198.51.100.1', 3)).allocate({ evenPort: { reserve: false } }); // no reservation: not limited
  h.client(addr('198.51.100.1', 4), 'bob').allocate(reserve);
  assert.equal(h.server.stats().reservations, 2);
  const h2 = new Harness({ maxReservations: 1 });
  h2.client(addr('198.51.100.1', 1)).allocate(reserve);
  refusedAllocate(h2.client(addr('198.51.100.1', 2), 'bob'), 508, reserve);
  assert.deepEqual(h.server.stats().refused, { 'reservations-per-user': 1 });
  assert.deepEqual(h2.server.stats().refused, { 'reservations-total': 1 });
  // The reservation expires after 30 s: the quota is free again.
  h.advance(RESERVATION_LIFETIME_MS);
  assert.equal(h.server.stats().reservations, 0);
  h.client(addr('198.51.100.1', 6)).allocate(reserve);
});

test('a reservation goes with the allocation that made it: its port is free at once, its token unknown', () => {
  const h = new Harness({ portRange: { min: 50000, max: 50001 } });
  const a = h.client(c1);
  const { ports, success } = a.allocate({ evenPort: { reserve: true } });
  assert.deepEqual(ports, { v4: 50000 });
  const token = success.attributes.reservationToken!;
  assert.equal(h.server.stats().reservations, 1);
  expectOutputs(a.refresh(0), [event('allocation-port-closed'), closePort(4, 50000), response(c1, METHOD.REFRESH, 'success')]);
  assert.equal(h.server.stats().reservations, 0);
  // Both ports of the range are free again: two plain allocations fit, and the token is gone.
  h.client(addr('198.51.100.1', 2)).allocate();
  h.client(addr('198.51.100.1', 3)).allocate();
  refusedAllocate(h.client(addr('198.51.100.1', 4)), 508, { reservationToken: token });
});

test('a claimed reservation is no longer its maker\'s: deleting the maker leaves the claimer\'s port alone', () => {
  const h = new Harness({ maxReservationsPerUser: 1 });
  const a = h.client(addr('198.51.100.1', 1));
  const { ports, success } = a.allocate({ evenPort: { reserve: true } });
  const b = h.client(addr('198.51.100.1', 2));
  assert.equal(b.allocate({ reservationToken: success.attributes.reservationToken! }).ports.v4, ports.v4! + 1);
  assert.equal(h.server.stats().reservations, 0);
  expectOutputs(a.refresh(0), [event('allocation-port-closed'), closePort(4, ports.v4!), response(a.address, METHOD.REFRESH, 'success')]);
  // The claimer still owns port+1; the user's reservation quota is free.
  assert.equal(h.server.snapshot().filter((e) => e.type === 'allocation-port-opened' && e.port === ports.v4! + 1).length, 1);
  h.client(addr('198.51.100.1', 3)).allocate({ evenPort: { reserve: true } });
});

test('property: a user never has more kernel bindings than its channel limit, and deleting everything gives the whole limit back', () => {
  const LIMIT = 3;
  const step = fc.record({
    who: fc.nat(1),
    kind: fc.constantFrom('bind', 'bind', 'permit', 'refresh0', 'time'),
    channel: fc.integer({ min: 0x4000, max: 0x4003 }),
    peer: fc.nat(3),
    ms: fc.constantFrom(1, 100_000, 300_000, 600_000),
  });
  fc.assert(
    fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
      const h = new Harness({ maxChannelsPerUser: LIMIT, defaultLifetime: 3600 });
      const clients = [h.client(addr('198.51.100.1', 1)), h.client(addr('198.51.100.1', 2))];
      for (const c of clients) c.allocate();
      const kernel = new Set<string>();
      const apply = (outs: Output[]) => {
        for (const o of outs) {
          if (o.kind !== 'event') continue;
          const e = o.event;
          if (e.type === 'channel-bound') kernel.add(`${e.binding.client.port}/${e.binding.channel}`);
          if (e.type === 'channel-unbound') kernel.delete(`${e.binding.client.port}/${e.binding.channel}`);
        }
      };
      for (const s of steps) {
        const c = clients[s.who]!;
        if (s.kind === 'bind') apply(c.channelBind(s.channel, peers[s.peer]!));
        else if (s.kind === 'permit') apply(c.createPermission(peers[s.peer]!));
        else if (s.kind === 'refresh0') {
          apply(c.refresh(0));
          c.allocate(); // the same 5-tuple, a new allocation with no channels
        }
        else apply(h.advance(s.ms));
        assert.ok(kernel.size <= LIMIT, `${kernel.size} kernel bindings for one user`);
      }
      for (const c of clients) apply(c.refresh(0));
      assert.equal(kernel.size, 0);
      const fresh = h.client(addr('198.51.100.1', 3));
      fresh.allocate();
      for (let i = 0; i < LIMIT; i++) {
        expectOutputs(fresh.channelBind(0x4000 + i, peers[i]!), [event('channel-bound'), response(fresh.address, METHOD.CHANNEL_BIND, 'success')]);
      }
      expectOutputs(fresh.channelBind(0x4000 + LIMIT, peers[LIMIT]!), [response(fresh.address, METHOD.CHANNEL_BIND, 508)]);
    }),
    { numRuns: 200 },
  );
});

test('every limit is a config field with a default and a variable, and reaches the server options', () => {
  const defaults = {
    maxAllocations: 100_000, maxAllocationsPerUser: 100, maxReservations: 4_096, maxReservationsPerUser: 50,
    maxPeersPerRequest: 100, maxPermissionsPerAllocation: 1_000, maxChannelsPerAllocation: 1_000, maxChannelsPerUser: 4_096,
  } as const;
  const built = buildServerOptions(configSchema.parse({}), { relayAddresses: { v4: '192.0.2.1' } });
  for (const [field, value] of Object.entries(defaults)) assert.equal(built[field as keyof typeof defaults], value, field);
  const env = Object.fromEntries(Object.keys(defaults).map((f, i) => [ENV_NAMES[f as keyof typeof defaults] as string, String(i + 1)]));
  const set = buildServerOptions(configSchema.parse(fromEnv(env).raw), { relayAddresses: { v4: '192.0.2.1' } });
  Object.keys(defaults).forEach((field, i) => assert.equal(set[field as keyof typeof defaults], i + 1, field));
});
