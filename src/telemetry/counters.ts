// Pure helpers turning cumulative counter snapshots (kernel per-CPU sums, the
// relay's ServerStats, link stats) into monotonic totals and low-cardinality
// metric attributes. No OTel here, so the arithmetic is testable on its own.
import { DIAG_KIND_NAMES, KERNEL_REASONS, PATH_NAMES, REASON_NAMES, reasonName, type KernelReason, type Verdict } from '../shared/reasons.ts';

/**
 * Turns a stream of cumulative snapshots per series into a monotonic total.
 * A value below the previous one means the source restarted (relay process,
 * reloaded BPF maps): the new value counts from zero, so nothing is counted
 * twice and nothing already counted is lost.
 */
export class CumulativeAccumulator {
  private readonly last = new Map<string, number>();
  private readonly total = new Map<string, number>();

  /** Records a snapshot value for `key`; returns the delta added. No value (an absent optional counter) records nothing. */
  observe(key: string, value: number | undefined): number {
    if (value === undefined) return 0;
    if (!Number.isFinite(value) || value < 0) return 0;
    const prev = this.last.get(key);
    const delta = prev === undefined || value < prev ? value : value - prev;
    this.last.set(key, value);
    this.total.set(key, (this.total.get(key) ?? 0) + delta);
    return delta;
  }

  /** The next snapshot of every series under `prefix` counts from zero (source known to have restarted). */
  reset(prefix = ''): void {
    for (const k of [...this.last.keys()]) if (k.startsWith(prefix)) this.last.delete(k);
  }

  get(key: string): number {
    return this.total.get(key) ?? 0;
  }

  entries(prefix = ''): [string, number][] {
    return [...this.total].filter(([k]) => k.startsWith(prefix));
  }
}

export type Direction = 'to_peer' | 'to_client' | 'channel_to_channel';
export type FamilyLabel = 'ipv4' | 'ipv6';

export interface PathAttributes {
  direction: Direction;
  /** Family of the output packet. */
  family: FamilyLabel;
}

/**
 * Kernel path names (enum tp_path in bpf/turn_router_shared.h, lower-cased
 * without TP_PATH_): `chan_to_udp_46` = ChannelData in over IPv4, UDP out
 * over IPv6. Returns undefined for names this version does not know.
 */
export function pathAttributes(name: string): PathAttributes | undefined {
  const m = /^(chan_to_udp|udp_to_chan|chan_to_chan)_([46])([46])$/.exec(name);
  if (!m) return undefined;
  const direction: Direction = m[1] === 'chan_to_udp' ? 'to_peer' : m[1] === 'udp_to_chan' ? 'to_client' : 'channel_to_channel';
  return { direction, family: m[3] === '4' ? 'ipv4' : 'ipv6' };
}

const KERNEL_REASON_BY_NAME: ReadonlyMap<string, KernelReason> = new Map(KERNEL_REASONS.map((r) => [reasonName(r), r]));

/**
 * A kernel reason's verdict and `reason` attribute, from the reasons table
 * (the verdict the program applies): `pass_stun` -> { verdict: 'pass',
 * reason: 'stun' }. Undefined for names the table does not have.
 */
export function reasonAttributes(name: string): { verdict: Verdict; reason: string } | undefined {
  const r = KERNEL_REASON_BY_NAME.get(name);
  return r && { verdict: r.verdict, reason: r.reason };
}

/** Index -> name tables of enum tp_path / tp_reason / tp_diag_kind, for readers that hand over indices (the one mirror lives in abi.ts). */
export const KERNEL_PATH_NAMES: readonly string[] = PATH_NAMES;
export const KERNEL_REASON_NAMES: readonly string[] = REASON_NAMES;
export const KERNEL_DIAG_KIND_NAMES: Readonly<Record<number, string>> = DIAG_KIND_NAMES;

/** `allocate:401` -> { method: 'allocate', code: '401' }. */
export function responseAttributes(key: string): { method: string; code: string } {
  const i = key.lastIndexOf(':');
  return i < 0 ? { method: key, code: 'unknown' } : { method: key.slice(0, i), code: key.slice(i + 1) };
}

/**
 * Caps the distinct values one attribute may take, so a source that sends
 * unexpected keys (a bug, a newer relay) cannot grow metric memory without
 * bound: values beyond the cap are folded into `other`.
 */
export class LabelCap {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}
  label(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.max) return 'other';
    this.seen.add(value);
    return value;
  }
}

/** Numbers or bigints (u64 sums from the kernel) -> number. */
export const toNumber = (v: number | bigint): number => (typeof v === 'bigint' ? Number(v) : v);
