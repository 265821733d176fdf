// What a fuzz target is, and what it reports. A target turns one Rng into
// one or more inputs for its parser (the stateful server counts every
// datagram, timer and port result of a sequence), checks its invariants and
// records what went wrong in Findings, with the input that did it.
import type { Rng } from './rng.ts';

export interface Finding {
  readonly kind: 'exception' | 'violation';
  /** Index of the input (the --replay argument that reproduces it). */
  readonly index: number;
  readonly message: string;
  /** The input (hex, or a readable script for sequences). */
  readonly input: string;
}

/** Counts every exception and violation; keeps the first few in full. */
export class Findings {
  exceptions = 0;
  violations = 0;
  readonly kept: Finding[] = [];
  /** The input being run, set by the runner. */
  index = 0;

  constructor(private readonly keep = 10) {}

  /** An exception thrown out of the code under test. */
  exception(err: unknown, input: () => string): void {
    this.exceptions++;
    const message = err instanceof Error ? `${err.name}: ${err.message}\n${err.stack?.split('\n').slice(1, 6).join('\n') ?? ''}` : String(err);
    this.#note('exception', message, input);
  }

  /** An invariant that did not hold. */
  violation(message: string, input: () => string): void {
    this.violations++;
    this.#note('violation', message, input);
  }

  get total(): number {
    return this.exceptions + this.violations;
  }

  #note(kind: Finding['kind'], message: string, input: () => string): void {
    if (this.kept.length < this.keep) this.kept.push({ kind, index: this.index, message, input: input() });
  }
}

/** A target opened for a run: one call per Rng, returning how many inputs it consumed. */
export interface TargetRun {
  one(rng: Rng, findings: Findings): number;
  /** Extra lines for the report (verdict counts, coverage of paths). */
  summary?(): string[];
  close(): void;
}

export interface FuzzTarget {
  readonly name: string;
  /** Why the target cannot run here (not root, object not built), or undefined. */
  unavailable?(): string | undefined;
  /** `corpus` is this target's directory of committed seed inputs. */
  open(corpus: string): TargetRun;
}

/** Counts by name: which paths a run took (verdicts, drop reasons, modes), for the summary lines. */
export class Tally {
  readonly #counts = new Map<string, number>();

  add(key: string, n = 1): void {
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + n);
  }

  addAll(counts: { readonly [key: string]: number | undefined }): void {
    for (const [k, v] of Object.entries(counts)) this.add(k, v ?? 0);
  }

  /** The `most` largest counts, largest first: "name n, name n". */
  toString(most = 40): string {
    return [...this.#counts].sort((a, b) => b[1] - a[1]).slice(0, most).map(([k, v]) => `${k} ${v}`).join(', ');
  }
}

/** Hex of bytes, for findings. */
export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
