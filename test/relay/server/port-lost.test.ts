// portLost: the data plane could not keep an allocation port (a restarted
// sidecar failed to reopen it). The owning allocation is deleted at once with
// the usual events, instead of staying broken until it expires.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD } from '../../../src/relay/stun/index.ts';
import { Harness, addr, closePort, event, expectOutputs, openPort, response } from './harness.ts';

const c1 = addr('198.51.100.1', 40001);
const c2 = addr('198.51.100.2', 40002);
const peer = addr('203.0.113.5', 6000);

function lose(h: Harness, family: 4 | 6, port: number) {
  h.server.portLost(family, port, h.now);
  return h.drain();
}

test('losing one port of a dual allocation deletes the allocation: channels unbound, both ports closed', () => {
  const h = new Harness();
  const c = h.client(c1);
  const other = h.client(c2);
  const { ports } = c.allocate({ additionalAddressFamily: 6 });
  const otherPort = other.allocate().ports.v4!;
  c.channelBind(0x4000, peer);
  expectOutputs(lose(h, 6, ports.v6!), [
    event('channel-unbound', (e) => assert.ok(e.type === 'channel-unbound' && e.binding.channel === 0x4000)),
    event('allocation-port-closed', (e) => assert.deepEqual(e, { type: 'allocation-port-closed', family: 4, port: ports.v4, client: c1 })),
    closePort(4, ports.v4),
    event('allocation-port-closed', (e) => assert.deepEqual(e, { type: 'allocation-port-closed', family: 6, port: ports.v6, client: c1 })),
    closePort(6, ports.v6),
  ]);
  assert.equal(h.server.stats().allocations, 1);
  assert.equal(h.server.stats().channels, 0);
  assert.deepEqual(
    h.server.snapshot().map((e) => e.type === 'allocation-port-opened' && e.port),
    [otherPort],
  );
  // The client finds out on its next request and can allocate again.
  expectOutputs(c.refresh(600), [response(c1, METHOD.REFRESH, 437)]);
  c.allocate();
  // Peer traffic to the lost port is not relayed.
  expectOutputs(h.input(new Uint8Array([1]), { family: 4, port: ports.v4! }, peer), []);
});

test('a port no allocation owns is ignored: unknown, already freed, or still being opened', () => {
  const h = new Harness();
  const c = h.client(c1);
  const port = c.allocate().ports.v4!;
  expectOutputs(lose(h, 4, 1), []);
  expectOutputs(lose(h, 6, port), []); // same number, other family
  c.refresh(0);
  expectOutputs(lose(h, 4, port), []);

  // An Allocate whose port-open is in flight answers on its own.
  const d = h.client(c2);
  d.challenge();
  const [open] = expectOutputs(d.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [openPort(4)]) as [{ token: number; port: number }];
  expectOutputs(lose(h, 4, open.port), []);
  expectOutputs(h.portOpened(open.token, true), [event('allocation-port-opened'), response(c2, METHOD.ALLOCATE, 'success')]);
  assert.equal(h.server.stats().allocations, 1);
});
