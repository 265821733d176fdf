// The program's per-CPU counters, summed over CPUs: packets and payload bytes
// per relay path (tp_path_stats) and pass/drop reason counts (tp_reasons).
import { PATH_NAMES, REASON_NAMES, decodePathStats, type PathName, type ReasonName } from './abi.ts';
import type { ObjectMaps } from './maps.ts';

export interface PathCounter {
  path: PathName;
  packets: bigint;
  bytes: bigint;
}

export function readPathStats(maps: ObjectMaps): PathCounter[] {
  return PATH_NAMES.map((path, i) => {
    let packets = 0n, bytes = 0n;
    for (const v of maps.readPerCpu('tp_path_stats', i)) {
      const s = decodePathStats(v);
      packets += s.packets;
      bytes += s.bytes;
    }
    return { path, packets, bytes };
  });
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
