// The kernel program's counter and diagnostic names, mirrored from
// bpf/turn_router_shared.h (enum tp_path, tp_reason, tp_diag_kind; index =
// value). Telemetry labels metrics with them; the sidecar's ABI module checks
// them against the object's BTF.

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

/** Stable names in enum tp_reason order (index = value). */
export const REASON_NAMES = [
  'pass_not_configured',
  'pass_not_ip',
  'pass_vlan',
  'pass_not_udp',
  'pass_ip_options',
  'pass_fragment',
  'pass_ipv6_ext',
  'pass_not_relay_addr',
  'pass_not_relay_port',
  'pass_stun',
  'pass_bad_channel_data',
  'pass_no_binding',
  'pass_family_unavailable',
  'pass_too_big',
  'pass_truncated',
  'drop_adjust_head',
  'drop_adjust_tail',
  'drop_bounds',
  // appended after the first layout, so earlier numbers stay
  'pass_bad_checksum',
  'pass_no_headroom',
  'pass_no_neigh',
  'pass_not_learned',
] as const;
export type ReasonName = (typeof REASON_NAMES)[number];

export const TP_DIAG_DROP = 1;
export const TP_DIAG_MISCONFIG = 2;
export const DIAG_KIND_NAMES: Readonly<Record<number, string>> = { 1: 'drop', 2: 'misconfig' };

