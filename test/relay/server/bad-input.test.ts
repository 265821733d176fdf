import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD, encodeChannelData, encodeMessage } from '../../../src/relay/stun/index.ts';
import { Harness, LISTEN4, TurnClient, addr, expectOutputs, response, type Matcher } from './harness.ts';
import type { LocalEndpoint, TransportAddress } from '../../../src/relay/server/types.ts';
import type { RelayDropReason } from '../../../src/shared/reasons.ts';

const c1 = addr('198.51.100.1', 40001);
const other = addr('198.51.100.66', 666);
const peer = addr('203.0.113.5', 6000);

function setup() {
  const h = new Harness();
  const c = h.client(c1);
  const port = c.allocate().ports.v4!;
  c.createPermission(peer);
  c.channelBind(0x4000, peer);
  return { h, c, port };
}

/** Feed `data`; expect `matchers`; the allocation state (snapshot, counts, deadline, relayed) must not move. */
function noStateChange(h: Harness, data: Uint8Array, local: LocalEndpoint, remote: TransportAddress, matchers: Matcher[], dropReason?: RelayDropReason): void {
  const before = h.observe();
  expectOutputs(h.input(data, local, remote), matchers);
  const after = h.observe();
  assert.deepEqual(after.snapshot, before.snapshot);
  assert.equal(after.deadline, before.deadline);
  for (const k of ['allocations', 'permissions', 'channels', 'relayed'] as const) assert.deepEqual(after.stats[k], before.stats[k], k);
  if (dropReason !== undefined) {
    assert.equal(after.stats.dropped[dropReason], (before.stats.dropped[dropReason] ?? 0) + 1, `dropped as ${dropReason}: ${JSON.stringify(after.stats.dropped)}`);
  }
  assert.equal(after.stats.dropped['internal-error'], undefined);
}

test('framing faults are dropped silently and counted', () => {
  const { h, c } = setup();
  const valid = c.build(METHOD.REFRESH, { lifetime: 600 });
  const truncated = valid.slice(0, valid.length - 8);
  noStateChange(h, truncated, LISTEN4, c1, [], 'truncated');
  const trailing = new Uint8Array([...valid, 0, 0, 0, 0]);
  noStateChange(h, trailing, LISTEN4, c1, [], 'trailing-bytes');
  const liar = valid.slice();
  liar[22] = 0xff; // first attribute's length runs past the end
  liar[23] = 0xf0;
  noStateChange(h, liar, LISTEN4, c1, [], 'bad-attribute-length');
  const badCookie = valid.slice();
  badCookie[4] = 0;
  noStateChange(h, badCookie, LISTEN4, c1, [], 'bad-cookie');
  const badFp = valid.slice();
  badFp[badFp.length - 1]! ^= 1;
  noStateChange(h, badFp, LISTEN4, c1, [], 'bad-fingerprint');
  noStateChange(h, new Uint8Array(0), LISTEN4, c1, [], 'not-turn');
  noStateChange(h, new Uint8Array([0x80, 1, 2, 3]), LISTEN4, c1, [], 'not-turn');
  noStateChange(h, new Uint8Array(10), LISTEN4, c1, [], 'not-stun');
  noStateChange(h, new Uint8Array(70_000), LISTEN4, c1, [], 'oversize');
  noStateChange(h, valid, LISTEN4, { family: 4, address: 'not-an-ip', port: 1 }, [], 'bad-source');
  noStateChange(h, valid, LISTEN4, { family: 4, address: '2001:db8::1', port: 1 }, [], 'bad-source');
  noStateChange(h, valid, LISTEN4, { family: 4, address: '198.51.100.1', port: 70000 }, [], 'bad-source');
});

