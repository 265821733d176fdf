// Proves src/sidecar/bpf/abi.ts agrees with bpf/turn_router_shared.h as the
// compiler lays it out: sizes and field offsets/sizes of every struct, the
// value of every enum constant and the verdict of every reason (the drop
// mask), read from BTF (bpftool's JSON dump). Two objects are checked: a probe
// that names every type of the header, and the real bpf/turn_router.o
// (whatever types it carries; clang keeps only the types its maps use).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  ENUMS,
  STRUCTS,
  PATH_NAMES,
  REASON_NAMES,
  encodeConfig,
  decodeConfig,
  encodeChanKey,
  decodeChanKey,
  encodePeerKey,
  decodePeerKey,
  encodeNeighKey,
  encodeNeighValue,
  decodeNeighbour,
  addressText,
  encodeRouteKey,
  encodeRouteValue,
  decodeRoute,
  TP_ROUTE_UNICAST,
  encodeChanValue,
  decodeChanValue,
  decodePartner,
} from '../../src/sidecar/bpf/abi.ts';
import { KERNEL_REASONS, reasonName } from '../../src/shared/reasons.ts';
import { requireCapability, hasCommand } from '../helpers/env.ts';
import { buildSource, canBuildBpf, repoRoot, routerObject } from './fixtures/build.ts';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  values?: { name: string; val: number }[];
}

function readBtf(object: string): Map<number, BtfType> {
  const out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', object, 'format', 'raw'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const types = (JSON.parse(out) as { types: BtfType[] }).types;
  return new Map(types.map((t) => [t.id, t]));
}

function sizeOf(btf: Map<number, BtfType>, id: number): number {
  const t = btf.get(id)!;
  switch (t.kind) {
    case 'TYPEDEF':
    case 'VOLATILE':
    case 'CONST':
    case 'RESTRICT':
      return sizeOf(btf, t.type_id!);
    case 'ARRAY':
      return sizeOf(btf, t.type_id!) * t.nr_elems!;
    default:
      return t.size!;
  }
}

function checkStructs(btf: Map<number, BtfType>, requireAll: boolean): string[] {
  const seen: string[] = [];
  for (const [name, layout] of Object.entries(STRUCTS)) {
    const t = [...btf.values()].find((x) => x.kind === 'STRUCT' && x.name === name);
    if (!t) {
      assert.ok(!requireAll, `struct ${name} missing from BTF`);
      continue;
    }
    seen.push(name);
    assert.equal(t.size, layout.size, `sizeof(struct ${name})`);
    const members = t.members!.map((m) => m.name);
    assert.deepEqual(members, Object.keys(layout.fields), `fields of struct ${name}`);
    for (const m of t.members!) {
      const f = (layout.fields as Record<string, { offset: number; size: number }>)[m.name]!;
      assert.equal(m.bits_offset % 8, 0, `${name}.${m.name} is byte aligned`);
      assert.equal(m.bits_offset / 8, f.offset, `offsetof(${name}, ${m.name})`);
      assert.equal(sizeOf(btf, m.type_id), f.size, `sizeof(${name}.${m.name})`);
    }
  }
  return seen;
}

function checkEnums(btf: Map<number, BtfType>, requireAll: boolean): string[] {
  const seen: string[] = [];
  for (const [name, values] of Object.entries(ENUMS)) {
    const t = [...btf.values()].find((x) => (x.kind === 'ENUM' || x.kind === 'ENUM64') && x.name === name);
    if (!t) {
      assert.ok(!requireAll, `enum ${name} missing from BTF`);
      continue;
    }
    seen.push(name);
    assert.deepEqual(Object.fromEntries(t.values!.map((v) => [v.name, Number(v.val)])), values, `enum ${name}`);
  }
  return seen;
}

/** Reason names whose bit is set in the header's TP_DROP_REASONS_MASK, as BTF has it. */
function droppedByMask(btf: Map<number, BtfType>): string[] | undefined {
  const t = [...btf.values()].find((x) => x.kind === 'ENUM' && x.name === 'tp_reason_verdict');
  const mask = t?.values!.find((v) => v.name === 'TP_DROP_REASONS_MASK')?.val;
  return mask === undefined ? undefined : REASON_NAMES.filter((_, i) => (Number(mask) >> i) & 1);
}

const tools = () => canBuildBpf() && hasCommand('bpftool');

