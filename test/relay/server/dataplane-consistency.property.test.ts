// Property: the channel set the data plane learns from the events
// (channel-bound / -refreshed / -unbound) is, after every step of a random
// script of ChannelBind, CreatePermission, Refresh and time, exactly the set
// of channels this process itself relays, both ways, to the same peer. So the
// kernel never relays what userspace would refuse, and never misses what it
// would relay. Events of a request also all come before its response.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeChannelData } from '../../../src/relay/stun/index.ts';
import type { ChannelBinding, Output } from '../../../src/relay/server/types.ts';
import { Harness, LISTEN4, addr } from './harness.ts';

const c1 = addr('198.51.100.1', 40001);
// Two ports of one IP (one permission covers both) and a second IP.
const PEERS = [addr('203.0.113.5', 6000), addr('203.0.113.5', 6001), addr('203.0.113.9', 7000)];
const CHANNELS = [0x4000, 0x4001, 0x4002];

type Step =
  | { kind: 'bind'; channel: number; peer: number }
  | { kind: 'permit'; peers: number[] }
  | { kind: 'refresh'; lifetime: number }
  | { kind: 'time'; ms: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('bind' as const), channel: fc.nat(CHANNELS.length - 1), peer: fc.nat(PEERS.length - 1) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('permit' as const), peers: fc.array(fc.nat(PEERS.length - 1), { minLength: 1, maxLength: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('refresh' as const), lifetime: fc.constantFrom(0, 600, 3600) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('time' as const), ms: fc.oneof(fc.integer({ min: 0, max: 400_000 }), fc.constantFrom(1, 299_999, 300_000, 600_000)) }) },
);

test('the data plane relays exactly the channels userspace relays, after every step', () => {
  fc.assert(
    fc.property(fc.array(stepArb, { maxLength: 40 }), (steps) => {
      const h = new Harness({ defaultLifetime: 3600 });
      const c = h.client(c1);
      let relay = c.allocate().ports.v4!;
      const kernel = new Map<number, ChannelBinding>();

      const apply = (outs: Output[], isRequest: boolean) => {
        let answered = false;
        for (const o of outs) {
          if (o.kind === 'send') answered = true;
          if (o.kind !== 'event') continue;
          if (isRequest) assert.ok(!answered, 'a data-plane event after the response');
          const e = o.event;
          if (e.type === 'channel-bound') {
            assert.ok(!kernel.has(e.binding.channel), `channel-bound for ${e.binding.channel}, already bound`);
            kernel.set(e.binding.channel, e.binding);
          } else if (e.type === 'channel-refreshed') {
            assert.ok(kernel.has(e.binding.channel), `channel-refreshed for ${e.binding.channel}, not bound`);
            kernel.set(e.binding.channel, e.binding);
          } else if (e.type === 'channel-unbound') {
            assert.ok(kernel.delete(e.binding.channel), `channel-unbound for ${e.binding.channel}, not bound`);
          }
        }
      };

      for (const step of steps) {
        switch (step.kind) {
          case 'bind':
            apply(c.channelBind(CHANNELS[step.channel]!, PEERS[step.peer]!), true);
            break;
          case 'permit':
            apply(c.createPermission(...step.peers.map((i) => PEERS[i]!)), true);
            break;
          case 'refresh':
            apply(c.refresh(step.lifetime), true);
            break;
          case 'time':
            apply(h.advance(step.ms), false);
            break;
        }
        if (h.server.stats().allocations === 0) {
          assert.equal(kernel.size, 0, 'a deleted allocation leaves nothing bound');
          relay = c.allocate().ports.v4!;
        }
        // Probe userspace: ChannelData out on each channel, data in from each peer.
        for (const ch of CHANNELS) {
          const outs = h.input(encodeChannelData(ch, new Uint8Array([1])), LISTEN4, c1);
          assert.ok(outs.every((o) => o.kind === 'send'), 'a probe changed the data plane');
          const b = kernel.get(ch);
          if (b === undefined) assert.equal(outs.length, 0, `userspace relays channel ${ch}, the kernel has no binding`);
          else {
            assert.equal(outs.length, 1, `the kernel relays channel ${ch}, userspace refuses`);
            assert.deepEqual(outs[0]!.kind === 'send' && outs[0]!.to, b.peer);
          }
        }
        for (const p of PEERS) {
          const outs = h.input(new Uint8Array([2]), { family: 4, port: relay }, p);
          const viaKernel = [...kernel.values()].find((b) => b.peer.address === p.address && b.peer.port === p.port);
          const asChannelData = outs.length === 1 && outs[0]!.kind === 'send' && (outs[0]!.data[0]! & 0xc0) === 0x40;
          assert.equal(asChannelData, viaKernel !== undefined, `peer ${p.address}:${p.port}: kernel and userspace disagree`);
        }
        const snap = h.server.snapshot().flatMap((e) => (e.type === 'channel-bound' ? [e.binding.channel] : []));
        assert.deepEqual(snap.sort(), [...kernel.keys()].sort(), 'the snapshot matches the events');
        assert.equal(h.server.stats().channels, kernel.size);
      }
    }),
    { numRuns: 300 },
  );
});
