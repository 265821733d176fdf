// Property: random and mutated datagrams, interleaved with valid traffic,
// never throw, never hit the internal-error path, and never change the state
// of an allocation they do not own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ATTR, METHOD, encodeChannelData } from '../../../src/relay/stun/index.ts';
import { Harness, LISTEN4, LISTEN6, addr, datagram, expectOutputs } from './harness.ts';
import type { LocalEndpoint, TransportAddress } from '../../../src/relay/server/types.ts';

const victim = addr('198.51.100.1', 40001);
const peer = addr('203.0.113.5', 6000);
const attackers: TransportAddress[] = [addr('198.51.100.1', 40002), addr('198.51.100.50', 1234), addr('2001:db8:9::1', 5), addr('198.51.100.2', 40001)];
const KNOWN_TYPES = Object.values(ATTR);

function tlvMessage(type: number, attrs: Array<{ t: number; v: Uint8Array; lie: number }>, txid: Uint8Array): Uint8Array {
  const body: number[] = [];
  for (const a of attrs) {
    const len = (a.v.length + a.lie) & 0xffff;
    body.push(a.t >> 8, a.t & 0xff, len >> 8, len & 0xff, ...a.v);
    while (body.length % 4) body.push(0);
  }
  return new Uint8Array([type >> 8, type & 0xff, body.length >> 8, body.length & 0xff, 0x21, 0x12, 0xa4, 0x42, ...txid, ...body]);
}

type Action =
  | { kind: 'raw'; from: number; data: Uint8Array }
  | { kind: 'tlv'; from: number; data: Uint8Array }
  | { kind: 'mutated'; from: number; which: number; at: number; xor: number; cut: number }
  | { kind: 'peer-junk'; data: Uint8Array; known: boolean }
  | { kind: 'valid-out'; data: Uint8Array }
  | { kind: 'valid-in'; data: Uint8Array }
  | { kind: 'time'; ms: number };

const fromArb = fc.nat(attackers.length); // == length means "the victim's own address"
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant('raw' as const), from: fromArb, data: fc.uint8Array({ maxLength: 120 }) }),
  fc.record({
    kind: fc.constant('tlv' as const),
    from: fromArb,
    data: fc
      .tuple(
        fc.integer({ min: 0, max: 0x3fff }),
        fc.array(fc.record({ t: fc.oneof(fc.constantFrom(...KNOWN_TYPES), fc.integer({ min: 0, max: 0xffff })), v: fc.uint8Array({ maxLength: 40 }), lie: fc.constantFrom(0, 0, 0, 1, -1, 200) }), { maxLength: 6 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
      )
      .map(([type, attrs, txid]) => tlvMessage(type, attrs, txid)),
  }),
  fc.record({ kind: fc.constant('mutated' as const), from: fromArb, which: fc.nat(), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }), cut: fc.nat(8) }),
  fc.record({ kind: fc.constant('peer-junk' as const), data: fc.uint8Array({ maxLength: 64 }), known: fc.boolean() }),
  fc.record({ kind: fc.constant('valid-out' as const), data: fc.uint8Array({ maxLength: 64 }) }),
  fc.record({ kind: fc.constant('valid-in' as const), data: fc.uint8Array({ maxLength: 64 }) }),
  fc.record({ kind: fc.constant('time' as const), ms: fc.integer({ min: 0, max: 20_000 }) }),
);

test('fuzzed input never throws and never disturbs an unrelated allocation', () => {
  fc.assert(
    fc.property(fc.array(actionArb, { maxLength: 60 }), (actions) => {
      const h = new Harness();
      const v = h.client(victim);
      const port = v.allocate().ports.v4!;
      v.channelBind(0x4000, peer);
      // Valid messages of another user to mutate (alice's own credentials, a different 5-tuple).
      const other = h.client(addr('198.51.100.1', 40009));
      other.challenge();
      const samples = [
        other.build(METHOD.ALLOCATE, { requestedTransport: 17 }),
        other.build(METHOD.REFRESH, { lifetime: 0 }),
        other.build(METHOD.CHANNEL_BIND, { channelNumber: 0x4000, xorPeerAddress: [peer] }),
        other.build(METHOD.CREATE_PERMISSION, { xorPeerAddress: [peer] }),
        v.build(METHOD.REFRESH, { lifetime: 0 }),
        v.build(METHOD.CHANNEL_BIND, { channelNumber: 0x4001, xorPeerAddress: [addr('203.0.113.7', 1)] }),
        other.build(METHOD.BINDING, {}, { auth: false }),
      ];
      const victimSnapshot = JSON.stringify(h.server.snapshot());
      const deadline = h.server.nextDeadline();
      const before = h.server.stats();
      const fromAddr = (i: number) => attackers[i] ?? victim;
      const listenFor = (a: TransportAddress): LocalEndpoint => (a.family === 4 ? LISTEN4 : LISTEN6);
      let elapsed = 0;

      for (const a of actions) {
        switch (a.kind) {
          case 'raw':
          case 'tlv':
            h.input(a.data, listenFor(fromAddr(a.from)), fromAddr(a.from));
            break;
          case 'mutated': {
            const s = samples[a.which % samples.length]!.slice();
            s[a.at % s.length]! ^= a.xor;
            const cut = a.cut > 4 ? s.subarray(0, Math.max(0, s.length - a.cut)) : s;
            h.input(cut, listenFor(fromAddr(a.from)), fromAddr(a.from));
            break;
          }
          case 'peer-junk':
            h.input(a.data, { family: 4, port }, a.known ? peer : addr('203.0.113.200', 9));
            break;
          case 'valid-out':
            // The victim's ChannelData still reaches its peer, byte for byte.
            expectOutputs(h.input(encodeChannelData(0x4000, a.data), LISTEN4, victim), [datagram({ family: 4, port }, peer, a.data)]);
            continue;
          case 'valid-in':
            expectOutputs(h.input(a.data, { family: 4, port }, peer), [datagram(LISTEN4, victim, encodeChannelData(0x4000, a.data))]);
            continue;
          case 'time':
            // Stay well inside every lifetime so nothing of the victim's may expire legitimately.
            if (elapsed + a.ms < 250_000) {
              elapsed += a.ms;
              h.advance(a.ms);
            }
            break;
        }
        h.drain();
      }
      const after = h.server.stats();
      assert.equal(after.dropped['internal-error'], undefined);
      assert.equal(JSON.stringify(h.server.snapshot()), victimSnapshot);
      assert.equal(h.server.nextDeadline(), deadline);
      assert.equal(after.allocations, before.allocations);
      assert.equal(after.channels, before.channels);
    }),
    { seed: 0x7e57, numRuns: 150 },
  );
});