test('the shared header, compiled, has exactly the layouts and enum values of abi.ts', (t) => {
  if (!requireCapability(t, tools(), 'needs clang and bpftool')) return;
  const header = join(repoRoot, 'bpf', 'turn_router_shared.h');
  const probe = buildSource(
    'abi_probe',
    `#include "${header}"\n` +
      Object.keys(ENUMS).map((e) => `enum ${e} probe_${e};\n`).join('') +
      Object.keys(STRUCTS).map((s) => `struct ${s} probe_${s};\n`).join(''),
  );
  const btf = readBtf(probe);
  assert.equal(checkStructs(btf, true).length, Object.keys(STRUCTS).length);
  const drops = KERNEL_REASONS.filter((r) => r.verdict === 'drop').map(reasonName);
  assert.deepEqual(droppedByMask(btf), drops, 'the reasons TP_DROP_REASONS_MASK drops are the drop verdicts of KERNEL_REASONS');
  assert.equal(checkEnums(btf, true).length, Object.keys(ENUMS).length);
});

test('bpf/turn_router.o carries the same layouts for every shared type it contains', (t) => {
  if (!requireCapability(t, hasCommand('bpftool'), 'needs bpftool')) return;
  const obj = routerObject();
  if (!requireCapability(t, obj !== undefined, 'bpf/turn_router.o not built (make -C bpf)')) return;
  const btf = readBtf(obj!);
  const structs = checkStructs(btf, false);
  checkEnums(btf, false);
  // Every map value struct, and what they are built of, must be present: the maps are declared with them.
  // (tp_peer_key and tp_peer_value are the halves of tp_binding read the other way round.)
  for (const s of ['tp_config', 'tp_binding', 'tp_bucket', 'tp_bind_meta', 'tp_chan_key', 'tp_chan_value', 'tp_path_stats', 'tp_path_row', 'tp_reason_row', 'tp_route_key', 'tp_route_value', 'tp_neigh_key', 'tp_neigh_value']) {
    assert.ok(structs.includes(s), `struct ${s} in the object's BTF`);
  }
});

test('names are stable snake_case and match the enum order', () => {
  assert.equal(PATH_NAMES[0], 'chan_to_udp_44');
  assert.equal(PATH_NAMES[11], 'chan_to_chan_66');
  assert.equal(REASON_NAMES[9], 'pass_stun');
  assert.equal(REASON_NAMES[15], 'drop_adjust_head');
  for (const n of [...PATH_NAMES, ...REASON_NAMES]) assert.match(n, /^[a-z0-9_]+$/);
});

test('config encoding keeps ports in network order and counts in host order', () => {
  const b = encodeConfig({ listenPort: 3478, portMin: 49152, portMax: 65535, mtu: 1500, diagPerSec: 10, relayV4: '192.0.2.1', relayV6: '2001:db8::1' });
  assert.deepEqual([...b.subarray(6, 12)], [0x0d, 0x96, 0xc0, 0x00, 0xff, 0xff]);
  assert.deepEqual([...b.subarray(0, 6)], [3, 0, 0, 0, 0xdc, 0x05]); // flags v4|v6, mtu LE
  assert.deepEqual([...b.subarray(16, 20)], [192, 0, 2, 1]);
  const c = decodeConfig(b);
  assert.equal(c.relayV6, '2001:db8::1');
  assert.equal(c.portMin, 49152);
});

test('binding keys store IPv4 as IPv4-mapped 16 bytes with family 4 and round-trip', () => {
  const k = encodeChanKey({ client: { address: '198.51.100.7', port: 40000 }, channel: 0x4001 });
  assert.equal(k.length, STRUCTS.tp_chan_key.size);
  assert.deepEqual([...k.subarray(0, 16)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7]);
  assert.deepEqual([...k.subarray(16)], [0x9c, 0x40, 0x40, 0x01, 4, 0, 0, 0]); // ports, family, zero padding
  assert.deepEqual(decodeChanKey(k), { client: { address: '198.51.100.7', port: 40000 }, channel: 0x4001 });
  const v6 = encodeChanKey({ client: { address: 'fe80::1:2', port: 1 }, channel: 0x4fff });
  assert.equal(decodeChanKey(v6).client.address, 'fe80::1:2');
  assert.equal(addressText(new Uint8Array(16), 6), '::');
  assert.throws(() => encodeChanKey({ client: { address: '10.0.0.1', port: 1 }, channel: 0x3fff }), /channel/);
  assert.throws(() => encodeChanKey({ client: { address: 'nope', port: 1 }, channel: 0x4000 }), /not an IP/);
});

