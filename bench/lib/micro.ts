// Median ns per call of a hot function: warm the JIT, then time `rounds`
// loops of `iter` calls with hrtime and keep the median (robust to a noisy
// shared machine). Shared by the micro-benchmarks.
export function medianNsPerOp(fn: () => void, opts: { iter: number; rounds: number; warmup: number }): number {
  for (let i = 0; i < Math.min(opts.iter, opts.warmup); i++) fn();
  const samples: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < opts.iter; i++) fn();
    samples.push(Number(process.hrtime.bigint() - t0) / opts.iter);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(opts.rounds / 2)]!;
}
