// Allocate requests waiting for the data plane to open their relayed ports
// (RFC 8656 §7.2 answers only once the relayed transport address exists).
// The server decides whether an Allocate may proceed; this module holds it
// from then until it completes or fails, and keeps the port pools, the
// open-port / close-port outputs and its deadline consistent meanwhile.
//
// Rules:
// - start() takes one port per family (with EVEN-PORT R, port+1 too) and puts
//   every slot in `opening`: an open-port output with a token no other open
//   in flight has. If a family has no free port, nothing stays taken and the
//   Allocate never becomes pending.
// - A slot answered ok is `opened`; when every slot is opened the Allocate is
//   complete: it leaves this module with its ports still taken (now the
//   allocation's) and the server records it and answers.
// - A slot answered not-ok frees its ports and, unless the port came from a
//   RESERVATION-TOKEN (fixed, nothing else to try) or it has used
//   `portAttempts`, goes back to `opening` with another port and a new token.
//   Otherwise the whole Allocate fails.
// - Each Allocate has one deadline, `portOpenTimeout` after start(); retries
//   do not move it. Reaching it fails the Allocate.
// - Failing frees every slot's ports and closes each one still held (an open
//   in flight may yet succeed; closing covers both outcomes); the server then
//   answers 508. An answer for a token no longer known (the Allocate already
//   settled) is ignored.
// - Pending Allocates count against the allocation limits (size, countOf).
//
// The deadlines sit in a TimerHeap of their own, not in RelayState's:
// portLost() runs the tables' expiry and must not settle Allocates, and
// handleTimeout() expires the tables before any pending Allocate, an output
// order one shared heap (ordered by deadline) would not keep.
import type { Logger } from 'pino';
import type { Family, Output } from './types.ts';
import type { PortPool, RandomSource } from './port-pool.ts';
import { TimerHeap, type Timer } from './timer-heap.ts';

/** One relayed port being opened: one per family of the Allocate. */
export interface PendingPort {
  readonly family: Family;
  /** -1 once given up (freed, nothing to close). */
  readonly port: number;
  /** The second port held for EVEN-PORT with the R bit. */
  readonly pairPort: number | undefined;
  readonly attempts: number;
  readonly opened: boolean;
  /** The open-port in flight for this slot. */
  readonly token: number;
}

interface Slot extends PendingPort {
  port: number;
  pairPort: number | undefined;
  attempts: number;
  opened: boolean;
  token: number;
}

export interface PendingAllocation<T> {
  readonly fiveTuple: string;
  readonly username: string;
  readonly even: boolean;
  readonly reserve: boolean;
  /** Fixed port from a RESERVATION-TOKEN: no retry with another port. */
  readonly fromReservation: boolean;
  readonly ports: readonly PendingPort[];
  /** What the server needs to answer the request once it settles. */
  readonly context: T;
}

export interface PendingStart<T> {
  readonly fiveTuple: string;
  readonly username: string;
  readonly families: readonly Family[];
  /** The reserved port (already taken) a RESERVATION-TOKEN names; families then has its one family. */
  readonly reservedPort?: number;
  readonly even: boolean;
  readonly reserve: boolean;
  readonly context: T;
}

/** How an Allocate left this module. */
export type Settled<T> = { readonly outcome: 'complete' | 'failed'; readonly pending: PendingAllocation<T> };

export interface PendingAllocationsOptions {
  readonly pools: Readonly<Record<Family, PortPool>>;
  readonly random: RandomSource;
  /** Opens tried per slot before the Allocate fails. */
  readonly portAttempts: number;
  /** ms from start() to failure when some port is still not open. */
  readonly portOpenTimeout: number;
  readonly emit: (out: Output) => void;
  readonly logger?: Logger | undefined;
}

interface Entry<T> extends PendingAllocation<T> {
  readonly ports: Slot[];
  readonly timer: Timer<Entry<T>>;
}

const TOKEN_MAX = 0x7fffffff;

export class PendingAllocations<T> {
  readonly #o: PendingAllocationsOptions;
  readonly #byFiveTuple = new Map<string, Entry<T>>();
  readonly #byToken = new Map<number, { readonly entry: Entry<T>; readonly slot: Slot }>();
  readonly #perUser = new Map<string, number>();
  readonly #heap = new TimerHeap<Entry<T>>();
  #nextToken = 1;

  constructor(opts: PendingAllocationsOptions) {
    this.#o = opts;
  }

  /** Allocates pending in all. */
  get size(): number {
    return this.#byFiveTuple.size;
  }

  /** Allocates of `username` pending. */
  countOf(username: string): number {
    return this.#perUser.get(username) ?? 0;
  }

  /** The Allocate pending on this 5-tuple, if any. */
  of(fiveTuple: string): PendingAllocation<T> | undefined {
    return this.#byFiveTuple.get(fiveTuple);
  }

  nextDeadline(): number | undefined {
    return this.#heap.peek();
  }

