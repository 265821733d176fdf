/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The contract between the XDP program (bpf/turn_router.c) and the sidecar
 * (src/sidecar/bpf/abi.ts mirrors every struct here; test/bpf/abi.test.ts
 * proves sizes and offsets agree by reading this object's BTF).
 *
 * Byte order is stated beside every multi-byte field. Addresses and ports
 * are kept in network byte order so the program compares them to packet
 * bytes without conversion; the few host-order fields are counts and flags.
 *
 * Addresses of either family are stored as 16 bytes: IPv6 as is, IPv4 as an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d), so one map serves both families.
 * Every struct that holds an address also holds its family (enum tp_family),
 * and in a key the family is part of what is hashed: an IPv6 address in
 * ::ffff:0:0/96 is not the IPv4 address it looks like, so it can never reach
 * an entry of an IPv4 binding (another tenant's) through these maps. The
 * padding after the family is zero; keys are hashed over every byte.
 */
#ifndef TURN_ROUTER_SHARED_H
#define TURN_ROUTER_SHARED_H

#include <linux/types.h>

/* ---- configuration: array map "tp_config", one slot (index 0) ---------- */

#define TP_CFG_HAVE_V4 (1u << 0) /* relay_v4 is set: IPv4 may be relayed */
#define TP_CFG_HAVE_V6 (1u << 1) /* relay_v6 is set: IPv6 may be relayed */

struct tp_config {
	__u32 flags;          /* host order: TP_CFG_* bits; 0 = not configured, pass all */
	__u16 mtu;            /* host order: max IP packet length an output may have */
	__be16 listen_port;   /* network order: TURN listen port */
	__be16 port_min;      /* network order: first allocation port (inclusive) */
	__be16 port_max;      /* network order: last allocation port (inclusive) */
	__u32 diag_per_sec;   /* host order: perf diagnostics allowed per second per CPU */
	__u8 relay_v4[4];     /* network order: this relay's IPv4 address */
	__u8 relay_v6[16];    /* network order: this relay's IPv6 address */
};

/* ---- address families -------------------------------------------------- */

/* The IP version number: 4 (address stored IPv4-mapped) or 6. */
enum tp_family {
	TP_FAMILY_V4 = 4,
	TP_FAMILY_V6 = 6,
};

/* ---- bindings ---------------------------------------------------------
 * One binding (a channel) is one slot of the array "tp_bindings"; two
 * directories find it: "tp_chan_to_peer" by what a client sends (its
 * transport address and the channel: struct tp_chan_key) and
 * "tp_peer_to_chan" by what a peer sends (its transport address and the
 * allocation port: struct tp_peer_key). All three are arrays, so every
 * lookup the program makes is one the verifier inlines: no call into the
 * kernel's hash table on the per-packet path.
 *
 * A directory is a table of buckets; a key may sit in either of two
 * buckets, chosen by a hash keyed with the random seed in "tp_bind_meta"
 * (so nobody outside can aim bindings at one bucket), and the program
 * compares the whole key in the slot before using it.
 *
 * The sidecar is the only writer, through memory-mapped views of the three
 * arrays. A slot of tp_bindings is written in full before a directory
 * names it (a 4-byte store), and is never changed while named: a change
 * is a new slot, named in place of the old one. A slot no directory names
 * any more is reused only after every program run that may still read it
 * has ended (an RCU grace period, src/sidecar/bpf/bindings.ts). */

/* Key of the channel direction: the client's transport address and the
 * channel number it sent. */
struct tp_chan_key {
	__u8 client_addr[16]; /* network order, IPv4-mapped for IPv4 */
	__be16 client_port;   /* network order */
	__be16 channel;       /* network order: 0x4000-0x7FFF (RFC 8656 binds up to 0x4FFF, RFC 5766 clients up to 0x7FFF) */
	__u8 client_family;  /* enum tp_family of client_addr */
	__u8 pad[3];          /* zero */
};

/* What the channel direction relays to. Its first 24 bytes are the peer
 * direction's key (struct tp_peer_key). */
struct tp_chan_value {
	__u8 peer_addr[16];   /* network order, IPv4-mapped for IPv4 */
	__be16 peer_port;     /* network order */
	__be16 alloc_port;    /* network order: the allocation's relayed port in the peer's family */
	__u8 peer_family;    /* enum tp_family of peer_addr */
	__u8 pad[3];          /* zero */
	/* When the peer is another allocation of this relay (its address and an
	 * allocation port) whose channel to this allocation is bound too: that
	 * channel's client, so channel -> channel takes one lookup. Written and
	 * cleared by the sidecar with the partner's binding; all zero (channel
	 * 0, never a valid one) when there is none. */
	__u8 partner_addr[16];   /* network order, IPv4-mapped for IPv4 */
	__be16 partner_port;     /* network order */
	__be16 partner_channel;  /* network order; 0: no partner */
	__u8 partner_family;     /* enum tp_family of partner_addr */
	__u8 pad2[3];            /* zero */
};

/* Key of the peer direction: the peer's transport address and the
 * allocation port it sent to (the relayed address's family is the peer's). */
struct tp_peer_key {
	__u8 peer_addr[16];   /* network order, IPv4-mapped for IPv4 */
	__be16 peer_port;     /* network order */
	__be16 alloc_port;    /* network order */
	__u8 peer_family;    /* enum tp_family of peer_addr (and of alloc_port) */
	__u8 pad[3];          /* zero */
};

/* What the peer direction relays to; the same bytes as struct tp_chan_key. */
struct tp_peer_value {
	__u8 client_addr[16]; /* network order, IPv4-mapped for IPv4 */
	__be16 client_port;   /* network order */
	__be16 channel;       /* network order */
	__u8 client_family;  /* enum tp_family of client_addr */
	__u8 pad[3];          /* zero */
};

/* Value of "tp_bindings": one binding, both directions. */
struct tp_binding {
	struct tp_chan_key chan;    /* the channel direction's key; the peer direction's value */
	struct tp_chan_value peer;  /* the channel direction's value; its first 24 bytes the peer direction's key */
};

/* Slots per directory bucket: 32 bytes, half a cache line. */
#define TP_BUCKET_SLOTS 8
/* A slot: 0 when empty, else (tag << TP_SLOT_TAG_SHIFT) | (index + 1), where
 * index is the binding's slot in tp_bindings and tag the top 8 bits of the
 * key's hash, so a slot of another key is mostly skipped without reading
 * its binding. Hence at most 2^24 - 2 bindings. */
#define TP_SLOT_TAG_SHIFT 24
#define TP_SLOT_INDEX_MASK ((1u << TP_SLOT_TAG_SHIFT) - 1)

/* Value of "tp_chan_to_peer" and "tp_peer_to_chan" (arrays of buckets). */
struct tp_bucket {
	__u32 slot[TP_BUCKET_SLOTS]; /* host order: see TP_SLOT_TAG_SHIFT */
};

/* Value of "tp_bind_meta" (one slot): how the directories are hashed. The
 * sidecar writes it when it creates the tables and keeps it while they
 * live (it is pinned with them). */
struct tp_bind_meta {
	__u64 seed[2];       /* host order: random, per set of tables */
	__u32 bucket_mask;   /* host order: buckets per directory - 1 (a power of two - 1) */
	__u32 version;       /* host order: TP_BIND_VERSION */
};
#define TP_BIND_VERSION 1

/* ---- next hops: the kernel's tables, mirrored by the sidecar ------------
 * The relay host usually does not forward, so bpf_fib_lookup cannot answer
 * (it says FWD_DISABLED) and the program needs another source for the
 * Ethernet addresses of an output. The sidecar mirrors what the kernel itself
 * knows, from rtnetlink, kept current within a second of a change:
 * - "tp_routes" (LPM trie): the kernel's main routing table, per family:
 *   prefix -> output interface and gateway (or on-link);
 * - "tp_neigh" (hash): the kernel's neighbour entries, with a usable
 *   link-layer address, of the next hops the program needs on the
 *   interfaces it runs on (route gateways, on-link ends of bindings).
 * The program only reads them: nothing a frame carries changes where
 * relayed traffic goes. A destination without an answer is passed to the
 * stack, which routes and resolves it (and the sidecar has the kernel
 * resolve a needed neighbour it lacks): never a guessed MAC. */

/* What a route says to do (tp_route_value.kind). */
enum tp_route_kind {
	TP_ROUTE_UNICAST = 1, /* out of ifindex, to gateway (or on-link when gateway_family is 0) */
	TP_ROUTE_STACK = 2,   /* anything else (blackhole, unreachable, multicast, a nexthop object...): the stack decides */
};

/* Key of "tp_routes". The trie matches prefixlen bits from family on:
 * family and pad (32 bits) always, then the route's prefix of addr, so an
 * IPv6 route never covers an IPv4 destination (IPv4 is stored IPv4-mapped:
 * an IPv4 /n is prefixlen 32 + 96 + n, an IPv6 /n is 32 + n). */
struct tp_route_key {
	__u32 prefixlen;      /* host order: 32 + bits of addr that must match */
	__u8 family;          /* enum tp_family of addr */
	__u8 pad[3];          /* zero */
	__u8 addr[16];        /* network order, IPv4-mapped for IPv4; zero beyond the prefix */
};

struct tp_route_value {
	__u8 gateway[16];     /* network order, IPv4-mapped for IPv4; zero when on-link */
	__u32 ifindex;        /* host order: the route's output interface */
	__u8 gateway_family;  /* enum tp_family of gateway (an IPv4 route may have an IPv6 gateway), 0 when on-link */
	__u8 kind;            /* enum tp_route_kind */
	__u16 mtu;            /* host order: the route's MTU, 0 when it has none (the interface's applies) */
};

/* Key of "tp_neigh": a next hop on one interface. */
struct tp_neigh_key {
	__u8 addr[16];        /* network order, IPv4-mapped for IPv4 */
	__u32 ifindex;        /* host order: the interface the neighbour is on */
	__u8 family;          /* enum tp_family of addr */
	__u8 pad[3];          /* zero */
};

/* Both Ethernet addresses of an output to that next hop. Each is followed
 * by two zero bytes: the program reads mac + pad as one 64-bit word. */
struct tp_neigh_value {
	__u8 mac[6];          /* the neighbour's link-layer address, as the kernel's entry has it */
	__u8 pad[2];          /* zero */
	__u8 own_mac[6];      /* the interface's own address: source of the output */
	__u8 pad2[2];         /* zero */
};

/* ---- counters: per-CPU rows and per-CPU arrays ------------------------- */

/* Paths, index into "tp_path_stats". Families: 4 or 6 of the input and of
 * the output packet. */
enum tp_path {
	TP_PATH_CHAN_TO_UDP_44 = 0,
	TP_PATH_CHAN_TO_UDP_46,
	TP_PATH_CHAN_TO_UDP_64,
	TP_PATH_CHAN_TO_UDP_66,
	TP_PATH_UDP_TO_CHAN_44,
	TP_PATH_UDP_TO_CHAN_46,
	TP_PATH_UDP_TO_CHAN_64,
	TP_PATH_UDP_TO_CHAN_66,
	TP_PATH_CHAN_TO_CHAN_44,
	TP_PATH_CHAN_TO_CHAN_46,
	TP_PATH_CHAN_TO_CHAN_64,
	TP_PATH_CHAN_TO_CHAN_66,
	TP_PATH_MAX
};

struct tp_path_stats {
	__u64 packets;        /* host order */
	__u64 bytes;          /* host order: application payload, without the 4-byte ChannelData header or padding */
};

/* Value of "tp_path_stats", an array with one row per possible CPU (key:
 * the CPU number; the loader sizes it), each CPU writing only its own row.
 * Not a per-CPU map: a per-CPU map's memory is in the per-CPU area, pages
 * a relayed frame would touch for its counters alone, while a small array
 * sits with the program's other small maps (README, "Benchmarks"). Rows
 * are 256 bytes so no two CPUs share a cache line. */
struct tp_path_row {
	struct tp_path_stats path[TP_PATH_MAX];
	__u8 pad[256 - 16 * TP_PATH_MAX]; /* zero */
};
_Static_assert(sizeof(struct tp_path_row) == 256, "tp_path_row is 256 bytes");

/* Why a frame was passed to userspace or dropped; index into the rows of
 * "tp_reasons" (struct tp_reason_row). The sidecar uses these names. Each
 * reason's verdict is declared once, in TP_DROP_REASONS_MASK below: append a
 * reason here, and a drop reason there too. */
enum tp_reason {
	TP_PASS_NOT_CONFIGURED = 0, /* config slot not written (flags == 0) */
	TP_PASS_NOT_IP,             /* not IPv4/IPv6 (ARP, ...) */
	TP_PASS_VLAN,               /* 802.1Q/802.1ad tagged */
	TP_PASS_NOT_UDP,
	TP_PASS_IP_OPTIONS,         /* IPv4 IHL > 5 */
	TP_PASS_FRAGMENT,           /* IPv4 MF or offset, IPv6 fragment header */
	TP_PASS_IPV6_EXT,           /* IPv6 extension header */
	TP_PASS_NOT_RELAY_ADDR,     /* destination is not this relay's address */
	TP_PASS_NOT_RELAY_PORT,     /* destination port is neither listen nor allocation port */
	TP_PASS_STUN,               /* STUN message (first two bits 00) or too short for ChannelData */
	TP_PASS_BAD_CHANNEL_DATA,   /* ChannelData whose length does not match the datagram */
	TP_PASS_NO_BINDING,         /* no installed binding: the relay decides */
	TP_PASS_FAMILY_UNAVAILABLE, /* output family has no configured relay address */
	TP_PASS_TOO_BIG,            /* the output would exceed the MTU */
	TP_PASS_TRUNCATED,          /* headers shorter than their lengths say */
	TP_DROP_ADJUST_HEAD,        /* bpf_xdp_adjust_head failed after the rewrite began */
	TP_DROP_ADJUST_TAIL,        /* bpf_xdp_adjust_tail failed after the rewrite began */
	TP_DROP_BOUNDS,             /* bounds check failed after the rewrite began */
	/* Added after the first layout (appended so earlier numbers stay): */
	TP_PASS_BAD_CHECKSUM,       /* IPv4 header checksum wrong, or IPv6 UDP checksum 0: the stack drops it */
	TP_PASS_NO_HEADROOM,        /* bpf_xdp_adjust_head refused before anything changed (driver headroom) */
	TP_PASS_NO_NEIGH,           /* the next hop on this interface has no usable neighbour entry (tp_neigh) yet: the stack resolves it */
	TP_PASS_NO_ROUTE,           /* the FIB cannot answer (e.g. forwarding off) and tp_routes has no unicast route to the output's destination */
	TP_DROP_V4_MAPPED,          /* IPv6 source to the relay, or a binding's IPv6 destination, in ::ffff:0:0/96: IPv4 in IPv6 form, never on the wire */
	TP_PASS_OTHER_INTERFACE,    /* the output's route leaves by another interface than the frame came in on (XDP_TX cannot) */
	TP_REASON_MAX
};

/* The verdict of each reason: a set bit (1 << reason) drops the frame
 * (XDP_DROP), a clear bit passes it to the stack (XDP_PASS). The program's
 * verdict and the sidecar's pass/drop metrics both come from this mask
 * (src/shared/reasons.ts mirrors it; test/bpf/abi.test.ts compares). */
enum tp_reason_verdict {
	TP_DROP_REASONS_MASK = (1u << TP_DROP_ADJUST_HEAD) |
			       (1u << TP_DROP_ADJUST_TAIL) |
			       (1u << TP_DROP_BOUNDS) |
			       (1u << TP_DROP_V4_MAPPED),
};
_Static_assert(TP_REASON_MAX <= 31, "TP_DROP_REASONS_MASK has one bit per reason in an int");

/* Value of "tp_reasons": frames passed or dropped per enum tp_reason, one
 * row per possible CPU (key: the CPU number; the loader sizes it), each CPU
 * writing only its own row, like tp_path_row and for the same reason: a
 * passed frame touches no per-CPU-area page for its count. */
struct tp_reason_row {
	__u64 count[TP_REASON_MAX];            /* host order */
	__u8 pad[256 - 8 * TP_REASON_MAX];     /* zero */
};
_Static_assert(sizeof(struct tp_reason_row) == 256, "tp_reason_row is 256 bytes");

/* ---- diagnostics: perf event array "tp_diag" ---------------------------- */

enum tp_diag_kind {
	TP_DIAG_DROP = 1,          /* a frame was dropped; reason and helper return code set */
	TP_DIAG_MISCONFIG = 2,     /* configuration cannot work (e.g. port_min > port_max) */
};

struct tp_diag_event {
	__u32 kind;                /* host order: enum tp_diag_kind */
	__u32 reason;              /* host order: enum tp_reason */
	__s32 ret;                 /* host order: the failing helper's return code (negative errno) */
	__u32 path;                /* host order: enum tp_path, or TP_PATH_MAX when none */
	__u64 timestamp_ns;        /* host order: bpf_ktime_get_ns() */
};

/* Per-CPU token bucket "tp_diag_budget" (one slot) limiting tp_diag. */
struct tp_diag_budget {
	__u64 window_start_ns;     /* host order */
	__u32 sent;                /* host order: events sent in this one-second window */
	__u32 suppressed;          /* host order: events not sent in this window */
};

#endif /* TURN_ROUTER_SHARED_H */
