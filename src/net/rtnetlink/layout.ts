// The rtnetlink structs (linux/netlink.h, linux/rtnetlink.h,
// linux/neighbour.h, linux/if_link.h, linux/fib_rules.h) declared once as
// koffi types: every size and offset the codec reads or writes comes from
// these declarations (koffi lays them out by the platform C ABI), none from
// literals. The constants are the kernel's UAPI values.
import koffi, { type TypeObject } from 'koffi';

// Anonymous types: koffi's names are process-wide.
const nlmsghdr = koffi.struct({ nlmsg_len: 'uint32_t', nlmsg_type: 'uint16_t', nlmsg_flags: 'uint16_t', nlmsg_seq: 'uint32_t', nlmsg_pid: 'uint32_t' });
const nlmsgerr = koffi.struct({ error: 'int32_t', msg: nlmsghdr });
const rtattr = koffi.struct({ rta_len: 'uint16_t', rta_type: 'uint16_t' });
const sockaddrNl = koffi.struct({ nl_family: 'uint16_t', nl_pad: 'uint16_t', nl_pid: 'uint32_t', nl_groups: 'uint32_t' });
const rtmsg = koffi.struct({
  rtm_family: 'uint8_t',
  rtm_dst_len: 'uint8_t',
  rtm_src_len: 'uint8_t',
  rtm_tos: 'uint8_t',
  rtm_table: 'uint8_t',
  rtm_protocol: 'uint8_t',
  rtm_scope: 'uint8_t',
  rtm_type: 'uint8_t',
  rtm_flags: 'uint32_t',
});
const rtnexthop = koffi.struct({ rtnh_len: 'uint16_t', rtnh_flags: 'uint8_t', rtnh_hops: 'uint8_t', rtnh_ifindex: 'int32_t' });
const ndmsg = koffi.struct({
  ndm_family: 'uint8_t',
  ndm_pad1: 'uint8_t',
  ndm_pad2: 'uint16_t',
  ndm_ifindex: 'int32_t',
  ndm_state: 'uint16_t',
  ndm_flags: 'uint8_t',
  ndm_type: 'uint8_t',
});
const ifinfomsg = koffi.struct({ ifi_family: 'uint8_t', ifi_pad: 'uint8_t', ifi_type: 'uint16_t', ifi_index: 'int32_t', ifi_flags: 'uint32_t', ifi_change: 'uint32_t' });
const ifaddrmsg = koffi.struct({ ifa_family: 'uint8_t', ifa_prefixlen: 'uint8_t', ifa_flags: 'uint8_t', ifa_scope: 'uint8_t', ifa_index: 'uint32_t' });
const fibRuleHdr = koffi.struct({
  family: 'uint8_t',
  dst_len: 'uint8_t',
  src_len: 'uint8_t',
  tos: 'uint8_t',
  table: 'uint8_t',
  res1: 'uint8_t',
  res2: 'uint8_t',
  action: 'uint8_t',
  flags: 'uint32_t',
});

const at = (t: TypeObject, field: string) => koffi.offsetof(t, field);

