/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Internet checksums (RFC 1071) for the rewrite.
 *
 * Every "sum" here is a ones-complement partial sum of bytes AS THEY SIT IN
 * MEMORY, loaded as little-endian words (what bpf_csum_diff/csum_partial
 * produce too). Folding such a sum and storing the 16-bit result unchanged
 * gives a correct checksum field, so no byte swapping is needed anywhere;
 * a constant that appears in a header (protocol 17, a length) is added as
 * bpf_htons(value) for the same reason.
 *
 * Incremental update (RFC 1624 eqn. 3): HC' = ~(~HC + ~m + m'), where m is
 * the sum of everything removed from the checksummed data and m' the sum of
 * everything added. For ChannelData <-> UDP the payload bytes stay the same
 * and keep their even alignment (a 4-byte header in front), so m and m' are
 * just pseudo-headers, ports, lengths, the ChannelData header and padding.
 */
#ifndef TP_CSUM_H
#define TP_CSUM_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "consts.h"

static __always_inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* Sum over a 20-byte IPv4 header (checksum field included, as read). */
static __always_inline __u64 csum_ipv4_header(const struct iphdr *ip)
{
	const __u32 *w = (const __u32 *)ip;
	return (__u64)w[0] + w[1] + w[2] + w[3] + w[4];
}

/* A multiple of 0xffff (0xffffffff = 0xffff * 0x10001) above any sum
 * csum_replace is given (at most a few dozen words of 32 bits). */
#define TP_CSUM_NEG_BASE (0xffffffffull * 64)

/* ~(~old + ~m + added) with ~m, the complement of removed's folded sum,
 * taken as TP_CSUM_NEG_BASE - removed: congruent modulo 0xffff, and the
 * total stays positive, so the one fold gives the same 16 bits as folding
 * removed first (one fold fewer per relayed frame). As stored; the UDP
 * rule that a computed 0 is sent as 0xffff is the caller's. */
static __always_inline __u16 csum_replace(__u16 old, __u64 removed, __u64 added)
{
	__u64 s = (__u16)~old;
	s += TP_CSUM_NEG_BASE - removed;
	s += added;
	return (__u16)~csum_fold(s);
}

/* UDP checksum field from a complete sum; 0 means "no checksum" on the wire,
 * so a computed 0 goes out as its ones-complement twin 0xffff. */
static __always_inline __u16 csum_udp_field(__u16 c)
{
	return c == 0 ? 0xffff : c;
}

/*
 * Folded sum of n payload bytes starting off bytes into the frame (off even
 * relative to the UDP header), or -1 if the frame is shorter. Used only when
 * an IPv4 datagram without a UDP checksum becomes IPv6, where one is
 * mandatory. A global function: the verifier checks its loop once, on its
 * own, instead of once per path of the caller.
 */
__attribute__((noinline)) int tp_csum_payload(struct xdp_md *ctx, __u32 off, __u32 n)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	void *p;
	__u64 o, sum = 0;
	__u32 i;

	if (off > 128 || n > TP_MAX_IP_LEN)
		return -1;
	/* clang drops a plain mask after the test above and reuses the raw
	 * argument, which the verifier sees as unbounded: mask in asm. */
	o = off;
	asm volatile("%0 &= 0xff" : "+r"(o));
	p = data + o;
	/* 256-byte chunks through the helper (a helper call per chunk is
	 * most of this function's cost; the helper takes up to 512 bytes);
	 * bounded for the verifier. */
	for (i = 0; i < TP_MAX_IP_LEN / 256; i++) {
		if (n < 256)
			break;
		if (p + 256 > end)
			return -1;
		sum += (__u32)bpf_csum_diff(0, 0, p, 256, 0);
		p += 256;
		n -= 256;
	}
	/* The rest in power-of-two pieces: constant sizes keep clang from
	 * turning a word loop into pointer arithmetic on data_end. */
#define TP_CSUM_PIECE(sz)                                               \
	if (n >= (sz)) {                                                 \
		if (p + (sz) > end)                                      \
			return -1;                                       \
		sum += (__u32)bpf_csum_diff(0, 0, p, (sz), 0);           \
		p += (sz);                                               \
		n -= (sz);                                               \
	}
	TP_CSUM_PIECE(128)
	TP_CSUM_PIECE(64)
	TP_CSUM_PIECE(32)
	TP_CSUM_PIECE(16)
	TP_CSUM_PIECE(8)
	TP_CSUM_PIECE(4)
#undef TP_CSUM_PIECE
	/* 0-3 bytes left; an odd last byte pairs with an implicit zero. In
	 * little-endian memory order the byte at an even offset is the low one. */
	if (n >= 1) {
		if (p + 1 > end)
			return -1;
		sum += *(__u8 *)p;
	}
	if (n >= 2) {
		if (p + 2 > end)
			return -1;
		sum += (__u32)(*(__u8 *)(p + 1)) << 8;
	}
	if (n >= 3) {
		if (p + 3 > end)
			return -1;
		sum += *(__u8 *)(p + 2);
	}
	return csum_fold(sum);
}

#endif /* TP_CSUM_H */
