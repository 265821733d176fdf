// Kernel memory of the XDP binding maps at a given capacity, filled with
// `fill` distinct channel bindings, measured through the project's loader
// (bytes_memlock of each map from /proc/self/fdinfo). Needs root and the
// built object bpf/turn_router.o.
import { existsSync } from 'node:fs';
import pino from 'pino';

export interface MapMemoryResult {
  capacity: number;
  filled: number;
  /** Sum over the two binding maps. */
  bindingBytes: number;
  /** Sum over every map of the object. */
  totalBytes: number;
  perMap: { name: string; maxEntries: number; memlockBytes: number }[];
  fillSeconds: number;
}

function ipv4Of(i: number): string {
  return `10.${(i >>> 16) & 0xff}.${(i >>> 8) & 0xff}.${i & 0xff}`;
}

export async function measureMapMemory(capacity: number, fill: number): Promise<MapMemoryResult> {
  const objectPath = new URL('../../bpf/turn_router.o', import.meta.url).pathname;
  if (!existsSync(objectPath)) throw new Error(`${objectPath} not built (make -C bpf)`);
  const { XdpRouter, BINDING_TABLE_MAPS } = await import('../../src/sidecar/bpf/router.ts');
  const router = XdpRouter.load({ objectPath, mapCapacity: capacity, log: pino({ level: 'silent' }) });
  try {
    const t0 = performance.now();
    for (let i = 0; i < fill; i++) {
      // Distinct clients and allocation ports, so both maps hold `fill` keys.
      router.putChannel({
        client: { address: ipv4Of(i), port: 40000 + (i % 20000) },
        channel: 0x4000 + (i % 0x1000),
        peer: { address: `100.${(i >>> 16) & 0xff}.${(i >>> 8) & 0xff}.${i & 0xff}`, port: 9000 },
        allocationPort: 1024 + (i % 64000),
      });
    }
    const fillSeconds = (performance.now() - t0) / 1000;
    const perMap = router.mapMemory().map((m) => ({ name: m.name, maxEntries: m.maxEntries, memlockBytes: m.memlockBytes }));
    const binding = perMap.filter((m) => (BINDING_TABLE_MAPS as readonly string[]).includes(m.name));
    return {
      capacity,
      filled: fill,
      bindingBytes: binding.reduce((s, m) => s + m.memlockBytes, 0),
      totalBytes: perMap.reduce((s, m) => s + m.memlockBytes, 0),
      perMap,
      fillSeconds,
    };
  } finally {
    router.close();
  }
}
