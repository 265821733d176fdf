import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD } from '../../../src/relay/stun/index.ts';
import {
  Harness, RELAY_V4, RELAY_V6, REALM, addr, closePort, event, expectOutputs, openPort, response,
} from './harness.ts';

const c1 = addr('198.51.100.1', 40001);

test('unauthenticated Allocate gets 401 with REALM and NONCE, no integrity', () => {
  const h = new Harness();
  const c = h.client(c1);
  const outs = c.request(METHOD.ALLOCATE, { requestedTransport: 17 }, { auth: false });
  expectOutputs(outs, [
    response(c1, METHOD.ALLOCATE, 401, (m) => {
      assert.equal(m.attributes.realm, REALM);
      assert.ok(m.attributes.nonce && m.attributes.nonce.length > 0);
      assert.equal(m.integrity, undefined);
      assert.ok(m.hasFingerprint);
      assert.equal(m.attributes.software, 'turnpike-test');
    }),
  ]);
  assert.equal(h.server.stats().responses['allocate:401'], 1);
  assert.equal(h.server.stats().allocations, 0);
});

test('Allocate: open-port, then port-opened event, then success with relayed/mapped/lifetime and integrity', () => {
  const h = new Harness();
  const c = h.client(c1);
  c.challenge();
  const outs = c.request(METHOD.ALLOCATE, { requestedTransport: 17 });
  const [open] = expectOutputs(outs, [openPort(4)]) as [{ token: number; port: number }];
  assert.ok(open.port >= 50000 && open.port <= 50999);
  assert.equal(h.server.stats().allocations, 0, 'nothing exists before the port is open');
  const done = h.portOpened(open.token, true);
  const [, success] = expectOutputs(done, [
    event('allocation-port-opened', (e) => assert.deepEqual(e, { type: 'allocation-port-opened', family: 4, port: open.port, client: c1 })),
    response(c1, METHOD.ALLOCATE, 'success', (m) => {
      assert.deepEqual(m.attributes.xorRelayedAddress, [{ family: 4, address: RELAY_V4, port: open.port }]);
      assert.deepEqual(m.attributes.xorMappedAddress, c1);
      assert.equal(m.attributes.lifetime, 600);
      assert.ok(m.integrity?.sha1 !== undefined);
      assert.equal(m.integrity?.sha256, undefined);
      assert.ok(m.hasFingerprint);
    }),
  ]);
  assert.ok(success);
  assert.equal(h.server.stats().allocations, 1);
  assert.equal(h.server.stats().responses['allocate:success'], 1);
  assert.equal(h.server.nextDeadline(), h.now + 600_000);
});

test('Allocate retransmission replays the success; another transaction gets 437', () => {
  const h = new Harness();
  const c = h.client(c1);
  c.challenge();
  const req = c.build(METHOD.ALLOCATE, { requestedTransport: 17 });
  const [open] = expectOutputs(c.send(req), [openPort(4)]) as [{ token: number }];
  // Retransmitted while the port is being opened: absorbed.
  expectOutputs(c.send(req), []);
  const first = h.portOpened(open.token, true)[1]!;
  const again = c.send(req);
  expectOutputs(again, [response(c1, METHOD.ALLOCATE, 'success')]);
  const replay = again[0]!;
  assert.ok(first.kind === 'send' && replay.kind === 'send');
  assert.deepEqual(Buffer.from(replay.data), Buffer.from(first.data));
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [
    response(c1, METHOD.ALLOCATE, 437, (m) => assert.ok(m.integrity?.sha1 !== undefined, '437 after auth carries integrity')),
  ]);
  assert.equal(h.server.stats().allocations, 1);
});

test('Allocate attribute errors: 400 without REQUESTED-TRANSPORT, 442 for TCP, 400 for both family attributes', () => {
  const h = new Harness();
  const c = h.client(c1);
  c.challenge();
  expectOutputs(c.request(METHOD.ALLOCATE, {}), [response(c1, METHOD.ALLOCATE, 400)]);
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 6 }), [response(c1, METHOD.ALLOCATE, 442)]);
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17, requestedAddressFamily: 4, additionalAddressFamily: 6 }), [
    response(c1, METHOD.ALLOCATE, 400),
  ]);
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17, additionalAddressFamily: 4 }), [response(c1, METHOD.ALLOCATE, 400)]);
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17, requestedAddressFamily: 'unsupported' }), [response(c1, METHOD.ALLOCATE, 440)]);
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17, evenPort: { reserve: true }, additionalAddressFamily: 6 }), [
    response(c1, METHOD.ALLOCATE, 400),
  ]);
  assert.equal(h.server.stats().allocations, 0);
  assert.equal(h.server.nextDeadline(), undefined);
});

