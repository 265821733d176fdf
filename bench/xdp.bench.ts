// ns per packet of each XDP fast path (bpf/turn_router.o) next to an empty
// XDP program (bpf/empty.o), both timed by the kernel in BPF_PROG_TEST_RUN
// in the same run, interleaved in rounds; prints the ratio to empty and
// whether the <= 2x target holds.
//
// Why not one test run with repeat=1e6 for the relay paths: the kernel runs
// the program repeatedly on the SAME buffer, so from the second iteration on
// it sees its own output (e.g. a UDP datagram addressed to a peer) and takes
// the cheap pass path; the bench shows this with the counters. So relay
// paths are timed as many test runs with repeat=1 (each run's duration
// includes the kernel's timer and bh-disable overhead, the same for empty),
// and paths that leave the frame unchanged (passes) also with repeat=1e6.
//
// What the ratio means: a single run's duration is the kernel's timer
// (ktime_get_ns before and after), local_bh_disable/enable and the dispatch
// around ONE program run on caches the syscall and this process just
// churned. The empty program's own work is ~1 ns, so its single-run time is
// almost all harness: the table prints that overhead (empty single-run
// minus its per-run time at repeat=1e6) and each path's cost above the
// empty program. The ratio is (overhead + path) / (overhead + empty), a
// cold-cache figure; bench/xdp-veth.bench.ts measures the same paths warm
// on a real datapath (bpf_stats and CPU per packet).
//
// Run (root): node --import tsx bench/xdp.bench.ts [calls-per-round]
// TP_BENCH_OBJECT=path times another build (e.g. -DTP_FIB_LOOKUP=0).
import pino from 'pino';
import { XdpRouter } from '../src/sidecar/bpf/router.ts';
import { testRun } from '../test/helpers/bpf-test-run.ts';
import { channelData, payloadOf } from '../test/bpf/frames.ts';
import {
  BASE_CONFIG, BINDINGS, C4, C6, EMPTY_OBJECT, OBJECT, P4, P6, alloc, inFrame, installNextHops, toListen,
} from '../test/bpf/golden-scene.ts';

const CALLS = Number(process.argv[2] ?? 4000);
const ROUNDS = 5;
const REPEAT = 1_000_000;
const log = pino({ level: 'silent' });

const data = payloadOf(100, 1);
const big = payloadOf(1000, 2);
const B = (c: { address: string; port: number }) => ({ address: c.address, port: c.port });
const cases: Array<{ name: string; frame: Uint8Array; expect: string; repeatable: boolean }> = [
  { name: 'chan_to_udp_44', frame: inFrame(C4, toListen(C4), channelData(0x4001, data)), expect: 'XDP_TX', repeatable: false },
  { name: 'chan_to_udp_46', frame: inFrame(C4, toListen(C4), channelData(0x4002, data)), expect: 'XDP_TX', repeatable: false },
  { name: 'chan_to_udp_64', frame: inFrame(C6, toListen(C6), channelData(0x4003, data)), expect: 'XDP_TX', repeatable: false },
  { name: 'chan_to_udp_66', frame: inFrame(C6, toListen(C6), channelData(0x4004, data)), expect: 'XDP_TX', repeatable: false },
  { name: 'udp_to_chan_44', frame: inFrame(P4, alloc(P4, 50001), data), expect: 'XDP_TX', repeatable: false },
  { name: 'udp_to_chan_46', frame: inFrame(P4, alloc(P4, 50003), data), expect: 'XDP_TX', repeatable: false },
  { name: 'udp_to_chan_64', frame: inFrame(P6, alloc(P6, 50002), data), expect: 'XDP_TX', repeatable: false },
  { name: 'udp_to_chan_66', frame: inFrame(P6, alloc(P6, 50004), data), expect: 'XDP_TX', repeatable: false },
  { name: 'chan_to_chan_44', frame: inFrame(C4, toListen(C4), channelData(0x4011, data)), expect: 'XDP_TX', repeatable: false },
  { name: 'chan_to_chan_46', frame: inFrame(C4, toListen(C4), channelData(0x4021, data)), expect: 'XDP_TX', repeatable: false },
  { name: 'chan_to_chan_64', frame: inFrame(C6, toListen(C6), channelData(0x4031, data)), expect: 'XDP_TX', repeatable: false },
  { name: 'chan_to_chan_66', frame: inFrame(C6, toListen(C6), channelData(0x4041, data)), expect: 'XDP_TX', repeatable: false },
  { name: 'chan_to_udp_46, 1000 B, v4 csum 0 (full sum)', frame: inFrame(C4, toListen(C4), channelData(0x4002, big), { udpChecksum: 'zero' }), expect: 'XDP_TX', repeatable: false },
  { name: 'pass: no binding', frame: inFrame(B({ ...C4, port: 1 }), toListen(C4), channelData(0x4001, data)), expect: 'XDP_PASS', repeatable: true },
  { name: 'pass: STUN', frame: inFrame(C4, toListen(C4), Uint8Array.from([0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, ...payloadOf(12)])), expect: 'XDP_PASS', repeatable: true },
];