/** Sizes and offsets, read once from the declarations above. */
export const L = Object.freeze({
  nlmsghdr: { size: koffi.sizeof(nlmsghdr), len: at(nlmsghdr, 'nlmsg_len'), type: at(nlmsghdr, 'nlmsg_type'), flags: at(nlmsghdr, 'nlmsg_flags'), seq: at(nlmsghdr, 'nlmsg_seq'), pid: at(nlmsghdr, 'nlmsg_pid') },
  nlmsgerr: { size: koffi.sizeof(nlmsgerr), error: at(nlmsgerr, 'error') },
  rtattr: { size: koffi.sizeof(rtattr), len: at(rtattr, 'rta_len'), type: at(rtattr, 'rta_type') },
  sockaddrNl: { size: koffi.sizeof(sockaddrNl), family: at(sockaddrNl, 'nl_family'), pid: at(sockaddrNl, 'nl_pid'), groups: at(sockaddrNl, 'nl_groups') },
  rtmsg: {
    size: koffi.sizeof(rtmsg),
    family: at(rtmsg, 'rtm_family'),
    dstLen: at(rtmsg, 'rtm_dst_len'),
    tos: at(rtmsg, 'rtm_tos'),
    table: at(rtmsg, 'rtm_table'),
    scope: at(rtmsg, 'rtm_scope'),
    type: at(rtmsg, 'rtm_type'),
    flags: at(rtmsg, 'rtm_flags'),
  },
  rtnexthop: { size: koffi.sizeof(rtnexthop), len: at(rtnexthop, 'rtnh_len'), flags: at(rtnexthop, 'rtnh_flags'), ifindex: at(rtnexthop, 'rtnh_ifindex') },
  ndmsg: { size: koffi.sizeof(ndmsg), family: at(ndmsg, 'ndm_family'), ifindex: at(ndmsg, 'ndm_ifindex'), state: at(ndmsg, 'ndm_state'), flags: at(ndmsg, 'ndm_flags') },
  ifinfomsg: { size: koffi.sizeof(ifinfomsg), family: at(ifinfomsg, 'ifi_family'), type: at(ifinfomsg, 'ifi_type'), index: at(ifinfomsg, 'ifi_index'), flags: at(ifinfomsg, 'ifi_flags') },
  ifaddrmsg: { size: koffi.sizeof(ifaddrmsg), family: at(ifaddrmsg, 'ifa_family'), prefixlen: at(ifaddrmsg, 'ifa_prefixlen'), index: at(ifaddrmsg, 'ifa_index') },
  fibRuleHdr: { size: koffi.sizeof(fibRuleHdr), family: at(fibRuleHdr, 'family'), table: at(fibRuleHdr, 'table'), action: at(fibRuleHdr, 'action') },
});

/** Netlink messages and attributes are aligned to 4 bytes (NLMSG_ALIGN, RTA_ALIGN). */
export const align4 = (n: number) => (n + 3) & ~3;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const NETLINK_ROUTE = 0;

export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;
export const NLM_F = { REQUEST: 0x1, MULTI: 0x2, ACK: 0x4, DUMP_INTR: 0x10, DUMP: 0x300, REPLACE: 0x100, CREATE: 0x400 } as const;

export const RTM = {
  NEWLINK: 16, DELLINK: 17, GETLINK: 18,
  NEWADDR: 20, DELADDR: 21, GETADDR: 22,
  NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26,
  NEWNEIGH: 28, DELNEIGH: 29, GETNEIGH: 30,
  NEWRULE: 32, DELRULE: 33, GETRULE: 34,
} as const;

/** Multicast groups (RTNLGRP_* numbers; a socket joins group n with bit 1 << (n - 1) of nl_groups). */
export const RTNLGRP = { LINK: 1, NEIGH: 3, IPV4_IFADDR: 5, IPV4_ROUTE: 7, IPV4_RULE: 8, IPV6_IFADDR: 9, IPV6_ROUTE: 11, IPV6_RULE: 19 } as const;

export const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, METRICS: 8, MULTIPATH: 9, TABLE: 15, VIA: 18, NH_ID: 30 } as const;
export const RTAX_MTU = 2;
export const RTN = { UNICAST: 1, LOCAL: 2, BROADCAST: 3, ANYCAST: 4, MULTICAST: 5, BLACKHOLE: 6, UNREACHABLE: 7, PROHIBIT: 8, THROW: 9 } as const;
export const RT_TABLE = { DEFAULT: 253, MAIN: 254, LOCAL: 255 } as const;
/** rtm_flags of a route cache clone (IPv6 dumps may carry them): not a route of the table. */
export const RTM_F_CLONED = 0x200;
export const RTNH_F = { DEAD: 0x1, LINKDOWN: 0x10 } as const;

export const NDA = { DST: 1, LLADDR: 2 } as const;
export const NUD = { NONE: 0, INCOMPLETE: 0x1, REACHABLE: 0x2, STALE: 0x4, DELAY: 0x8, PROBE: 0x10, FAILED: 0x20, NOARP: 0x40, PERMANENT: 0x80 } as const;
/** States whose link-layer address the kernel itself sends to (NUD_VALID). */
export const NUD_VALID = NUD.PERMANENT | NUD.NOARP | NUD.REACHABLE | NUD.PROBE | NUD.STALE | NUD.DELAY;
export const NTF = { USE: 0x1, PROXY: 0x8 } as const;

export const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4 } as const;
export const IFA = { ADDRESS: 1, LOCAL: 2 } as const;
export const ARPHRD_ETHER = 1;
export const IFF_UP = 0x1;
export const IFF_LOWER_UP = 0x10000;

export const FRA = { PRIORITY: 6, TABLE: 15 } as const;
export const FR_ACT_TO_TBL = 1;