test('440 when the requested family has no relay address', () => {
  const h = new Harness({ relayAddresses: { v4: RELAY_V4 } });
  const c = h.client(c1);
  c.challenge();
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17, requestedAddressFamily: 6 }), [response(c1, METHOD.ALLOCATE, 440)]);
  const h6 = new Harness({ relayAddresses: { v6: RELAY_V6 } });
  const d = h6.client(c1);
  d.challenge();
  expectOutputs(d.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [response(c1, METHOD.ALLOCATE, 440)]);
  const { ports } = d.allocate({ requestedAddressFamily: 6 });
  assert.ok(ports.v6 !== undefined && ports.v4 === undefined);
});

test('dual allocation: one port per family, both XOR-RELAYED-ADDRESS', () => {
  const h = new Harness();
  const c = h.client(c1);
  const { ports, success } = c.allocate({ additionalAddressFamily: 6 });
  assert.ok(ports.v4 !== undefined && ports.v6 !== undefined);
  assert.deepEqual(success.attributes.xorRelayedAddress, [
    { family: 4, address: RELAY_V4, port: ports.v4 },
    { family: 6, address: RELAY_V6, port: ports.v6 },
  ]);
  assert.equal(success.attributes.addressErrorCode, undefined);
  assert.equal(h.server.snapshot().length, 2);
});

test('dual allocation with IPv6 unavailable: IPv4 only plus ADDRESS-ERROR-CODE 440', () => {
  const h = new Harness({ relayAddresses: { v4: RELAY_V4 } });
  const c = h.client(c1);
  const { ports, success } = c.allocate({ additionalAddressFamily: 6 });
  assert.deepEqual(Object.keys(ports), ['v4']);
  assert.equal(success.attributes.addressErrorCode?.family, 6);
  assert.equal(success.attributes.addressErrorCode?.code, 440);
});

test('lifetime: min(requested, max) but never below the default', () => {
  const h = new Harness();
  assert.equal(h.client(addr('198.51.100.1', 1)).allocate({ lifetime: 60 }).success.attributes.lifetime, 600);
  assert.equal(h.client(addr('198.51.100.1', 2)).allocate({ lifetime: 1200 }).success.attributes.lifetime, 1200);
  assert.equal(h.client(addr('198.51.100.1', 3)).allocate({ lifetime: 99999 }).success.attributes.lifetime, 3600);
});

test('DONT-FRAGMENT is accepted', () => {
  const h = new Harness();
  assert.equal(h.client(c1).allocate({ dontFragment: true }).success.attributes.lifetime, 600);
});

test('EVEN-PORT gives an even port; with R the next port is reserved under a token for 30 s', () => {
  const h = new Harness();
  const a = h.client(addr('198.51.100.1', 1)).allocate({ evenPort: { reserve: false } });
  assert.equal(a.ports.v4! % 2, 0);
  assert.equal(a.success.attributes.reservationToken, undefined);
  const b = h.client(addr('198.51.100.1', 2)).allocate({ evenPort: { reserve: true } });
  assert.equal(b.ports.v4! % 2, 0);
  const token = b.success.attributes.reservationToken;
  assert.ok(token && token.length === 8);
  // RESERVATION-TOKEN with EVEN-PORT or a family attribute -> 400
  const c = h.client(addr('198.51.100.1', 3));
  c.challenge();
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17, reservationToken: token, evenPort: { reserve: false } }), [response(c.address, METHOD.ALLOCATE, 400)]);
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17, reservationToken: token, requestedAddressFamily: 4 }), [response(c.address, METHOD.ALLOCATE, 400)]);
  // The token gets exactly port+1, once.
  const d = c.allocate({ reservationToken: token });
  assert.equal(d.ports.v4, b.ports.v4! + 1);
  const e = h.client(addr('198.51.100.1', 4));
  e.challenge();
  expectOutputs(e.request(METHOD.ALLOCATE, { requestedTransport: 17, reservationToken: token }), [response(e.address, METHOD.ALLOCATE, 508)]);
});

test('an unused reservation expires after 30 s and its port is free again', () => {
  const h = new Harness({ portRange: { min: 50000, max: 50003 } });
  const b = h.client(addr('198.51.100.1', 2)).allocate({ evenPort: { reserve: true } });
  const token = b.success.attributes.reservationToken!;
  expectOutputs(h.advance(30_000), []);
  const c = h.client(addr('198.51.100.1', 3));
  c.challenge();
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17, reservationToken: token }), [response(c.address, METHOD.ALLOCATE, 508)]);
  // 4 ports in range, 1 used: 3 more allocations fit.
  for (let i = 0; i < 3; i++) h.client(addr('198.51.100.2', 10 + i)).allocate();
});

