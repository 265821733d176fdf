// Runs targets and reports: inputs, exceptions escaped, invariant
// violations, rate and memory at the end, one row per target.
import { join } from 'node:path';
import { CORPUS_ROOT } from './corpus.ts';
import { Rng } from './rng.ts';
import { Findings, type Finding, type FuzzTarget } from './target.ts';

export interface RunOptions {
  /** Inputs per target (a sequence's last step may carry it a little past). */
  readonly inputs: number;
  readonly seed: number;
  /** Run only this input index (and print it in full). */
  readonly replay?: number;
  /** Called now and then with the inputs done so far. */
  readonly progress?: (done: number) => void;
}

export interface TargetResult {
  readonly target: string;
  /** Why it did not run, when it did not. */
  readonly skipped?: string;
  readonly inputs: number;
  readonly exceptions: number;
  readonly violations: number;
  readonly seconds: number;
  readonly heapMB: number;
  readonly rssMB: number;
  readonly findings: readonly Finding[];
  readonly summary: readonly string[];
}

const MB = 1024 * 1024;

/** Heap after a full collection when node runs with --expose-gc (what the run kept, not its garbage). */
function memory(): { heapMB: number; rssMB: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { heapMB: m.heapUsed / MB, rssMB: m.rss / MB };
}

export function runTarget(target: FuzzTarget, opts: RunOptions): TargetResult {
  const skipped = target.unavailable?.();
  if (skipped !== undefined) {
    return { target: target.name, skipped, inputs: 0, exceptions: 0, violations: 0, seconds: 0, ...memory(), findings: [], summary: [] };
  }
  const run = target.open(join(CORPUS_ROOT, target.name));
  const findings = new Findings();
  const started = process.hrtime.bigint();
  let inputs = 0;
  try {
    if (opts.replay !== undefined) {
      findings.index = opts.replay;
      inputs = run.one(Rng.forInput(opts.seed, target.name, opts.replay), findings);
    } else {
      let nextProgress = 100_000;
      for (let i = 0; inputs < opts.inputs; i++) {
        findings.index = i;
        inputs += run.one(Rng.forInput(opts.seed, target.name, i), findings);
        if (inputs >= nextProgress) {
          opts.progress?.(inputs);
          nextProgress += 100_000;
        }
      }
    }
  } catch (err) {
    run.close();
    throw err;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const summary = run.summary?.() ?? [];
  run.close();
  return {
    target: target.name,
    inputs,
    exceptions: findings.exceptions,
    violations: findings.violations,
    seconds,
    ...memory(),
    findings: findings.kept,
    summary,
  };
}

export function failed(results: readonly TargetResult[]): boolean {
  return results.some((r) => r.exceptions + r.violations > 0);
}

/** The results as a Markdown table (the README's form). */
export function table(results: readonly TargetResult[]): string {
  const rows = [
    '| target | inputs | exceptions escaped | invariant violations | inputs/s | heap MB at end | rss MB at end |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    if (r.skipped !== undefined) {
      rows.push(`| ${r.target} | skipped: ${r.skipped} | | | | | |`);
      continue;
    }
    const rate = r.seconds > 0 ? Math.round(r.inputs / r.seconds) : 0;
    rows.push(`| ${r.target} | ${r.inputs.toLocaleString('en-US')} | ${r.exceptions} | ${r.violations} | ${rate.toLocaleString('en-US')} | ${r.heapMB.toFixed(1)} | ${r.rssMB.toFixed(0)} |`);
  }
  return rows.join('\n');
}

/** The kept findings, each with the command that replays it. */
export function describeFindings(r: TargetResult, seed: number): string {
  return r.findings
    .map((f) => `[${r.target} #${f.index}] ${f.kind}: ${f.message}\n  replay: npm run fuzz -- --targets ${r.target} --seed ${seed} --replay ${f.index}\n  input: ${f.input}`)
    .join('\n\n');
}
