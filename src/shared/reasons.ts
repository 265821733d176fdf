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
  { verdict: 'pass', reason: 'no_neigh', description: 'the next hop on this interface has no usable neighbour entry (tp_neigh) yet: the stack resolves it' },
  { verdict: 'pass', reason: 'no_route', description: "the FIB cannot answer (e.g. forwarding off) and tp_routes has no unicast route to the output's destination" },
  { verdict: 'drop', reason: 'v4_mapped', description: "IPv6 source to the relay, or a binding's IPv6 destination, in ::ffff:0:0/96: IPv4 in IPv6 form, never on the wire" },
  { verdict: 'pass', reason: 'other_interface', description: 'the output\'s route leaves by another interface than the frame came in on (XDP_TX cannot)' },
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

// ---- the relay's drop reasons ----------------------------------------------
// Keys of ServerStats.dropped and the `reason` attribute of
// turnpike.relay.dropped: stable short labels, changed only as an API.

/** Why the STUN codec drops a datagram without an answer (src/relay/stun/decode.ts). */
export const STUN_DROP_REASONS = {
  'not-stun': 'first two bits not 00, or shorter than a header',
  truncated: 'header length larger than the datagram',
  'trailing-bytes': "bytes after the message's declared length",
  'bad-length': 'length not a multiple of 4',
  'bad-cookie': 'magic cookie is not 0x2112A442',
  'bad-attribute-length': 'an attribute runs past the message end',
  'bad-fingerprint': 'FINGERPRINT present and wrong (or malformed)',
  'fingerprint-not-last': 'attributes follow FINGERPRINT',
  'unknown-attribute': 'an unknown comprehension-required attribute in an indication or response (a request gets 420)',
  'malformed-attribute': 'a malformed known attribute in an indication or response (a request gets 400)',
} as const;
export type StunDropReason = keyof typeof STUN_DROP_REASONS;

/** Why the ChannelData codec rejects a datagram (src/relay/stun/channel-data.ts); the server counts `channel-data-<reason>`. */
export const CHANNEL_DATA_DROP_REASONS = {
  'too-short': 'shorter than the 4-byte header',
  'not-channel-data': 'first two bits not 01',
  'bad-channel': 'channel number above the highest one allowed',
  truncated: 'length field larger than the datagram',
  'trailing-bytes': 'more than 3 bytes of padding after the payload',
} as const;
export type ChannelDataDropReason = keyof typeof CHANNEL_DATA_DROP_REASONS;

/** Why the TURN server drops a datagram (src/relay/server). */
export const SERVER_DROP_REASONS = {
  oversize: 'the datagram, or the one relaying it would send, exceeds the largest UDP payload',
  'bad-source': "source is not an IP address and port of the socket's family",
  'no-allocation': 'no allocation for this client 5-tuple, or none on this relayed port',
  'not-turn': 'neither STUN nor ChannelData',
  'unexpected-indication': 'an indication from a client other than Send or Binding',
  'unexpected-response': 'a STUN response from a client',
  'allocate-in-progress': 'an Allocate retransmitted while its relayed port is still being opened',
  'malformed-send': 'a Send indication without XOR-PEER-ADDRESS or DATA',
  'no-channel': 'ChannelData on a channel number the allocation has not bound',
  'peer-family': "the peer's family has no relayed address in the allocation, or differs from the port's",
  'no-permission': "no permission for the peer's address",
  'relay-itself': "a Send indication to the relay's own listen or allocation port (the permission is for its address)",
  'rate-limited': "an unauthenticated request (Binding, or one answered with 400, 401 or 420) over its source's budget",
  'rate-limited-authenticated': "an authenticated request (or one answered 438) over its source's budget",
  'rate-limited-overflow': "a request from a source the rate limiter's full table could not track, over the budget such sources share",
  'internal-error': 'the server threw while handling the datagram',
} as const;

export type RelayDropReason = StunDropReason | `channel-data-${ChannelDataDropReason}` | keyof typeof SERVER_DROP_REASONS;

// ---- the relay's refusals --------------------------------------------------
// Requests answered with an error because a configured limit was reached:
// keys of ServerStats.refused and the `reason` attribute of
// turnpike.relay.refused. "User" is the quota key a credential source names
// (CredentialSource.userOf): the user of a TURN REST `expiry:user`, the salt
// of a Firezone `expiry:salt`, a static user's name.

/** Which limit refused a request, with the code it was answered with (RFC 8656 §7.2, §9.2, §12.2). */
export const RELAY_REFUSALS = {
  'allocations-per-user': "an Allocate over its user's allocation quota, pending ones included (486)",
  'allocations-total': 'an Allocate while the relay holds its maximum of allocations (508)',
  'reservations-per-user': "an Allocate with EVEN-PORT R over its user's quota of reserved ports (486)",
  'reservations-total': 'an Allocate with EVEN-PORT R while the relay holds its maximum of reserved ports (508)',
  'peers-per-request': 'a CreatePermission with more XOR-PEER-ADDRESS attributes than one request may carry (508)',
  'permissions-per-allocation': 'a new permission beyond what one allocation may hold (508)',
  'channels-per-allocation': 'a new channel beyond what one allocation may bind (508)',
  'channels-per-user': 'a new channel beyond what one user may bind over all its allocations (508)',
} as const;
export type RelayRefusal = keyof typeof RELAY_REFUSALS;
