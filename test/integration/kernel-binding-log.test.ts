// The sidecar's half of a session's log: each binding written to or removed
// from the kernel maps is a debug line in the `session` module with the same
// fields as the relay's channel lines, and the datapath its packets now take;
// a client's writes are bounded by its line budget like its relay lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { XdpRouter } from '../../src/sidecar/bpf/router.ts';
import { KernelBindings } from '../../src/sidecar/ebpf.ts';
import { LineBudget } from '../../src/shared/logger.ts';
import type { ChannelBinding } from '../../src/shared/binding.ts';
import { isRoot, requireCapability } from '../helpers/env.ts';

const objectPath = fileURLToPath(new URL('../../bpf/turn_router.o', import.meta.url));

// One allocation per client port (each its own relayed port: two allocations never share a kernel entry).
const binding = (port: number, allocationPort = 49200): ChannelBinding => ({
  client: { family: 4, address: '198.51.100.7', port },
  channel: 0x4001,
  peer: { family: 4, address: '203.0.113.9', port: 5000 },
  allocationPort,
  allocationPorts: { v4: allocationPort },
  expiresAt: 0,
});

test('kernel binding written / removed: session fields and the datapath, within the client budget', async (t) => {
  if (!requireCapability(t, isRoot() && existsSync(objectPath), 'needs root and bpf/turn_router.o')) return;
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const router = XdpRouter.load({ objectPath, mapCapacity: 1024, log: pino({ level: 'silent' }) });
  t.after(() => router.close());
  const budget = new LineBudget(3, 4096, () => 0); // one window for the whole test
  const map = new KernelBindings(router, log.child({ module: 'bpf' }), { log: log.child({ module: 'session' }), budget }).channels;

  await map.install(binding(40001));
  await map.remove(binding(40001));
  assert.deepEqual(
    lines.map(({ msg, module, client, transport, channel, peer, port, datapath }) => ({ msg, module, client, transport, channel, peer, port, datapath })),
    ['kernel binding written', 'kernel binding removed'].map((msg) => ({
      msg,
      module: 'session',
      client: '198.51.100.7:40001',
      transport: 'udp',
      channel: 0x4001,
      peer: '203.0.113.9:5000',
      port: 49200,
      datapath: 'xdp',
    })),
  );
  // The same client address writing again and again: the map follows, the log stops at the budget.
  for (let i = 0; i < 5; i++) await map.install(binding(40002 + i, 49201 + i));
  assert.equal(router.listBindings().length, 5);
  assert.equal(lines.length, 3);
  assert.equal(budget.suppressed, 4);
});
