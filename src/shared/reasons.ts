// The kernel program's counter and diagnostic names, mirrored from
// bpf/turn_router_shared.h (enum tp_path, tp_reason with its verdict mask,
// tp_diag_kind; index = value), and the relay's drop reasons. Telemetry labels
// metrics with them; the sidecar's ABI module checks the kernel's against the
// compiled header's BTF.

/** Stable names in enum tp_path order (index = value). */
export const PATH_NAMES = [
  'chan_to_udp_44',
  'chan_to_udp_46',
  'chan_to_udp_64',
  'chan_to_udp_66',
  'udp_to_chan_44',
  'udp_to_chan_46',
  'udp_to_chan_64',
  'udp_to_chan_66',
  'chan_to_chan_44',
  'chan_to_chan_46',
  'chan_to_chan_64',
  'chan_to_chan_66',
] as const;
export type PathName = (typeof PATH_NAMES)[number];

export type Verdict = 'pass' | 'drop';

export interface KernelReason {
  /** What the frame's fate is: passed to the stack, or dropped. */
  readonly verdict: Verdict;
  /** The `reason` attribute of turnpike.xdp.passed/dropped. */
  readonly reason: string;
  readonly description?: string;
}

/**
 * enum tp_reason, in order (index = value), with each reason's verdict: the
 * one policy. The C program drops exactly the reasons set in
 * TP_DROP_REASONS_MASK, which the ABI test compares with these verdicts; the
 * C name is TP_<VERDICT>_<REASON>.
 */
export const KERNEL_REASONS = [
  { verdict: 'pass', reason: 'not_configured', description: 'config slot not written (flags == 0)' },
  { verdict: 'pass', reason: 'not_ip', description: 'not IPv4/IPv6 (ARP, ...)' },
  { verdict: 'pass', reason: 'vlan', description: '802.1Q/802.1ad tagged' },
  { verdict: 'pass', reason: 'not_udp' },
  { verdict: 'pass', reason: 'ip_options', description: 'IPv4 IHL > 5' },
  { verdict: 'pass', reason: 'fragment', description: 'IPv4 MF or offset, IPv6 fragment header' },
  { verdict: 'pass', reason: 'ipv6_ext', description: 'IPv6 extension header' },
  { verdict: 'pass', reason: 'not_relay_addr', description: "destination is not this relay's address" },
  { verdict: 'pass', reason: 'not_relay_port', description: 'destination port is neither listen nor allocation port' },
  { verdict: 'pass', reason: 'stun', description: 'STUN message (first two bits 00) or too short for ChannelData' },
  { verdict: 'pass', reason: 'bad_channel_data', description: 'ChannelData whose length does not match the datagram' },
  { verdict: 'pass', reason: 'no_binding', description: 'no installed binding: the relay decides' },
  { verdict: 'pass', reason: 'family_unavailable', description: 'output family has no configured relay address' },
  { verdict: 'pass', reason: 'too_big', description: 'the output would exceed the MTU' },
  { verdict: 'pass', reason: 'truncated', description: 'headers shorter than their lengths say' },
  { verdict: 'drop', reason: 'adjust_head', description: 'bpf_xdp_adjust_head failed after the rewrite began' },
  { verdict: 'drop', reason: 'adjust_tail', description: 'bpf_xdp_adjust_tail failed after the rewrite began' },
  { verdict: 'drop', reason: 'bounds', description: 'bounds check failed after the rewrite began' },
  // appended after the first layout, so earlier numbers stay
  { verdict: 'pass', reason: 'bad_checksum', description: 'IPv4 header checksum wrong, or IPv6 UDP checksum 0: the stack drops it' },
  { verdict: 'pass', reason: 'no_headroom', description: 'bpf_xdp_adjust_head refused before anything changed (driver headroom)' },
  { verdict: 'pass', reason: 'no_neigh', description: 'next hop on this interface has no neighbour entry yet: the stack resolves it' },
  { verdict: 'pass', reason: 'not_learned', description: "the FIB cannot answer (e.g. forwarding off) and tp_neigh has no MAC for the output's destination yet" },
] as const satisfies readonly KernelReason[];

type NameOf<R> = R extends { readonly verdict: infer V extends string; readonly reason: infer N extends string } ? `${V}_${N}` : never;
/** A kernel counter name: `pass_stun`, `drop_adjust_head`. */
export type ReasonName = NameOf<(typeof KERNEL_REASONS)[number]>;

export const reasonName = <R extends KernelReason>(r: R): NameOf<R> => `${r.verdict}_${r.reason}` as NameOf<R>;

/** Stable counter names in enum tp_reason order (index = value). */
export const REASON_NAMES: readonly ReasonName[] = KERNEL_REASONS.map(reasonName);

export const TP_DIAG_DROP = 1;
export const TP_DIAG_MISCONFIG = 2;
export const DIAG_KIND_NAMES: Readonly<Record<number, string>> = { 1: 'drop', 2: 'misconfig' };

