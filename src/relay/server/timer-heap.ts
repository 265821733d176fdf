// An indexed binary min-heap of deadlines. Each timed object (allocation,
// permission, channel, reservation, pending allocation) owns one Timer and
// moves it with schedule(); the heap tracks each timer's slot so moving or
// cancelling is O(log n) and nextDeadline() is O(1) — no scan over 10,000+
// allocations on every call.

export interface Timer<T> {
  /** Deadline in ms (server clock); meaningful only while scheduled. */
  at: number;
  readonly item: T;
  /** Slot in the heap array, -1 when not scheduled. */
  index: number;
}

export class TimerHeap<T> {
  readonly #heap: Timer<T>[] = [];

  get size(): number {
    return this.#heap.length;
  }

  /** A new, unscheduled timer for `item`. */
  static timer<T>(item: T): Timer<T> {
    return { at: 0, item, index: -1 };
  }

  /** Schedule or move `timer` to fire at `at`. */
  schedule(timer: Timer<T>, at: number): void {
    if (timer.index < 0) {
      timer.at = at;
      timer.index = this.#heap.length;
      this.#heap.push(timer);
      this.#up(timer.index);
      return;
    }
    const earlier = at < timer.at;
    timer.at = at;
    if (earlier) this.#up(timer.index);
    else this.#down(timer.index);
  }

  cancel(timer: Timer<T>): void {
    const i = timer.index;
    if (i < 0) return;
    const last = this.#heap.pop()!;
    timer.index = -1;
    if (last === timer) return;
    this.#heap[i] = last;
    last.index = i;
    this.#up(i);
    this.#down(last.index);
  }

  /** The earliest deadline, if any. */
  peek(): number | undefined {
    return this.#heap[0]?.at;
  }

  /** Remove and return the earliest timer whose deadline is <= now. */
  popDue(now: number): Timer<T> | undefined {
    const top = this.#heap[0];
    if (top === undefined || top.at > now) return undefined;
    this.cancel(top);
    return top;
  }

  #up(i: number): void {
    const h = this.#heap;
    const t = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (parent.at <= t.at) break;
      h[i] = parent;
      parent.index = i;
      i = p;
    }
    h[i] = t;
    t.index = i;
  }

  #down(i: number): void {
    const h = this.#heap;
    const n = h.length;
    const t = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]!.at < h[l]!.at ? r : l;
      const child = h[c]!;
      if (child.at >= t.at) break;
      h[i] = child;
      child.index = i;
      i = c;
    }
    h[i] = t;
    t.index = i;
  }
}
