// Kernel memory of the binding tables of bpf/turn_router.o with 65,536
// bindings installed must stay within 16 MiB (bytes_memlock from fdinfo).
// Set TP_MEMORY_OBJECT to measure another build.
//
// Measured on kernel 6.18 (2 CPUs), the four table maps together: 7,418,192 B
// empty and with 65,536 bindings (arrays: allocated whole at creation). The
// hash maps they replaced took 14,682,272 B preallocated, and with
// BPF_F_NO_PREALLOC 2,098,944 B empty but 15,730,432 B full.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import pino from 'pino';
import { XdpRouter, BINDING_TABLE_MAPS, type ChannelBinding } from '../../src/sidecar/bpf/router.ts';
import { requireRoot, requireCapability } from '../helpers/env.ts';
import { BASE_CONFIG, OBJECT } from './golden-scene.ts';

const BUDGET = 16 * 1024 * 1024;
const COUNT = 65_536;
const object = process.env.TP_MEMORY_OBJECT ?? OBJECT;

function binding(i: number): ChannelBinding {
  const v6 = (i & 1) === 1;
  return {
    client: { address: v6 ? `2001:db8:c::${(i >> 1).toString(16)}` : `10.1.${(i >> 9) & 255}.${(i >> 1) & 255}`, port: 40000 + (i % 20000) },
    channel: 0x4000 + (i % 0x1000),
    peer: { address: v6 ? `2001:db8:e::${(i >> 1).toString(16)}` : `172.16.${(i >> 9) & 255}.${(i >> 1) & 255}`, port: 5000 + (i % 1000) },
    allocationPort: 49152 + (i % 16000),
  };
}

test(`golden-memory: ${COUNT} bindings fit in 16 MiB of binding-map memory`, (t) => {
  if (!requireRoot(t) || !requireCapability(t, existsSync(object), `needs ${object} (make -C bpf)`)) return;
  const r = XdpRouter.load({ objectPath: object, mapCapacity: COUNT, log: pino({ level: 'silent' }) });
  try {
    r.writeConfig(BASE_CONFIG);
    const sum = () =>
      r
        .mapMemory()
        .filter((m) => (BINDING_TABLE_MAPS as readonly string[]).includes(m.name))
        .reduce((n, m) => n + m.memlockBytes, 0);
    const empty = sum();
    for (let i = 0; i < COUNT; i++) r.putChannel(binding(i));
    assert.equal(r.bindingCount(), COUNT, 'every binding is distinct and installed');
    const full = sum();
    t.diagnostic(`${object}: binding maps memlock empty ${empty} B, with ${COUNT} bindings ${full} B (budget ${BUDGET} B)`);
    assert.ok(full <= BUDGET, `${full} B > ${BUDGET} B`);
  } finally {
    r.close();
  }
});
