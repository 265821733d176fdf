// Counts by key: the per-user bookkeeping behind the quotas. A key whose
// count falls to zero is forgotten, so the table holds only users that hold
// something.
export class Tally {
  readonly #counts = new Map<string, number>();

  of(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  add(key: string, n = 1): void {
    const v = this.of(key) + n;
    if (v > 0) this.#counts.set(key, v);
    else this.#counts.delete(key);
  }
}
