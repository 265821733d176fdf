// The remote address both socket owners (standalone transport, sidecar) hand
// the TURN server: an IPv4-mapped source from a dual-stack socket stays an
// IPv4 client instead of becoming an IPv6 one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { remoteOf } from '../../src/net/udp.ts';

test('IPv4-mapped remote addresses from a dual-stack socket stay IPv4', () => {
  assert.deepEqual(remoteOf({ family: 'IPv6', address: '::ffff:192.0.2.7', port: 5 }), { family: 4, address: '192.0.2.7', port: 5 });
  assert.deepEqual(remoteOf({ family: 'IPv6', address: '::ffff:192.0.2.1', port: 5 }), { family: 4, address: '192.0.2.1', port: 5 });
  assert.deepEqual(remoteOf({ family: 'IPv6', address: '2001:db8::7', port: 5 }), { family: 6, address: '2001:db8::7', port: 5 });
  assert.deepEqual(remoteOf({ family: 'IPv6', address: '2001:db8::1', port: 5 }), { family: 6, address: '2001:db8::1', port: 5 });
  assert.deepEqual(remoteOf({ family: 'IPv4', address: '192.0.2.7', port: 5 }), { family: 4, address: '192.0.2.7', port: 5 });
});
