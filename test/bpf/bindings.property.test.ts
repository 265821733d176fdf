// Property: bindings of distinct allocations never share or overwrite one
// kernel entry. Random sets of allocations (IPv4, IPv6 and dual; allocation
// ports whose numbers repeat across the families; clients and peers drawn
// from small pools in which ::ffff:a.b.c.d sits beside a.b.c.d) bind
// channels through the sidecar's map code (KernelBindings.channels, as the relay
// bridge drives it) into the maps of the real bpf/turn_router.o. Every
// binding must read back unchanged in both directions, deleting one must
// leave every other one in place, a binding that claims another's key is
// refused and removes nothing, and a resync (replaceAll) ends with exactly
// the bindings asked for.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import fc from 'fast-check';
import pino from 'pino';
import { XdpRouter } from '../../src/sidecar/bpf/router.ts';
import { KernelBindings } from '../../src/sidecar/ebpf.ts';
import type { ChannelBinding } from '../../src/shared/binding.ts';
import type { Family, TransportAddress } from '../../src/shared/endpoint.ts';
import { requireRoot, requireCapability } from '../helpers/env.ts';
import { BASE_CONFIG, OBJECT } from './golden-scene.ts';

// Canonical texts (as the maps read back): each IPv4 address has its
// IPv4-mapped twin, and the IPv4-compatible form of it besides.
const ADDRESSES: Readonly<Record<Family, readonly string[]>> = {
  4: ['198.51.100.7', '192.0.2.1', '203.0.113.9'],
  6: ['::ffff:198.51.100.7', '::ffff:192.0.2.1', '::c633:6407', '2001:db8::7', '2001:db8::1'],
};
const PORTS = [3478, 6000, 40000, 50000];
/** Allocation port numbers: few, so IPv4 and IPv6 allocations share numbers. */
const ALLOCATION_PORTS = [50000, 50001, 50002];

const endpointArb = fc.constantFrom<Family>(4, 6).chain((family) =>
  fc.record({ family: fc.constant(family), address: fc.constantFrom(...ADDRESSES[family]), port: fc.constantFrom(...PORTS) }),
);

const allocationArb = fc.record({
  client: endpointArb,
  families: fc.constantFrom<readonly Family[]>([4], [6], [4, 6]),
  port4: fc.constantFrom(...ALLOCATION_PORTS),
  port6: fc.constantFrom(...ALLOCATION_PORTS),
  channels: fc.array(fc.record({ channel: fc.integer({ min: 0x4000, max: 0x4003 }), peer: endpointArb }), { minLength: 1, maxLength: 4 }),
});

type Allocation = typeof allocationArb extends fc.Arbitrary<infer A> ? A : never;

const key = (a: TransportAddress) => `${a.family}|${a.address}|${a.port}`;

/**
 * The bindings a relay could hold for these allocations: an allocation whose
 * client 5-tuple or relayed port (per family) is taken is skipped, and within
 * one a channel number or peer address that is taken, or a peer family it has
 * no port for, is skipped (RFC 8656 §12: one peer per channel, one channel per peer).
 */
function bindingsOf(allocs: Allocation[]): ChannelBinding[] {
  const clients = new Set<string>();
  const ports = new Set<string>();
  const out: ChannelBinding[] = [];
  for (const a of allocs) {
    const own = { v4: a.families.includes(4) ? a.port4 : undefined, v6: a.families.includes(6) ? a.port6 : undefined };
    const portKeys = [own.v4 !== undefined && `4|${own.v4}`, own.v6 !== undefined && `6|${own.v6}`].filter((k): k is string => k !== false);
    if (clients.has(key(a.client)) || portKeys.some((k) => ports.has(k))) continue;
    clients.add(key(a.client));
    for (const k of portKeys) ports.add(k);
    const channels = new Set<number>();
    const peers = new Set<string>();
    for (const c of a.channels) {
      const allocationPort = c.peer.family === 4 ? own.v4 : own.v6;
      if (allocationPort === undefined || channels.has(c.channel) || peers.has(key(c.peer))) continue;
      channels.add(c.channel);
      peers.add(key(c.peer));
      out.push({ client: a.client, channel: c.channel, peer: c.peer, allocationPort, allocationPorts: own, expiresAt: 0 });
    }
  }
  return out;
}