  /** Take the ports and ask for them to be opened; undefined when a family has no free port. */
  start(s: PendingStart<T>, now: number): PendingAllocation<T> | undefined {
    const ports: Slot[] = [];
    for (const family of s.families) {
      if (s.reservedPort !== undefined) {
        ports.push(slot(family, s.reservedPort, undefined));
        continue;
      }
      const port = this.#takePort(family, s.even, s.reserve);
      if (port === undefined) {
        for (const p of ports) this.#release(p);
        this.#o.logger?.warn({ family }, 'no free relay port');
        return undefined;
      }
      ports.push(slot(family, port, s.reserve ? port + 1 : undefined));
    }
    const entry: Entry<T> = {
      fiveTuple: s.fiveTuple,
      username: s.username,
      even: s.even,
      reserve: s.reserve,
      fromReservation: s.reservedPort !== undefined,
      ports,
      context: s.context,
      timer: undefined as unknown as Timer<Entry<T>>,
    };
    (entry as { timer: Timer<Entry<T>> }).timer = TimerHeap.timer(entry);
    this.#byFiveTuple.set(entry.fiveTuple, entry);
    this.#perUser.set(entry.username, this.countOf(entry.username) + 1);
    this.#heap.schedule(entry.timer, now + this.#o.portOpenTimeout);
    for (const p of ports) this.#open(entry, p);
    return entry;
  }

  /** The transport's answer for `token`: undefined while the Allocate still waits (or the token is unknown). */
  portOpened(token: number, ok: boolean): Settled<T> | undefined {
    const open = this.#byToken.get(token);
    if (open === undefined) return undefined;
    this.#byToken.delete(token);
    const { entry, slot: p } = open;
    if (ok) {
      p.opened = true;
      if (!entry.ports.every((q) => q.opened)) return undefined;
      this.#forget(entry);
      return { outcome: 'complete', pending: entry };
    }
    this.#release(p);
    if (entry.fromReservation || p.attempts >= this.#o.portAttempts) {
      this.#o.logger?.warn({ family: p.family, attempts: p.attempts }, 'could not open a relay port');
      return this.#fail(entry, p);
    }
    const port = this.#takePort(p.family, entry.even, entry.reserve);
    if (port === undefined) return this.#fail(entry, p);
    p.port = port;
    p.pairPort = entry.reserve ? port + 1 : undefined;
    p.attempts++;
    this.#open(entry, p);
    return undefined;
  }

  /** Give up the Allocate pending on this 5-tuple (its connection closed): ports freed and closed, nothing answered. */
  cancel(fiveTuple: string): void {
    const entry = this.#byFiveTuple.get(fiveTuple);
    if (entry !== undefined) this.#fail(entry, undefined);
  }

  /** The next Allocate whose deadline is due at `now`, failed; undefined when none is. */
  popExpired(now: number): PendingAllocation<T> | undefined {
    const t = this.#heap.popDue(now);
    if (t === undefined) return undefined;
    this.#fail(t.item, undefined);
    return t.item;
  }

  #takePort(family: Family, even: boolean, reserve: boolean): number | undefined {
    const pool = this.#o.pools[family];
    const port = pool.pick(this.#o.random, { even, pair: reserve });
    if (port === undefined) return undefined;
    pool.take(port);
    if (reserve) pool.take(port + 1);
    return port;
  }

  #release(p: Slot): void {
    const pool = this.#o.pools[p.family];
    if (p.port >= 0) pool.release(p.port);
    if (p.pairPort !== undefined) pool.release(p.pairPort);
  }

  #open(entry: Entry<T>, p: Slot): void {
    p.token = this.#nextToken++;
    if (this.#nextToken > TOKEN_MAX) this.#nextToken = 1;
    this.#byToken.set(p.token, { entry, slot: p });
    this.#o.emit({ kind: 'open-port', token: p.token, family: p.family, port: p.port });
  }

  /** Fail the Allocate; `given` is a slot whose ports were already freed. */
  #fail(entry: Entry<T>, given: Slot | undefined): Settled<T> {
    if (given !== undefined) {
      given.port = -1;
      given.pairPort = undefined;
    }
    this.#forget(entry);
    for (const p of entry.ports) {
      if (p.port < 0) continue;
      this.#release(p);
      this.#o.emit({ kind: 'close-port', family: p.family, port: p.port });
    }
    return { outcome: 'failed', pending: entry };
  }

  #forget(entry: Entry<T>): void {
    this.#byFiveTuple.delete(entry.fiveTuple);
    this.#heap.cancel(entry.timer);
    for (const p of entry.ports) this.#byToken.delete(p.token);
    const n = this.countOf(entry.username) - 1;
    if (n > 0) this.#perUser.set(entry.username, n);
    else this.#perUser.delete(entry.username);
  }
}

function slot(family: Family, port: number, pairPort: number | undefined): Slot {
  return { family, port, pairPort, attempts: 1, opened: false, token: 0 };
}
