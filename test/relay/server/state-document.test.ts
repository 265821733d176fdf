// The relay's state document: a round trip keeps every table and deadline
// (shifted by the wall time that passed), a document of an older version is
// still read (the frozen fixture: every later relay must read it), and what a
// relay cannot use is refused with a reason, never thrown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { RelayState, CHANNEL_HOLD_MS, CHANNEL_LIFETIME_MS, PERMISSION_LIFETIME_MS } from '../../../src/relay/server/state.ts';
import { STATE_DOCUMENT_VERSION, encodeStateDocument, parseStateDocument, restoreState, saveState } from '../../../src/relay/server/state-document.ts';
import type { DataPlaneEvent, Output } from '../../../src/relay/server/types.ts';

const client = { family: 4 as const, address: '198.51.100.7', port: 40000 };
const peer = (port: number) => ({ family: 4 as const, address: '203.0.113.9', port });
const header = { software: 'turnpike-test', relayAddresses: { v4: '192.0.2.1' }, nonceKey: new Uint8Array(32).fill(7) };

/** Old process: clock origin 1000, one allocation with a permission, a live channel, a held channel and a reservation. */
function oldRelay() {
  const out: Output[] = [];
  const s = new RelayState({ min: 50000, max: 50100 }, (o) => out.push(o));
  const t0 = 1000;
  s.pools[4].take(50010);
  const a = s.addAllocation({
    client, local: { family: 4, port: 3478 }, username: '1700000000:alice', user: 'alice', key: new Uint8Array(16).fill(1),
    ports: { v4: 50010 }, expiresAt: t0 + 600_000, transactionKey: 'tx1', response: new Uint8Array([1, 2, 3]),
  });
  s.installPermission(a, peer(1).address, t0);
  s.bindChannel(a, 0x4001, peer(5000), t0);
  s.bindChannel(a, 0x4002, peer(5001), t0 - CHANNEL_LIFETIME_MS - 10); // expires at once
  s.expire(t0); // 0x4002 becomes held
  s.pools[4].take(50011);
  s.addReservation('rtok', 4, 50011, t0, a);
  return { s, a, t0 };
}

const liveChannels = (events: DataPlaneEvent[]) => events.filter((e) => e.type === 'channel-bound').map((e) => (e.type === 'channel-bound' ? e.binding.channel : 0));

test('round trip: allocation, permission, live and held channels, reservation, nonce key; deadlines move by the wall time that passed', () => {
  const { s, t0 } = oldRelay();
  const wallSaved = 1_700_000_000_000;
  const bytes = encodeStateDocument(saveState(s, header, t0, wallSaved));
  const parsed = parseStateDocument(bytes);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  assert.equal(parsed.doc.version, STATE_DOCUMENT_VERSION);
  assert.deepEqual(Buffer.from(parsed.doc.nonceKey, 'base64'), Buffer.alloc(32, 7));

  // New process: another clock origin (5_000_000), 2 s of wall time later.
  const out: Output[] = [];
  const r = new RelayState({ min: 50000, max: 50100 }, (o) => out.push(o));
  const now = 5_000_000;
  const counts = restoreState(r, parsed.doc, now, wallSaved + 2000);
  assert.deepEqual(counts, { allocations: 1, expired: 0, permissions: 1, channels: 2 });
  assert.deepEqual(out, [], 'a restore announces nothing: the snapshot does');
  const a = [...r.byFiveTuple.values()][0]!;
  assert.equal(a.expiresAt, now + 600_000 - 2000);
  assert.equal(a.username, '1700000000:alice');
  assert.deepEqual([...a.key], [...new Uint8Array(16).fill(1)]);
  assert.deepEqual([...a.response], [1, 2, 3]);
  assert.equal(a.permissions.get(peer(1).address)!.expiresAt, now + PERMISSION_LIFETIME_MS - 2000);
  assert.equal(r.permissions, 1);
  assert.equal(r.channels, 1, 'the live channel counts, the held one does not');
  assert.equal(a.channelsByNumber.get(0x4001)!.binding.expiresAt, now + CHANNEL_LIFETIME_MS - 2000);
  assert.equal(a.channelsByNumber.get(0x4002)!.state, 'held');
  assert.equal(r.channelsOf('alice'), 2);
  assert.deepEqual(liveChannels(r.snapshot()), [0x4001]);
  assert.ok(r.pools[4].isTaken(50010) && r.pools[4].isTaken(50011), 'allocation and reserved ports taken');
  assert.equal(r.reservations.get('rtok')!.port, 50011);
  assert.equal(r.reservationsOf('alice'), 1);
  assert.equal(r.allocationsOf('alice'), 1);

  // The held channel's hold still ends on time, and the reservation's 30 s too.
  r.expire(now + 30_000 - 2000);
  assert.equal(r.reservations.size, 0);
  assert.equal(r.pools[4].isTaken(50011), false);
  r.expire(now + CHANNEL_HOLD_MS);
  assert.equal(a.channelsByNumber.has(0x4002), false, 'hold over');
  assert.equal(a.channelsByNumber.get(0x4001)!.state, 'active');
});

test('what ran out while no relay ran is left out; a wall clock stepped back does not stretch lifetimes', () => {
  const { s, t0 } = oldRelay();
  const doc = saveState(s, header, t0, 1_000_000);
  const r1 = new RelayState({ min: 50000, max: 50100 }, () => {});
  assert.deepEqual(restoreState(r1, doc, 0, 1_000_000 + 601_000), { allocations: 0, expired: 1, permissions: 0, channels: 0 });
  const r2 = new RelayState({ min: 50000, max: 50100 }, () => {});
  restoreState(r2, doc, 0, 1_000_000 - 50_000);
  assert.equal([...r2.byFiveTuple.values()][0]!.expiresAt, 600_000);
});

test('a newer relay reads an older document (frozen version-1 fixture)', () => {
  const bytes = readFileSync(new URL('./fixtures/state-document-v1.json', import.meta.url));
  const parsed = parseStateDocument(bytes);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  assert.equal(parsed.from, 1);
  const r = new RelayState({ min: 49152, max: 65535 }, () => {});
  const counts = restoreState(r, parsed.doc, 10_000, parsed.doc.savedAt + 1000);
  assert.deepEqual(counts, { allocations: 2, expired: 0, permissions: 2, channels: 3 });
  assert.equal(r.channels, 2);
});

test('what a relay cannot use is refused with a reason', () => {
  const cases: [string, RegExp][] = [
    ['not json', /not JSON/],
    ['{"allocations":[]}', /no version/],
    [JSON.stringify({ version: STATE_DOCUMENT_VERSION + 1 }), /newer than this relay/],
    [JSON.stringify({ version: 1, software: 'x', savedAt: 1, relayAddresses: {}, nonceKey: 'AA==', allocations: [{ client: 'nope' }] }), /allocations/],
  ];
  for (const [text, re] of cases) {
    const r = parseStateDocument(Buffer.from(text));
    assert.equal(r.ok, false, text);
    if (!r.ok) assert.match(r.reason, re);
  }
});