/** Mean and 20th percentile of n single runs. On a loaded machine the mean
 * carries preemptions and interrupts; the low percentile is the program. */
function perCall(r: XdpRouter, frame: Uint8Array, n: number): { mean: number; p20: number } {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) xs.push(testRun(r, frame).durationNs);
  xs.sort((a, b) => a - b);
  return { mean: xs.reduce((a, b) => a + b, 0) / n, p20: xs[Math.floor(n / 5)]! };
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const router = XdpRouter.load({ objectPath: process.env.TP_BENCH_OBJECT ?? OBJECT, mapCapacity: 65536, log });
const empty = XdpRouter.load({ objectPath: EMPTY_OBJECT, log });
try {
  router.writeConfig(BASE_CONFIG);
  for (const b of BINDINGS) router.putChannel(b);
  // Test runs have no usable FIB: outputs go where the mirrored kernel
  // tables say (a default route per family, every destination resolved).
  installNextHops(router);
  for (const c of cases) {
    const got = testRun(router, c.frame).actionName;
    if (got !== c.expect) throw new Error(`${c.name}: expected ${c.expect}, got ${got}`);
  }

  // Show why repeat > 1 does not time a relay path.
  const before = router.readPathStats().find((p) => p.path === 'chan_to_udp_44')!.packets;
  testRun(router, cases[0]!.frame, { repeat: 1000 });
  const after = router.readPathStats().find((p) => p.path === 'chan_to_udp_44')!.packets;
  console.log(`one test run with repeat=1000 on a chan_to_udp_44 frame relayed ${after - before} packet(s); the rest saw the rewritten frame`);

  const emptySamples: { mean: number; p20: number }[] = [];
  const samples = cases.map(() => [] as { mean: number; p20: number }[]);
  for (let round = 0; round < ROUNDS; round++) {
    emptySamples.push(perCall(empty, cases[0]!.frame, CALLS));
    cases.forEach((c, i) => samples[i]!.push(perCall(router, c.frame, CALLS)));
  }
  const emptyNs = median(emptySamples.map((x) => x.mean));
  const emptyP20 = median(emptySamples.map((x) => x.p20));
  const emptyRepeat = testRun(empty, cases[0]!.frame, { repeat: REPEAT }).durationNs;

  // Per-run harness cost: what the empty program's single run takes beyond
  // its per-run time in a repeat loop (which still includes bh on/off).
  const overhead = emptyNs - emptyRepeat;
  const rows = cases.map((c, i) => {
    const ns = median(samples[i]!.map((x) => x.mean));
    const p20 = median(samples[i]!.map((x) => x.p20));
    const rep = c.repeatable ? testRun(router, c.frame, { repeat: REPEAT }).durationNs : undefined;
    const ratio = ns / emptyNs;
    return {
      path: c.name,
      'ns/run (repeat=1)': ns.toFixed(1),
      'above empty': (ns - emptyNs).toFixed(1),
      ratio: ratio.toFixed(2),
      '<= 2x': ratio <= 2 ? 'PASS' : `MISS by ${((ratio / 2 - 1) * 100).toFixed(0)}%`,
      'p20 above empty': (p20 - emptyP20).toFixed(1),
      'p20 ratio': (p20 / emptyP20).toFixed(2),
      [`ns/run (repeat=${REPEAT})`]: rep === undefined ? '-' : String(rep),
    };
  });
  console.log(`empty XDP program: ${emptyNs.toFixed(1)} ns per run with repeat=1 (median of ${ROUNDS} rounds x ${CALLS} runs; 20th percentile ${emptyP20.toFixed(1)} ns), ${emptyRepeat} ns per run with repeat=${REPEAT}`);
  console.log(`harness overhead per single run ~ ${overhead.toFixed(1)} ns (timer, bh on/off, dispatch; cold caches): ${(overhead / emptyNs * 100).toFixed(0)}% of the empty program's single-run time`);
  console.table(rows);
  const relay = rows.filter((r, i) => cases[i]!.expect === 'XDP_TX' && !cases[i]!.name.includes('1000 B'));
  const worst = Math.max(...relay.map((r) => Number(r.ratio)));
  console.log(`relay paths (100 B): ${relay.filter((r) => r['<= 2x'] === 'PASS').length}/${relay.length} within 2x; worst ${worst.toFixed(2)}x, ` +
    `i.e. the 2x target allows ${(emptyNs).toFixed(0)} ns above empty and the worst path is ${(worst * emptyNs - emptyNs).toFixed(0)} ns above`);
} finally {
  router.close();
  empty.close();
}