test('bad integrity on an existing allocation -> 401, the allocation is untouched', () => {
  const { h, c } = setup();
  const req = encodeMessage(
    { method: METHOD.REFRESH, cls: 'request', transactionId: TurnClient.txid(), attributes: { lifetime: 0, username: 'alice', realm: 'turnpike.test', nonce: c.nonce! } },
    { key: c.key },
  );
  const tampered = req.slice();
  tampered[27]! ^= 0x01; // LIFETIME 0 -> 1; MESSAGE-INTEGRITY no longer matches
  noStateChange(h, tampered, LISTEN4, c1, [response(c1, METHOD.REFRESH, 401)]);
  const wrongKey = c.build(METHOD.REFRESH, { lifetime: 0 }, { key: new Uint8Array(16) });
  noStateChange(h, wrongKey, LISTEN4, c1, [response(c1, METHOD.REFRESH, 401)]);
  // Same request from another port of the same host: no allocation on that 5-tuple.
  const sibling = addr('198.51.100.1', 40002);
  noStateChange(h, c.build(METHOD.REFRESH, { lifetime: 0 }), LISTEN4, sibling, [response(sibling, METHOD.REFRESH, 437)]);
  // From another host the address-bound nonce is not valid: 401.
  noStateChange(h, c.build(METHOD.REFRESH, { lifetime: 0 }), LISTEN4, other, [response(other, METHOD.REFRESH, 401)]);
});

test('unknown comprehension-required attribute -> 420, no state change', () => {
  const { h } = setup();
  const body = [0x00, 0x0d, 0, 4, 0, 0, 0, 0, 0x00, 0x33, 0, 4, 1, 2, 3, 4];
  const type = 0x0004;
  const data = new Uint8Array([type >> 8, type & 0xff, 0, body.length, 0x21, 0x12, 0xa4, 0x42, ...TurnClient.txid(), ...body]);
  noStateChange(h, data, LISTEN4, c1, [response(c1, METHOD.REFRESH, 420, (m) => assert.deepEqual(m.attributes.unknownAttributes, [0x33]))]);
});

test('responses and unexpected indications from clients are dropped', () => {
  const { h } = setup();
  const success = encodeMessage({ method: METHOD.ALLOCATE, cls: 'success', transactionId: TurnClient.txid(), attributes: {} });
  noStateChange(h, success, LISTEN4, c1, [], 'unexpected-response');
  const dataInd = encodeMessage({ method: METHOD.DATA, cls: 'indication', transactionId: TurnClient.txid(), attributes: { data: new Uint8Array(3) } });
  noStateChange(h, dataInd, LISTEN4, c1, [], 'unexpected-indication');
  const sendNoPeer = encodeMessage({ method: METHOD.SEND, cls: 'indication', transactionId: TurnClient.txid(), attributes: { data: new Uint8Array(3) } });
  noStateChange(h, sendNoPeer, LISTEN4, c1, [], 'malformed-send');
});

test('ChannelData faults: unbound channel, lying length, reserved channel range, too short, no allocation', () => {
  const { h } = setup();
  noStateChange(h, encodeChannelData(0x4001, new Uint8Array(4)), LISTEN4, c1, [], 'no-channel');
  const liar = encodeChannelData(0x4000, new Uint8Array(4));
  liar[3] = 40;
  noStateChange(h, liar, LISTEN4, c1, [], 'channel-data-truncated');
  noStateChange(h, new Uint8Array([0x50, 0x00, 0, 0]), LISTEN4, c1, [], 'channel-data-bad-channel');
  noStateChange(h, new Uint8Array([0x40, 0x00, 0]), LISTEN4, c1, [], 'channel-data-too-short');
  noStateChange(h, new Uint8Array([0x40, 0x00, 0, 1, 9, 0, 0, 0, 0, 0]), LISTEN4, c1, [], 'channel-data-trailing-bytes');
  noStateChange(h, encodeChannelData(0x4000, new Uint8Array(4)), LISTEN4, other, [], 'no-allocation');
});

test('peer datagrams: oversize and unpermitted are dropped without state change', () => {
  const { h, port } = setup();
  noStateChange(h, new Uint8Array(65_504), { family: 4, port }, peer, [], 'oversize');
  noStateChange(h, new Uint8Array(4), { family: 4, port }, addr('203.0.113.99', 1), [], 'no-permission');
});

test('snapshot lists allocation ports and active channels only', () => {
  const { h, c, port } = setup();
  c.channelBind(0x4001, addr('203.0.113.8', 1));
  const snap = h.server.snapshot();
  assert.deepEqual(snap.map((e) => e.type), ['allocation-port-opened', 'channel-bound', 'channel-bound']);
  assert.deepEqual(snap[0], { type: 'allocation-port-opened', family: 4, port, client: c1 });
  const bound = snap.slice(1).map((e) => (e.type === 'channel-bound' ? e.binding.channel : 0));
  assert.deepEqual(bound.sort(), [0x4000, 0x4001]);
});
