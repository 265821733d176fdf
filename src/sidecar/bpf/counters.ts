// The program's per-CPU counters (per-CPU rows of an array, per-CPU arrays), summed over CPUs: packets and payload bytes
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

/** Sums tp_path_stats: one row per CPU (struct tp_path_row), a tp_path_stats per path in each. */
export function readPathStats(maps: ObjectMaps): PathCounter[] {
  const m = maps.get('tp_path_stats');
  if (m.type !== BPF_MAP_TYPE_ARRAY || m.valueSize !== STRUCTS.tp_path_row.size) {
    throw new BpfError(`tp_path_stats of this object is not an array of ${STRUCTS.tp_path_row.size}-byte per-CPU rows (type ${m.type}, value ${m.valueSize} B): an object built before tp_path_row; rebuild it (make -C bpf)`, 'ABI_MISMATCH');
  }
  const out = PATH_NAMES.map((path) => ({ path, packets: 0n, bytes: 0n }));
  const size = STRUCTS.tp_path_stats.size;
  for (let cpu = 0; cpu < m.maxEntries; cpu++) {
    const row = maps.lookup(m, slotKey(cpu), `read tp_path_stats[${cpu}]`);
    if (!row) continue;
    out.forEach((c, i) => {
      const s = decodePathStats(row.subarray(i * size, (i + 1) * size));
      c.packets += s.packets;
      c.bytes += s.bytes;
    });
  }
  return out;
}

export function readReasons(maps: ObjectMaps): Record<ReasonName, bigint> {
  const out = {} as Record<ReasonName, bigint>;
  REASON_NAMES.forEach((name, i) => {
    let n = 0n;
    for (const v of maps.readPerCpu('tp_reasons', i)) n += new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true);
    out[name] = n;
  });
  return out;
}
