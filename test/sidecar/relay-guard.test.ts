// What the relay may ask of the sidecar, frame by frame (relay-guard.ts):
// ports inside the range, datagrams only from the listen port or held ports,
// peers that pass the peer policy, control frames under the rate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.ts';
import { RelayGuard, relayLimits, type Verdict } from '../../src/sidecar/sockets/relay-guard.ts';
import { portKey } from '../../src/shared/endpoint.ts';
import type { Frame } from '../../src/link/protocol.ts';
import type { ChannelBinding } from '../../src/shared/binding.ts';

const config = configSchema.parse({ listenPort: 3478, portRange: '50000-50099', allowedPeers: '10.9.0.0/16', linkControlRate: 10 });
const guard = (now = 0) => new RelayGuard(relayLimits(config), new Set([portKey(4, 3478), portKey(6, 3478)]), now);
const rule = (v: Verdict) => (v === null || v === 'drop' ? v : v.rule);

const out = (port: number, address: string): Frame => ({ kind: 'packet-out', from: { family: 4, port }, to: { family: 4, address, port: 9 }, data: new Uint8Array(1) });
const binding = (over: Partial<ChannelBinding> = {}): ChannelBinding => ({
  client: { family: 4, address: '198.51.100.1', port: 40000 },
  channel: 0x4000,
  peer: { family: 4, address: '203.0.113.5', port: 9 },
  allocationPort: 50001,
  allocationPorts: { v4: 50001 },
  expiresAt: 1,
  ...over,
});

test('allocation ports only inside the range: OPEN_PORT, SNAPSHOT_PORT and every port of a binding', () => {
  const g = guard();
  assert.equal(rule(g.check({ kind: 'open-port', token: 1, family: 4, port: 50000 })), null);
  assert.equal(rule(g.check({ kind: 'open-port', token: 2, family: 4, port: 50099 })), null);
  for (const port of [22, 3478, 49999, 50100, 65535]) {
    assert.equal(rule(g.check({ kind: 'open-port', token: 3, family: 4, port })), 'port-range', `open ${port}`);
    assert.equal(rule(g.check({ kind: 'snapshot-port', family: 6, port })), 'port-range', `snapshot ${port}`);
  }
  assert.equal(rule(g.check({ kind: 'channel-bound', seq: 1, binding: binding() })), null);
  assert.equal(rule(g.check({ kind: 'channel-bound', seq: 2, binding: binding({ allocationPort: 53 }) })), 'port-range');
  assert.equal(rule(g.check({ kind: 'channel-refreshed', seq: 3, binding: binding({ allocationPorts: { v4: 50001, v6: 443 } }) })), 'port-range');
  assert.equal(rule(g.check({ kind: 'snapshot-channel', binding: binding({ allocationPort: 1 }) })), 'port-range');
});

test('datagrams: from the listen port to anyone; from a held port to allowed peers; elsewhere refused or dropped', () => {
  const g = guard();
  assert.equal(rule(g.check(out(3478, '192.168.1.1'))), null, 'the listen port answers clients anywhere');
  assert.equal(rule(g.check(out(50005, '203.0.113.5'))), 'drop', 'in the range but never opened: dropped (a resync may be under way)');
  assert.equal(rule(g.check(out(53, '203.0.113.5'))), 'port-not-held', 'outside the range and not the listen port');
  g.check({ kind: 'open-port', token: 1, family: 4, port: 50005 });
  assert.equal(rule(g.check(out(50005, '203.0.113.5'))), null);
  assert.equal(rule(g.check({ ...out(50005, '203.0.113.5'), from: { family: 6, port: 50005 } } as Frame)), 'drop', 'held per family');
  g.check({ kind: 'close-port', family: 4, port: 50005 });
  assert.equal(rule(g.check(out(50005, '203.0.113.5'))), 'drop', 'closed: no longer held');
  g.check({ kind: 'snapshot-port', family: 4, port: 50006 });
  assert.equal(rule(g.check(out(50006, '203.0.113.5'))), null, 'a re-announced port is held');
});

test('peers: the default deny list and the configured lists apply to bindings and to datagrams from allocation ports', () => {
  const g = guard();
  g.check({ kind: 'open-port', token: 1, family: 4, port: 50001 });
  for (const denied of ['127.0.0.1', '10.0.0.1', '169.254.169.254', '::ffff:192.168.0.1']) {
    assert.equal(rule(g.check(out(50001, denied))), 'peer-policy', denied);
    assert.equal(rule(g.check({ kind: 'channel-bound', seq: 1, binding: binding({ peer: { family: 4, address: denied, port: 9 } }) })), 'peer-policy', denied);
    assert.equal(rule(g.check({ kind: 'snapshot-channel', binding: binding({ peer: { family: 4, address: denied, port: 9 } }) })), 'peer-policy', denied);
  }
  assert.equal(rule(g.check(out(50001, '10.9.3.4'))), null, 'allowedPeers opens a private range');
  // Unbinding needs no check: removing a binding never lets anything through.
  assert.equal(rule(g.check({ kind: 'channel-unbound', seq: 2, binding: binding({ peer: { family: 4, address: '127.0.0.1', port: 9 }, allocationPort: 1 }) })), null);
});

test('control frames: a burst of two seconds\' worth, then the rate; datagrams, logs, counters and snapshot items do not count', () => {
  const g = guard(0);
  for (let i = 0; i < 100; i++) assert.equal(rule(g.check(out(3478, '203.0.113.5'), 0)), null);
  for (let i = 0; i < 100; i++) assert.equal(rule(g.check({ kind: 'snapshot-port', family: 4, port: 50000 + (i % 100) }, 0)), null);
  assert.equal(rule(g.check({ kind: 'log', level: 30, module: 'x', json: '{}' }, 0)), null);
  for (let i = 0; i < 20; i++) assert.equal(rule(g.check({ kind: 'close-port', family: 4, port: 50000 }, 0)), null, `burst ${i}`);
  const over = g.check({ kind: 'close-port', family: 4, port: 50000 }, 0);
  assert.equal(rule(over), 'control-rate');
  assert.match((over as { detail: string }).detail, /more than 10 control frames per second/);
  // 100 ms later one more token (10/s).
  assert.equal(rule(g.check({ kind: 'snapshot-begin', generation: 1 }, 100)), null);
  assert.equal(rule(g.check({ kind: 'snapshot-end', generation: 1, ports: 0, channels: 0 }, 100)), 'control-rate');
});
