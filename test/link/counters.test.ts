// The COUNTERS frame: a typed, checked snapshot of the relay's counters. A
// body that does not match the schema is a protocol error like any other
// malformed frame; the schema names every field the relay sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { z } from 'zod';
import { MAX_REASON_KEYS, MAX_REASON_KEY_CHARS, countersProblem, parseCounters, relayCountersSchema } from '../../src/link/counters.ts';
import { FrameType, decodeFrame, encodeFrame } from '../../src/link/protocol.ts';
import { FrameReader } from '../../src/link/reader.ts';
import type { LinkStats } from '../../src/link/connection.ts';
import type { ServerStats } from '../../src/shared/stats.ts';
import type { SidecarTransportStats } from '../../src/relay/transport/sidecar.ts';
import type { LinkLogStats } from '../../src/relay/telemetry/link-log.ts';
import type { StreamStats } from '../../src/relay/transport/stream-connections.ts';
import { relayCounters } from './samples.ts';
import type { GcTotals } from '../../src/shared/gc.ts';

// Compile-time: the schema's fields are exactly those of the types the relay fills
// (z.object drops a field the schema does not name, so a missing one would vanish silently).
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
type Wire = z.infer<typeof relayCountersSchema>;
type WireTransport = NonNullable<Wire['transport']>;
const exact: [
  // The reason maps are typed by the relay's own tables but checked on the wire as bounded
  // string maps, so a newer relay's reason still arrives (and is capped as a label).
  Equal<Omit<Wire, 'transport' | 'logs' | 'streams' | 'gc' | 'dropped' | 'responses' | 'refused'>, Omit<ServerStats, 'dropped' | 'responses' | 'refused'>>,
  Equal<Omit<WireTransport, 'link'>, Omit<SidecarTransportStats, 'link'>>,
  Equal<NonNullable<WireTransport['link']>, LinkStats>,
  Equal<NonNullable<Wire['logs']>, LinkLogStats>,
  Equal<Omit<NonNullable<Wire['streams']>, 'closed'>, Omit<StreamStats, 'closed'>>,
  Equal<NonNullable<Wire['gc']>, GcTotals>,
] = [true, true, true, true, true, true];
void exact;

/** A COUNTERS frame with any body text. */
function countersFrame(body: string): Buffer {
  const b = Buffer.from(body, 'utf8');
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + b.length, 0);
  head[4] = FrameType.counters;
  return Buffer.concat([head, b]);
}

const decodeBody = (body: string) => {
  const buf = countersFrame(body);
  return decodeFrame(buf, 4, buf.length);
};

test('a full snapshot crosses as a typed object, unchanged', () => {
  const r = decodeBody(JSON.stringify(relayCounters));
  assert.ok(r.ok && r.frame.kind === 'counters', !r.ok ? r.reason : '');
  assert.deepEqual(r.frame.counters, relayCounters);
  const { allocations, permissions, channels, relayed, responses, dropped } = relayCounters;
  const bare = { allocations, permissions, channels, relayed, responses, dropped };
  const buf = encodeFrame({ kind: 'counters', counters: bare });
  const b = decodeFrame(buf, 4, buf.length);
  assert.ok(b.ok && b.frame.kind === 'counters');
  assert.deepEqual(b.frame.counters, bare, 'transport, logs and relayedByFamily are optional');
});

test('fields the schema does not name are dropped, not carried', () => {
  const r = parseCounters(JSON.stringify({ ...relayCounters, surprise: { deep: 'x'.repeat(1000) } }));
  assert.ok(r.ok);
  assert.ok(!('surprise' in r.counters));
});

const keys = (n: number, len = 8) => Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i).padStart(len, 'k'), 1]));

const malformed: [string, string, RegExp][] = [
  ['not JSON', '{"allocations":', /not JSON/],
  ['an array', '[]', /expected object/],
  ['a missing count', JSON.stringify({ ...relayCounters, channels: undefined }), /channels/],
  ['a count as text', JSON.stringify({ ...relayCounters, allocations: '3' }), /allocations/],
  ['a nested count as text', JSON.stringify({ ...relayCounters, relayed: { ...relayCounters.relayed, toPeer: { packets: 1, bytes: 'x' } } }), /relayed\.toPeer\.bytes/],
  ['an infinite count', JSON.stringify(relayCounters).replace('"allocations":3', '"allocations":1e400'), /allocations/],
  ['a reason value as text', JSON.stringify({ ...relayCounters, dropped: { 'no-channel': 'many' } }), /dropped\.no-channel/],
  ['too many reason keys', JSON.stringify({ ...relayCounters, dropped: keys(MAX_REASON_KEYS + 1) }), /dropped: more than 256 keys/],
  ['a reason key too long', JSON.stringify({ ...relayCounters, responses: keys(1, MAX_REASON_KEY_CHARS + 1) }), /responses/],
  ['an empty reason key', JSON.stringify({ ...relayCounters, responses: { '': 1 } }), /responses/],
  ['a transport without its link', JSON.stringify({ ...relayCounters, transport: { ...relayCounters.transport, link: undefined } }), /transport\.link/],
];

for (const [what, body, reason] of malformed) {
  test(`a COUNTERS frame with ${what} is a protocol error`, () => {
    const r = decodeBody(body);
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.reason : '', /^malformed counters frame: /);
    assert.match(!r.ok ? r.reason : '', reason);
  });
}

test('the bounds are inclusive: the most keys of the longest length pass', () => {
  const r = parseCounters(JSON.stringify({ ...relayCounters, dropped: keys(MAX_REASON_KEYS, MAX_REASON_KEY_CHARS) }));
  assert.ok(r.ok, !r.ok ? r.reason : '');
});

test('the reader stops the stream at a malformed COUNTERS frame', () => {
  const errors: string[] = [];
  const frames: string[] = [];
  const reader = new FrameReader({ onFrame: (f) => frames.push(f.kind), onError: (e) => errors.push(e) });
  reader.push(Buffer.concat([encodeFrame({ kind: 'counters', counters: relayCounters }), countersFrame('{}'), encodeFrame({ kind: 'ping', nonce: 1 })]));
  assert.deepEqual(frames, ['counters']);
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /malformed counters frame/);
  assert.ok(reader.dead);
});

test('the sender side refuses what the decoder would', () => {
  assert.equal(countersProblem(relayCounters), undefined);
  assert.match(countersProblem({ ...relayCounters, responses: keys(MAX_REASON_KEYS + 1) }) ?? '', /responses: more than/);
  assert.match(countersProblem({ ...relayCounters, allocations: Number.NaN }) ?? '', /allocations/);
});