test('quotas: per user -> 486, the relay total -> 508 (RFC 8656 §7.2), each counted as a refusal', () => {
  const h = new Harness({ maxAllocationsPerUser: 2, maxAllocations: 3 });
  h.client(addr('198.51.100.1', 1)).allocate();
  h.client(addr('198.51.100.1', 2)).allocate();
  const c = h.client(addr('198.51.100.1', 3));
  c.challenge();
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [response(c.address, METHOD.ALLOCATE, 486)]);
  h.client(addr('198.51.100.1', 4), 'bob').allocate();
  const d = h.client(addr('198.51.100.1', 5), 'bob');
  d.challenge();
  expectOutputs(d.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [response(d.address, METHOD.ALLOCATE, 508)]);
  assert.equal(h.server.stats().responses['allocate:486'], 1);
  assert.equal(h.server.stats().responses['allocate:508'], 1);
  assert.deepEqual(h.server.stats().refused, { 'allocations-per-user': 1, 'allocations-total': 1 });
});

test('no free port -> 508', () => {
  const h = new Harness({ portRange: { min: 50000, max: 50001 } });
  h.client(addr('198.51.100.1', 1)).allocate();
  h.client(addr('198.51.100.1', 2)).allocate();
  const c = h.client(addr('198.51.100.1', 3));
  c.challenge();
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [response(c.address, METHOD.ALLOCATE, 508)]);
});

test('the listen port is never a relayed port', () => {
  const h = new Harness({ portRange: { min: 3478, max: 3479 } });
  assert.equal(h.client(addr('198.51.100.1', 1)).allocate().ports.v4, 3479);
  const c = h.client(addr('198.51.100.1', 2));
  c.challenge();
  expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [response(c.address, METHOD.ALLOCATE, 508)]);
});

test('portOpened failure: retries another port, then 508 after the last attempt', () => {
  const h = new Harness({ portAttempts: 3 });
  const c = h.client(c1);
  c.challenge();
  let [open] = expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [openPort(4)]) as [{ token: number; port: number }];
  const tried = [open.port];
  for (let i = 0; i < 2; i++) {
    [open] = expectOutputs(h.portOpened(open.token, false), [openPort(4)]) as [{ token: number; port: number }];
    assert.ok(!tried.includes(open.port));
    tried.push(open.port);
  }
  expectOutputs(h.portOpened(open.token, false), [response(c1, METHOD.ALLOCATE, 508)]);
  expectOutputs(h.portOpened(open.token, true), []); // late answer for a dead request: ignored
  assert.equal(h.server.stats().allocations, 0);
  assert.equal(h.server.nextDeadline(), undefined);
  // Success on a retry.
  const d = h.client(addr('198.51.100.1', 2));
  d.challenge();
  const [o1] = expectOutputs(d.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [openPort(4)]) as [{ token: number; port: number }];
  const [o2] = expectOutputs(h.portOpened(o1.token, false), [openPort(4)]) as [{ token: number; port: number }];
  expectOutputs(h.portOpened(o2.token, true), [event('allocation-port-opened'), response(d.address, METHOD.ALLOCATE, 'success', (m) => {
    assert.equal(m.attributes.xorRelayedAddress?.[0]?.port, o2.port);
  })]);
});

test('dual allocation where the IPv6 port cannot be opened: IPv4 port closed, 508', () => {
  const h = new Harness({ portAttempts: 1 });
  const c = h.client(c1);
  c.challenge();
  const [o4, o6] = expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17, additionalAddressFamily: 6 }), [openPort(4), openPort(6)]) as Array<{ token: number; port: number }>;
  expectOutputs(h.portOpened(o4!.token, true), []);
  expectOutputs(h.portOpened(o6!.token, false), [closePort(4, o4!.port), response(c1, METHOD.ALLOCATE, 508)]);
  assert.deepEqual(h.server.snapshot(), []);
});

test('a port open that never completes fails the Allocate after the timeout', () => {
  const h = new Harness({ portOpenTimeout: 5000 });
  const c = h.client(c1);
  c.challenge();
  const [o] = expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [openPort(4)]) as Array<{ token: number; port: number }>;
  assert.equal(h.server.nextDeadline(), h.now + 5000);
  expectOutputs(h.advance(5000), [closePort(4, o!.port), response(c1, METHOD.ALLOCATE, 508)]);
  expectOutputs(h.portOpened(o!.token, true), []);
});

test('MESSAGE-INTEGRITY-SHA256 requests get both integrity attributes back', () => {
  const h = new Harness();
  const c = h.client(c1);
  c.challenge();
  const [o] = expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }, { integrity: 'sha256' }), [openPort(4)]) as Array<{ token: number }>;
  expectOutputs(h.portOpened(o!.token, true), [event('allocation-port-opened'), response(c1, METHOD.ALLOCATE, 'success', (m) => {
    assert.ok(m.integrity?.sha1 !== undefined && m.integrity.sha256 !== undefined);
  })]);
});
