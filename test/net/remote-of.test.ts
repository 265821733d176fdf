// The remote address both socket owners (standalone transport, sidecar) hand
// the TURN server. Their IPv6 sockets are IPv6-only, so an IPv4-mapped source
// is a spoofed IPv6 datagram: it must stay IPv6, never pose as an IPv4 client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { remoteOf } from '../../src/net/udp.ts';

test('an IPv4-mapped source on an IPv6 socket stays IPv6 (no cross-family client)', () => {
  assert.deepEqual(remoteOf({ family: 'IPv6', address: '::ffff:192.0.2.7', port: 5 }), { family: 6, address: '::ffff:192.0.2.7', port: 5 });
  assert.deepEqual(remoteOf({ family: 'IPv6', address: '::ffff:192.0.2.1', port: 5 }), { family: 6, address: '::ffff:192.0.2.1', port: 5 });
  assert.deepEqual(remoteOf({ family: 'IPv6', address: '2001:db8::7', port: 5 }), { family: 6, address: '2001:db8::7', port: 5 });
  assert.deepEqual(remoteOf({ family: 'IPv6', address: '2001:db8::1', port: 5 }), { family: 6, address: '2001:db8::1', port: 5 });
  assert.deepEqual(remoteOf({ family: 'IPv4', address: '192.0.2.7', port: 5 }), { family: 4, address: '192.0.2.7', port: 5 });
});
