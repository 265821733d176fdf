// Default-deny classes, embedded IPv4 forms, and list precedence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPeerPolicy } from '../../../src/relay/policy/index.ts';

const policy = createPeerPolicy();

function denied(address: string | Uint8Array, reason: string, embedded?: string): void {
  const d = policy.check(address);
  assert.deepEqual(d, embedded ? { allowed: false, reason, embedded } : { allowed: false, reason }, String(address));
}

test('each default-denied class', () => {
  const cases: Array<[string, string]> = [
    ['127.0.0.1', 'loopback'], ['127.255.0.9', 'loopback'], ['::1', 'loopback'],
    ['10.1.2.3', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.1.1', 'private'],
    ['fc00::1', 'unique-local'], ['fd12:3456::1', 'unique-local'],
    ['169.254.1.1', 'link-local'], ['fe80::1', 'link-local'], ['febf::1', 'link-local'], ['fec0::1', 'site-local'],
    ['100.64.0.1', 'cgnat'], ['100.127.255.254', 'cgnat'],
    ['224.0.0.1', 'multicast'], ['239.255.255.250', 'multicast'], ['ff02::1', 'multicast'],
    ['0.0.0.0', 'unspecified'], ['0.1.2.3', 'unspecified'], ['::', 'unspecified'],
    ['255.255.255.255', 'broadcast'], ['240.0.0.1', 'reserved'],
    ['169.254.169.254', 'metadata'], ['fd00:ec2::254', 'metadata'],
    ['64:ff9b:1::a00:1', 'nat64-local'],
    ['not-an-ip', 'invalid-address'], ['', 'invalid-address'], ['1.2.3.4.5', 'invalid-address'],
  ];
  for (const [a, r] of cases) denied(a, r);
});

test('public addresses are allowed in both families and as bytes', () => {
  for (const a of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '192.0.2.10', '2001:db8::1', '2606:4700::1111', '2002:0808:0808::1']) {
    assert.deepEqual(policy.check(a), { allowed: true }, a);
  }
  assert.deepEqual(policy.check(new Uint8Array([8, 8, 4, 4])), { allowed: true });
  denied(new Uint8Array([10, 0, 0, 1]), 'private');
  denied(new Uint8Array(16), 'unspecified');
  denied(new Uint8Array(5), 'invalid-address');
});

test('IPv6 forms that embed a denied IPv4 address are denied', () => {
  denied('::ffff:0:192.168.0.1', 'private', 'ipv4-translated');
  denied('64:ff9b::7f00:1', 'loopback', 'nat64');
  denied('64:ff9b::169.254.169.254', 'metadata', 'nat64');
  denied('2002:c0a8:0101::1', 'private', '6to4');
  denied('2002:7f00:0001::', 'loopback', '6to4');
  // Teredo: client 10.0.0.1 obfuscated (XOR 0xff) = f5ff:fffe; server 8.8.8.8 public
  denied('2001:0:808:808::f5ff:fffe', 'private', 'teredo');
  denied('2001:0:a00:1::f7f7:f7f7', 'private', 'teredo'); // server 10.0.0.1, client 8.8.8.8
  assert.deepEqual(policy.check('64:ff9b::808:808'), { allowed: true });
  assert.deepEqual(policy.check('2001:0:808:808::f7f7:f7f7'), { allowed: true });
});

test('precedence: denied list > allowed list > defaults > allow', () => {
  const p = createPeerPolicy({ allowed: ['10.0.0.0/8', '127.0.0.1', 'fd00::/8'], denied: ['10.9.0.0/16', '8.8.8.0/24', '2001:db8::/32'] });
  assert.deepEqual(p.check('10.1.1.1'), { allowed: true }, 'allowed overrides default deny');
  assert.deepEqual(p.check('127.0.0.1'), { allowed: true });
  assert.deepEqual(p.check('127.0.0.2'), { allowed: false, reason: 'loopback' });
  assert.deepEqual(p.check('fd00::5'), { allowed: true });
  assert.deepEqual(p.check('10.9.3.3'), { allowed: false, reason: 'denied-list' }, 'denied beats allowed');
  assert.deepEqual(p.check('8.8.8.8'), { allowed: false, reason: 'denied-list' }, 'denied beats default allow');
  assert.deepEqual(p.check('2001:db8::1'), { allowed: false, reason: 'denied-list' });
  assert.deepEqual(p.check('2002:0808:0808::'), { allowed: false, reason: 'denied-list' }, 'explicit lists see embedded IPv4');
  assert.deepEqual(p.check('2002:0a01:0101::'), { allowed: true });
  assert.deepEqual(p.check('9.9.9.9'), { allowed: true });
});

