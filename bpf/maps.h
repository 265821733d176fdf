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
 * The binding tables (turn_router_shared.h, "bindings"): arrays, so every
 * lookup is inlined by the verifier, memory-mapped so the sidecar writes
 * them with plain stores. The loader sizes them from the binding capacity
 * (src/sidecar/bpf/loader.ts): tp_bindings holds the capacity plus slots
 * for bindings being replaced, each directory capacity / 2 buckets (a
 * power of two: 4 slots per binding, so a key's two buckets practically
 * never both fill). At 65,536 bindings: 5.1 MiB and 2 x 1.0 MiB
 * (test/bpf/golden-memory.test.ts checks the 16 MiB budget).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TP_MAX_BINDINGS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct tp_binding);
} tp_bindings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TP_MAX_BINDINGS / 2);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct tp_bucket);
} tp_chan_to_peer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TP_MAX_BINDINGS / 2);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct tp_bucket);
} tp_peer_to_chan SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tp_bind_meta);
} tp_bind_meta SEC(".maps");

/* Packets and payload bytes relayed, per CPU and enum tp_path (struct
 * tp_path_row). max_entries here is one CPU's worth: the loader multiplies
 * it by the possible CPUs (src/sidecar/bpf/loader.ts, PER_CPU_ROW_MAPS). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tp_path_row);
} tp_path_stats SEC(".maps");

/* Frames per enum tp_reason, per CPU (struct tp_reason_row); max_entries
 * is one CPU's worth, multiplied by the loader as for tp_path_stats. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tp_reason_row);
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
 * The kernel's routes and the neighbours the program needs, mirrored by the
 * sidecar (turn_router_shared.h); the program only reads them. Pinned like
 * the other tp_ maps, so a restarted sidecar finds them filled and only
 * corrects what changed meanwhile. An LPM trie is never preallocated; a
 * host with more routes than fit has its mirror emptied by the sidecar (a
 * missing more-specific route would send to the wrong next hop). The
 * neighbour hash is preallocated: 16,384 entries take about 1.7 MiB.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TP_MAX_ROUTES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tp_route_key);
	__type(value, struct tp_route_value);
} tp_routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TP_MAX_NEIGH);
	__type(key, struct tp_neigh_key);
	__type(value, struct tp_neigh_value);
} tp_neigh SEC(".maps");

/*
 * Next-hop cache (kernel-internal, not part of the contract, so no "tp_"
 * prefix: the loader neither pins nor reuses it). bpf_fib_lookup and the
 * route and neighbour lookups are the costliest steps of a relayed frame,
 * and their answer changes only when a route or a neighbour does, so each
 * CPU keeps the last answer per output destination for TP_NH_TTL_JIFFIES
 * and then asks again. Entries are 64 bytes (one cache line);
 * direct-mapped, a collision just evicts. Only answers that relay are
 * cached: a pass asks again on the next frame. Each CPU owns the
 * TP_NH_SLOTS entries from cpu * TP_NH_SLOTS (a plain array, for the same
 * reason as tp_path_stats; the loader multiplies max_entries by the
 * possible CPUs). A CPU beyond the map just asks every time.
 */
struct nh_entry {
	union tp_addr daddr;   /* the output's destination (IPv4-mapped for IPv4) */
	__u64 expires;         /* jiffies: valid while jiffies < expires */
	__u64 smac;            /* as mac_load() reads it */
	__u64 dmac;
	__u32 ifindex;         /* ingress ifindex the answer was for */
	__u16 max_ip_len;      /* longest output IP packet the answer covers */
	__u8 family;           /* of daddr: 4 or 6 */
	__u8 pad[9];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TP_NH_SLOTS);
	__type(key, __u32);
	__type(value, struct nh_entry);
} nh_cache SEC(".maps");

#endif /* TP_MAPS_H */
