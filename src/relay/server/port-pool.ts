// Relayed-port bookkeeping for one address family: which ports of the range
// are taken (open, being opened, or held by a reservation). Ports are chosen
// at random (RFC 8656 §7.2 wants relayed ports hard to guess) from an
// injected random source, so tests are deterministic.

export type RandomSource = (bytes: number) => Uint8Array;

/** A uniformly-enough random integer in [0, n) from the injected source. */
export function randomInt(random: RandomSource, n: number): number {
  if (n <= 1) return 0;
  const b = random(4);
  const v = (((b[0] ?? 0) << 24) | ((b[1] ?? 0) << 16) | ((b[2] ?? 0) << 8) | (b[3] ?? 0)) >>> 0;
  return v % n;
}

export interface PortRange {
  readonly min: number;
  readonly max: number;
}

/** Random probes before falling back to a linear scan (a nearly full range). */
const RANDOM_PROBES = 16;

export class PortPool {
  readonly #taken = new Set<number>();

  constructor(readonly range: PortRange) {}

  get used(): number {
    return this.#taken.size;
  }

  isTaken(port: number): boolean {
    return this.#taken.has(port);
  }

  take(port: number): void {
    this.#taken.add(port);
  }

  release(port: number): void {
    this.#taken.delete(port);
  }

  /**
   * Pick a free port (not taken). `even`: the port must be even; `pair`:
   * port+1 must be free and in range too (EVEN-PORT with the R bit).
   * Does not take it. undefined = nothing fits.
   */
  pick(random: RandomSource, opts: { even?: boolean; pair?: boolean } = {}): number | undefined {
    const { min, max } = this.range;
    const even = opts.even === true || opts.pair === true;
    const first = even ? min + (min & 1) : min;
    const step = even ? 2 : 1;
    if (first > max) return undefined;
    const count = Math.floor((max - first) / step) + 1;
    const fits = (p: number): boolean => !this.#taken.has(p) && (!opts.pair || (p + 1 <= max && !this.#taken.has(p + 1)));
    for (let i = 0; i < RANDOM_PROBES; i++) {
      const p = first + step * randomInt(random, count);
      if (fits(p)) return p;
    }
    const start = randomInt(random, count);
    for (let i = 0; i < count; i++) {
      const p = first + step * ((start + i) % count);
      if (fits(p)) return p;
    }
    return undefined;
  }
}