test('defaults can be turned off; malformed CIDRs fail at construction', () => {
  const p = createPeerPolicy({ defaults: false, denied: ['127.0.0.0/8'] });
  assert.deepEqual(p.check('10.0.0.1'), { allowed: true });
  assert.deepEqual(p.check('127.0.0.1'), { allowed: false, reason: 'denied-list' });
  assert.throws(() => createPeerPolicy({ allowed: ['10.0.0.0/33'] }));
  assert.throws(() => createPeerPolicy({ denied: ['nonsense'] }));
});

test('an IPv6 peer that is an IPv4 address in IPv6 form is refused whatever it embeds and whatever the lists say', () => {
  const lists = createPeerPolicy({ allowed: ['::ffff:0:0/96', '::/96', '8.8.8.0/24', '127.0.0.0/8'] });
  for (const p of [policy, lists]) {
    for (const a of ['::ffff:8.8.8.8', '::ffff:127.0.0.1', '::FFFF:10.0.0.1', '0:0:0:0:0:ffff:808:808']) {
      assert.deepEqual(p.check(a), { allowed: false, reason: 'ipv4-in-ipv6', embedded: 'ipv4-mapped' }, a);
    }
    for (const a of ['::8.8.8.8', '::127.0.0.1', '::0.0.0.2']) {
      assert.deepEqual(p.check(a), { allowed: false, reason: 'ipv4-in-ipv6', embedded: 'ipv4-compatible' }, a);
    }
    // The same 16 bytes as bytes: 16 is IPv6, 4 is IPv4.
    const m = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 8, 8, 8, 8]);
    assert.deepEqual(p.check(m), { allowed: false, reason: 'ipv4-in-ipv6', embedded: 'ipv4-mapped' });
    assert.deepEqual(p.check(m.subarray(12)), { allowed: true });
    assert.deepEqual(p.check('8.8.8.8', 5000), { allowed: true }, 'the IPv4 address itself is fine');
  }
  // :: and ::1 are themselves; NAT64, 6to4 and Teredo are IPv6 destinations checked by what they embed.
  denied('::', 'unspecified');
  denied('::1', 'loopback');
  assert.deepEqual(createPeerPolicy({ allowed: ['::1'] }).check('::1', 3480), { allowed: true });
  for (const a of ['64:ff9b::808:808', '2002:0808:0808::1', '2001:0:808:808::f7f7:f7f7', '::ffff:0:8.8.8.8']) assert.deepEqual(policy.check(a), { allowed: true }, a);
});

test("the relay's own listen and allocation ports on its own addresses are refused, even when allow-listed", () => {
  const relay = { addresses: ['203.0.113.1', '2001:db8::1', '0.0.0.0'], ports: [{ min: 3478, max: 3478 }, { min: 49152, max: 65535 }] };
  const p = createPeerPolicy({ allowed: ['203.0.113.0/24', '2001:db8::/32', '10.0.0.0/8'], relay });
  const itself = { allowed: false, reason: 'relay-itself' };
  for (const [a, port] of [['203.0.113.1', 3478], ['203.0.113.1', 49152], ['203.0.113.1', 65535], ['2001:db8::1', 3478], ['2001:db8::1', 50000], ['2001:DB8:0::1', 50000], ['0.0.0.0', 3478]] as const) {
    assert.deepEqual(p.check(a, port), itself, `${a}:${port}`);
    assert.equal(p.isRelayItself(a, port), true, `${a}:${port}`);
  }
  // Through NAT64 or 6to4 the datagram would come back to the relay's IPv4 address.
  assert.deepEqual(p.check('64:ff9b::cb00:7101', 3478), { ...itself, embedded: 'nat64' });
  assert.deepEqual(p.check('2002:cb00:7101::5', 50000), { ...itself, embedded: '6to4' });
  assert.equal(p.isRelayItself('64:ff9b::cb00:7101', 50000), true);
  // A permission has no port: the address is refused at any port.
  assert.deepEqual(p.check('203.0.113.1'), itself);
  // Other ports of the relay's addresses are ordinary peers; other addresses too.
  for (const [a, port] of [['203.0.113.1', 3479], ['203.0.113.1', 49151], ['2001:db8::1', 6000], ['203.0.113.2', 3478], ['2001:db8::2', 50000], ['10.0.0.1', 3478]] as const) {
    assert.deepEqual(p.check(a, port), { allowed: true }, `${a}:${port}`);
    assert.equal(p.isRelayItself(a, port), false, `${a}:${port}`);
  }
  assert.equal(p.isRelayItself('not-an-ip', 3478), false);
  assert.throws(() => createPeerPolicy({ relay: { addresses: ['nonsense'], ports: [] } }));
});