const endpoint = (a: TransportAddress) => ({ address: a.address, port: a.port });

let router: XdpRouter | undefined;

before(() => {
  if (process.getuid?.() !== 0 || !existsSync(OBJECT)) return;
  router = XdpRouter.load({ objectPath: OBJECT, mapCapacity: 1024, log: pino({ level: 'silent' }) });
  router.writeConfig(BASE_CONFIG);
});
after(() => {
  router?.close();
});

/** Every binding of `bs` reads back unchanged in both directions, and the maps hold nothing else. */
function assertExactly(r: XdpRouter, bs: readonly ChannelBinding[], when: string): void {
  for (const b of bs) {
    assert.deepEqual(r.lookupChannel(endpoint(b.client), b.channel), { peer: endpoint(b.peer), allocationPort: b.allocationPort }, `${when}: client side of ${JSON.stringify(b)}`);
    assert.deepEqual(r.lookupPeer(endpoint(b.peer), b.allocationPort), { client: endpoint(b.client), channel: b.channel }, `${when}: peer side of ${JSON.stringify(b)}`);
  }
  assert.equal(r.bindingCount(), bs.length, `${when}: entries in tp_chan_to_peer`);
}

test('bindings of distinct allocations never share or overwrite a kernel entry, whatever their families', (t) => {
  if (!requireRoot(t) || !requireCapability(t, existsSync(OBJECT), `needs ${OBJECT} (make -C bpf)`)) return;
  const r = router!;
  const channels = new KernelBindings(r, pino({ level: 'silent' })).channels;
  fc.assert(
    fc.property(fc.array(allocationArb, { minLength: 2, maxLength: 12 }), fc.infiniteStream(fc.nat()), (allocs, picks) => {
      const bs = bindingsOf(allocs);
      fc.pre(bs.length > 0);
      r.clearBindings();
      for (const b of bs) channels.install(b);
      assertExactly(r, bs, 'after installing');

      // A binding that claims another's key (same client and channel, or same
      // peer and allocation port, with other values) is refused and leaves it be.
      const victim = bs[picks.next().value! % bs.length]!;
      const other = bs.find((b) => key(b.peer) !== key(victim.peer) && b.peer.family === victim.peer.family);
      const impostors = [
        ...(other ? [{ ...victim, peer: other.peer }] : []),
        { ...victim, client: { ...victim.client, port: victim.client.port + 1 } },
      ];
      for (const imp of impostors) {
        assert.throws(() => channels.install(imp), /EEXIST/, 'a put over another binding\'s entry');
        channels.remove(imp);
      }
      assertExactly(r, bs, 'after impostors');

      // Deleting one removes it and nothing else.
      const left = [...bs];
      while (left.length > bs.length / 2) {
        const [gone] = left.splice(picks.next().value! % left.length, 1);
        channels.remove(gone!);
        assert.equal(r.lookupChannel(endpoint(gone!.client), gone!.channel), undefined, 'the deleted binding is gone (client side)');
        assert.equal(r.lookupPeer(endpoint(gone!.peer), gone!.allocationPort), undefined, 'the deleted binding is gone (peer side)');
        assertExactly(r, left, 'after a delete');
      }

      // A resync to another set ends with exactly that set.
      const resync = [...left.slice(1), ...bs.filter((b) => !left.includes(b)).slice(0, 2)];
      channels.replaceAll(resync);
      assertExactly(r, resync, 'after replaceAll');
    }),
    { numRuns: 150 },
  );
  r.clearBindings();
});
