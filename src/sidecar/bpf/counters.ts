// The program's per-CPU counters (one row per CPU in a plain array), summed over CPUs: packets and payload bytes
// per relay path (tp_path_stats) and pass/drop reason counts (tp_reasons).
import { PATH_NAMES, REASON_NAMES, STRUCTS, decodePathStats, type PathName, type ReasonName } from './abi.ts';
import { BpfError } from './errors.ts';
import { BPF_MAP_TYPE_ARRAY } from './libbpf.ts';
import { slotKey, type ObjectMaps } from './maps.ts';

export interface PathCounter {
  path: PathName;
  packets: bigint;
  bytes: bigint;
}

/** The map's rows (one per CPU), after checking it has this checkout's row layout. */
function rows(maps: ObjectMaps, name: 'tp_path_stats' | 'tp_reasons', row: 'tp_path_row' | 'tp_reason_row'): Uint8Array[] {
  const m = maps.get(name);
  const size = STRUCTS[row].size;
  if (m.type !== BPF_MAP_TYPE_ARRAY || m.valueSize !== size) {
    throw new BpfError(`${name} of this object is not an array of ${size}-byte per-CPU rows (type ${m.type}, value ${m.valueSize} B): an object built before ${row}; rebuild it (make -C bpf)`, 'ABI_MISMATCH');
  }
  const out: Uint8Array[] = [];
  for (let cpu = 0; cpu < m.maxEntries; cpu++) {
    const r = maps.lookup(m, slotKey(cpu), `read ${name}[${cpu}]`);
    if (r) out.push(r);
  }
  return out;
}

/** Sums tp_path_stats: one row per CPU (struct tp_path_row), a tp_path_stats per path in each. */
export function readPathStats(maps: ObjectMaps): PathCounter[] {
  const out = PATH_NAMES.map((path) => ({ path, packets: 0n, bytes: 0n }));
  const size = STRUCTS.tp_path_stats.size;
  for (const row of rows(maps, 'tp_path_stats', 'tp_path_row')) {
    out.forEach((c, i) => {
      const s = decodePathStats(row.subarray(i * size, (i + 1) * size));
      c.packets += s.packets;
      c.bytes += s.bytes;
    });
  }
  return out;
}

/** Sums tp_reasons: one row per CPU (struct tp_reason_row), a host-order __u64 per reason in each. */
export function readReasons(maps: ObjectMaps): Record<ReasonName, bigint> {
  const out = Object.fromEntries(REASON_NAMES.map((name) => [name, 0n])) as Record<ReasonName, bigint>;
  for (const row of rows(maps, 'tp_reasons', 'tp_reason_row')) {
    const view = new DataView(row.buffer, row.byteOffset, row.byteLength);
    REASON_NAMES.forEach((name, i) => {
      out[name] += view.getBigUint64(i * 8, true);
    });
  }
  return out;
}
