/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Every map of the TURN router. Names are a contract with the loader
 * (src/sidecar/bpf/router.ts); layouts come from turn_router_shared.h.
 */
#ifndef TP_MAPS_H
#define TP_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "turn_router_shared.h"
#include "consts.h"
#include "parse.h"

/* Written by the sidecar at every load; a zeroed slot means "pass all". */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tp_config);
} tp_config SEC(".maps");

/*
 * The two binding maps. Preallocated by default: on kernel 6.18 each takes
 * 7,341,136 bytes of memlock at 65,536 entries whether empty or full, both
 * together 14.0 MiB (budget 16 MiB; test/bpf/golden-memory.test.ts checks
 * it). BPF_F_NO_PREALLOC (build with -DTP_BINDINGS_NO_PREALLOC) starts
 * at 2.0 MiB but measured 15.0 MiB full, more than preallocated, and
 * preallocation means a binding update never fails for lack of memory.
 */
#ifdef TP_BINDINGS_NO_PREALLOC
#define TP_BINDING_FLAGS BPF_F_NO_PREALLOC
#else
#define TP_BINDING_FLAGS 0
#endif
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TP_MAX_BINDINGS);
	__uint(map_flags, TP_BINDING_FLAGS);
	__type(key, struct tp_chan_key);
	__type(value, struct tp_chan_value);
} tp_chan_to_peer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TP_MAX_BINDINGS);
	__uint(map_flags, TP_BINDING_FLAGS);
	__type(key, struct tp_peer_key);
	__type(value, struct tp_peer_value);
} tp_peer_to_chan SEC(".maps");

/* Packets and payload bytes relayed, per enum tp_path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TP_PATH_MAX);
	__type(key, __u32);
	__type(value, struct tp_path_stats);
} tp_path_stats SEC(".maps");

/* One count per enum tp_reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TP_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tp_reasons SEC(".maps");

/* Rare diagnostics (struct tp_diag_event); max_entries 0 = one per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} tp_diag SEC(".maps");

/* Per-CPU one-second window limiting tp_diag to tp_config.diag_per_sec. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tp_diag_budget);
} tp_diag_budget SEC(".maps");

/*
 * Learned neighbours (turn_router_shared.h). An LRU so a flood of new source
 * addresses evicts the least recently used entries instead of failing, and
 * pinned like the other tp_ maps so a restarted sidecar keeps what was
 * learned. Preallocated: 65,536 entries take 6,816,640 bytes of memlock
 * on kernel 6.18 with 2 CPUs (test/bpf/loader.test.ts prints it); not a
 * binding map, so outside the binding maps' 16 MiB budget.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TP_MAX_NEIGH);
	__type(key, struct tp_neigh_key);
	__type(value, struct tp_neigh_value);
} tp_neigh SEC(".maps");

/*
 * Recently confirmed sources (kernel-internal, no "tp_" prefix): what each
 * CPU last wrote or verified in tp_neigh for a source address, so a steady
 * flow skips the tp_neigh hash lookup (a jhash and a bucket walk, ~15 ns
 * cold in the benchmark) for an array slot it reads anyway. Valid for
 * TP_NEIGH_CONFIRM_JIFFIES, and only while the frame's MAC and interface
 * still match; direct-mapped, a collision just evicts.
 */
struct nb_seen {
	union tp_addr addr;    /* the source address (IPv4-mapped for IPv4) */
	__u64 mac;             /* as mac_load() reads it */
	__u64 until;           /* jiffies: trusted while jiffies < until */
	__u32 ifindex;
	__u8 family;           /* of addr: 4 or 6 */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TP_NH_SLOTS);
	__type(key, __u32);
	__type(value, struct nb_seen);
} nb_seen SEC(".maps");

/*
 * Next-hop cache (kernel-internal, not part of the contract, so no "tp_"
 * prefix: the loader neither pins nor reuses it). bpf_fib_lookup and the
 * tp_neigh lookup are the costliest steps of a relayed frame, and their
 * answer changes only when a route or a neighbour does, so each CPU keeps
 * the last answer per output destination for TP_NH_TTL_JIFFIES and then
 * asks again. Entries are 64 bytes (one cache line); direct-mapped, a
 * collision just evicts. Only answers that relay are cached: a pass (no MAC
 * known yet) asks again on the next frame.
 */
struct nh_entry {
	union tp_addr daddr;   /* the output's destination (IPv4-mapped for IPv4) */
	__u64 expires;         /* jiffies: valid while jiffies < expires */
	__u64 smac;            /* as mac_load() reads it; unused when own_from_frame */
	__u64 dmac;
	__u32 ifindex;         /* ingress ifindex the answer was for */
	__u16 max_ip_len;      /* longest output IP packet the answer covers */
	__u8 own_from_frame;   /* 1: source MAC = the input frame's destination MAC (ours) */
	__u8 family;           /* of daddr: 4 or 6 */
	__u8 pad[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TP_NH_SLOTS);
	__type(key, __u32);
	__type(value, struct nh_entry);
} nh_cache SEC(".maps");

#endif /* TP_MAPS_H */