test('an IPv4-mapped IPv6 address keeps family 6: another key than the IPv4 address, and reads back as IPv6', () => {
  const peer = { port: 6000 };
  const v4 = encodePeerKey({ peer: { ...peer, address: '198.51.100.7' }, allocationPort: 50000 });
  const mapped = encodePeerKey({ peer: { ...peer, address: '::ffff:198.51.100.7' }, allocationPort: 50000 });
  assert.deepEqual(mapped.subarray(0, 20), v4.subarray(0, 20), 'the same 16 bytes and ports...');
  assert.equal(v4[20], 4);
  assert.equal(mapped[20], 6, '...but not the same family, so not the same key');
  assert.deepEqual(decodePeerKey(mapped), { peer: { ...peer, address: '::ffff:198.51.100.7' }, allocationPort: 50000 });
  assert.deepEqual(decodePeerKey(v4), { peer: { ...peer, address: '198.51.100.7' }, allocationPort: 50000 });
  const n = encodeNeighKey({ address: '::ffff:198.51.100.7', ifindex: 3 });
  assert.equal(n[STRUCTS.tp_neigh_key.fields.family.offset], 6);
  assert.equal(decodeNeighbour(n, encodeNeighValue({ mac: '02:00:00:00:00:01', ownMac: '02:00:00:00:00:02' })).address, '::ffff:198.51.100.7');
});

test('route keys: family and pad always match, then the prefix of the 16-byte form; zero beyond it; round-trip', () => {
  const k4 = encodeRouteKey({ prefix: '198.51.100.77', prefixLength: 24 });
  assert.equal(k4.length, STRUCTS.tp_route_key.size);
  assert.deepEqual([...k4.subarray(0, 8)], [32 + 96 + 24, 0, 0, 0, 4, 0, 0, 0]);
  assert.deepEqual([...k4.subarray(8)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 0]);
  const k6 = encodeRouteKey({ prefix: '2001:db8:ffff::1', prefixLength: 33 });
  assert.deepEqual([...k6.subarray(0, 8)], [32 + 33, 0, 0, 0, 6, 0, 0, 0]);
  assert.deepEqual([...k6.subarray(8, 14)], [0x20, 0x01, 0x0d, 0xb8, 0x80, 0]);
  const v = encodeRouteValue({ kind: 'unicast', ifindex: 7, gateway: 'fe80::1', mtu: 1400 });
  assert.deepEqual([...v.subarray(16)], [7, 0, 0, 0, 6, TP_ROUTE_UNICAST, 0x78, 0x05]);
  assert.deepEqual(decodeRoute(k6, v), { prefix: '2001:db8:8000::', prefixLength: 33, kind: 'unicast', ifindex: 7, gateway: 'fe80::1', mtu: 1400 });
  const onLink = decodeRoute(encodeRouteKey({ prefix: '0.0.0.0', prefixLength: 0 }), encodeRouteValue({ kind: 'stack', ifindex: 0, mtu: 0 }));
  assert.deepEqual(onLink, { prefix: '0.0.0.0', prefixLength: 0, kind: 'stack', ifindex: 0, gateway: undefined, mtu: 0 });
  assert.throws(() => encodeRouteKey({ prefix: '10.0.0.0', prefixLength: 33 }), /prefix length/);
});

test('channel values: the binding, then the partner (channel -> channel) or zeros', () => {
  const v = { peer: { address: '203.0.113.1', port: 50012 }, allocationPort: 50011 };
  const alone = encodeChanValue(v);
  assert.equal(alone.length, STRUCTS.tp_chan_value.size);
  assert.deepEqual([...alone.subarray(24)], new Array(24).fill(0));
  assert.equal(decodePartner(alone), undefined);
  const linked = encodeChanValue(v, { client: { address: '2001:db8:c::11', port: 50200 }, channel: 0x4022 });
  assert.deepEqual(linked.subarray(0, 24), alone.subarray(0, 24));
  assert.deepEqual([...linked.subarray(40)], [0xc4, 0x18, 0x40, 0x22, 6, 0, 0, 0]);
  assert.deepEqual(decodePartner(linked), { client: { address: '2001:db8:c::11', port: 50200 }, channel: 0x4022 });
  assert.deepEqual(decodeChanValue(linked), v);
});

test('neighbour values: both MACs, each followed by two zero bytes', () => {
  const v = encodeNeighValue({ mac: '02:00:00:00:00:9a', ownMac: 'aa:bb:cc:dd:ee:ff' });
  assert.deepEqual([...v], [2, 0, 0, 0, 0, 0x9a, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0, 0]);
  assert.throws(() => encodeNeighValue({ mac: '02:00:00:00:00', ownMac: 'aa:bb:cc:dd:ee:ff' }), /not a MAC/);
});

test('config refuses an IPv4-mapped relay IPv6 address', () => {
  assert.throws(
    () => encodeConfig({ listenPort: 3478, portMin: 49152, portMax: 65535, mtu: 1500, diagPerSec: 0, relayV6: '::ffff:192.0.2.1' }),
    /relayV6 is an IPv4-mapped address/,
  );
});
