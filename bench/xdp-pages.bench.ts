// What one BPF_PROG_TEST_RUN pays per distinct page its program touches
// (bpf/page_probe.c): programs that read 8 cache lines on 8 pages of a
// vmalloc'd array, on 1 page of it, or on pages of a small kmalloc'd array,
// each single run right after a single run of the probe's empty program,
// as bench/xdp.bench.ts times the router. On a host with page-table
// isolation and no PCID every syscall empties the TLB, so "pages8" would
// pay a page walk per page beyond "lines8"; elsewhere the two cost the same.
// Prints the host's mitigation state beside the figures.
//
// Run (root): node --import tsx bench/xdp-pages.bench.ts [calls-per-round]
// (TP_BENCH_ROUNDS=n rounds, default 5)
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { XdpRouter } from '../src/sidecar/bpf/router.ts';
import { payloadOf } from '../test/bpf/frames.ts';
import { C4, inFrame, toListen } from '../test/bpf/golden-scene.ts';
import { median, pairedRound } from './lib/test-run-pairs.ts';

const CALLS = Number(process.argv[2] ?? 20000);
const ROUNDS = Number(process.env.TP_BENCH_ROUNDS ?? 5);
const OBJECT = new URL('../bpf/page_probe.o', import.meta.url).pathname;
const PROGRAMS = ['pages8', 'lines8', 'small8'] as const;
const log = pino({ level: 'silent' });

const read = (path: string) => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return 'unknown';
  }
};

const flags = /^flags\s*:(.*)$/m.exec(read('/proc/cpuinfo'))?.[1]?.split(' ') ?? [];
console.log(`meltdown: ${read('/sys/devices/system/cpu/vulnerabilities/meltdown')}; CPU flag pcid ${flags.includes('pcid') ? 'present' : 'absent'}`);

const frame = inFrame(C4, toListen(C4), payloadOf(16));
const empty = XdpRouter.load({ objectPath: OBJECT, programName: 'empty', log });
const probes = PROGRAMS.map((name) => XdpRouter.load({ objectPath: OBJECT, programName: name, log }));
try {
  const diffs = PROGRAMS.map(() => [] as number[]);
  const emptyLows: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    probes.forEach((p, i) => {
      const { empty: e, path } = pairedRound(empty, p, frame, CALLS);
      emptyLows.push(e);
      diffs[i]!.push(path - e);
    });
  }
  console.log(`empty: ${median(emptyLows).toFixed(1)} ns per single run; each probe minus empty (mean of the lowest 40 %, median over ${ROUNDS} rounds x ${CALLS} paired runs):`);
  console.table(PROGRAMS.map((name, i) => ({ program: name, 'ns over empty': median(diffs[i]!).toFixed(1) })));
} finally {
  for (const p of probes) p.close();
  empty.close();
}
