// Single BPF_PROG_TEST_RUN runs of a program, each right after a single run
// of a baseline program on the same frame (both see the same load), reduced
// to a low band: shared by bench/xdp.bench.ts and bench/xdp-pages.bench.ts.
import type { XdpRouter } from '../../src/sidecar/bpf/router.ts';
import { preparedTestRun, testRun } from '../../test/helpers/bpf-test-run.ts';

/** Mean of the lowest 40 %: a low percentile band. The kernel's durations
 * come in steps of ~10 ns here, so one percentile alone cannot tell
 * programs apart by less than a step; the band's mean can. */
export const low = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b).slice(0, Math.max(1, Math.floor(xs.length * 0.4)));
  return s.reduce((a, b) => a + b, 0) / s.length;
};

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A timed single run. Prepared (default): set up once per frame, so the
 * harness touches little memory between runs; alloc uses testRun(), which
 * allocates and converts per call (the bench's first method), to compare. */
type Timer = { run(): number; close(): void };
function timer(r: XdpRouter, frame: Uint8Array, alloc: boolean): Timer {
  return alloc ? { run: () => testRun(r, frame).durationNs, close: () => {} } : preparedTestRun(r, frame);
}

/** One round: n single runs of r, each right after a single run of base on
 * the same frame. Returns both low bands. */
export function pairedRound(base: XdpRouter, r: XdpRouter, frame: Uint8Array, n: number, alloc = false): { empty: number; path: number } {
  const e = timer(base, frame, alloc);
  const p = timer(r, frame, alloc);
  const es: number[] = [];
  const ps: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      es.push(e.run());
      ps.push(p.run());
    }
  } finally {
    e.close();
    p.close();
  }
  return { empty: low(es), path: low(ps) };
}
