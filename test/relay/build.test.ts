// The server options built from a Config give the peer policy the relay's own
// transport addresses: listen port and allocation range on every listen and
// relayed address (a wildcard listen address standing for the host's
// addresses of its family), refused whatever TURNPIKE_ALLOWED_PEERS says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { configSchema } from '../../src/config/schema.ts';
import { buildServerOptions, relaySelf } from '../../src/relay/build.ts';

const iface = (address: string, family: 'IPv4' | 'IPv6'): NetworkInterfaceInfo =>
  ({ address, family, netmask: '', mac: '00:00:00:00:00:00', internal: false, cidr: null, scopeid: 0 }) as NetworkInterfaceInfo;

test('relaySelf: listen and relayed addresses, wildcards expanded per family; listen port and allocation range', () => {
  const config = { listenPort: 3478, listenAddresses: ['0.0.0.0', '2001:db8::5'], portRange: { min: 49152, max: 65535 } };
  const interfaces = { lo: [iface('127.0.0.1', 'IPv4'), iface('::1', 'IPv6')], eth0: [iface('10.0.0.5', 'IPv4'), iface('2001:db8::6', 'IPv6')] };
  const self = relaySelf(config, { v4: '203.0.113.1', v6: '2001:db8::5' }, interfaces);
  assert.deepEqual(new Set(self.addresses), new Set(['0.0.0.0', '127.0.0.1', '10.0.0.5', '2001:db8::5', '203.0.113.1']));
  assert.deepEqual(self.ports, [{ min: 3478, max: 3478 }, { min: 49152, max: 65535 }]);
});

test("buildServerOptions: the policy refuses the relay's listen and relayed transport addresses, allow-listed or not", () => {
  const config = configSchema.parse({
    listenPort: 3478,
    listenAddresses: '192.0.2.7',
    portRange: '50000-50100',
    users: 'u:p',
    allowedPeers: '192.0.2.0/24,203.0.113.0/24',
  });
  const { peerPolicy } = buildServerOptions(config, { relayAddresses: { v4: '203.0.113.1' } });
  for (const [a, port] of [['192.0.2.7', 3478], ['192.0.2.7', 50000], ['203.0.113.1', 3478], ['203.0.113.1', 50100]] as const) {
    assert.deepEqual(peerPolicy.check(a, port), { allowed: false, reason: 'relay-itself' }, `${a}:${port}`);
  }
  assert.deepEqual(peerPolicy.check('203.0.113.1', 50101), { allowed: true });
  assert.deepEqual(peerPolicy.check('192.0.2.8', 3478), { allowed: true });
});

test('allowRelayedPeers: allocations may be each other peers; the listen port stays refused', () => {
  const config = configSchema.parse({ listenPort: 3478, listenAddresses: '192.0.2.7', portRange: '50000-50100', users: 'u:p', allowedPeers: '192.0.2.0/24', allowRelayedPeers: 'true' });
  const { peerPolicy } = buildServerOptions(config, { relayAddresses: { v4: '192.0.2.7' } });
  assert.deepEqual(peerPolicy.check('192.0.2.7', 50000), { allowed: true });
  assert.equal(peerPolicy.isRelayItself('192.0.2.7', 50000), false);
  assert.deepEqual(peerPolicy.check('192.0.2.7', 3478), { allowed: false, reason: 'relay-itself' });
});
