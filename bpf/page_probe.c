/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * bench/xdp-pages.bench.ts: what a single BPF_PROG_TEST_RUN pays per
 * distinct page a program touches. Each program reads K cache lines:
 * on K distinct pages of a 4 MiB array (vmalloc'd, 4 KiB pages), on one
 * page of it, or on distinct pages of a 16 KiB array (kmalloc'd, in the
 * kernel's direct map, huge pages). If every test run started with an empty
 * TLB (page-table isolation without PCID), the "pages" programs would pay a
 * page walk per page on top of what the "lines" programs pay.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct line {
	__u64 v[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct line);
} big SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct line);
} small SEC(".maps");

#define T(m, k)                                                       \
	{                                                             \
		__u32 key = (k);                                      \
		struct line *l = bpf_map_lookup_elem(&m, &key);       \
		if (l)                                                \
			s += l->v[0];                                 \
	}
/* The sum decides the verdict, so no load can be dropped. */
#define PROG(name, body)                                              \
	SEC("xdp") int name(struct xdp_md *ctx)                       \
	{                                                             \
		__u64 s = 0;                                          \
		body;                                                 \
		return s == 12345 ? XDP_DROP : XDP_PASS;              \
	}

/* 64 lines of 64 bytes = one 4 KiB page of big. */
PROG(empty, )
PROG(pages8, T(big, 0) T(big, 64) T(big, 128) T(big, 192) T(big, 256) T(big, 320) T(big, 384) T(big, 448))
PROG(lines8, T(big, 0) T(big, 1) T(big, 2) T(big, 3) T(big, 4) T(big, 5) T(big, 6) T(big, 7))
PROG(small8, T(small, 0) T(small, 64) T(small, 128) T(small, 192) T(small, 16) T(small, 80) T(small, 144) T(small, 208))

char LICENSE[] SEC("license") = "Dual BSD/GPL";
