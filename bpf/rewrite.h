/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Building the output headers. The program never edits input headers in
 * place: it moves the frame start with bpf_xdp_adjust_head so the payload
 * stays where it is, then writes Ethernet, IP, UDP (and the ChannelData
 * header) fresh for the output family. That one scheme covers same-family,
 * cross-family (20 <-> 40 byte IP headers) and header insert/removal.
 */
#ifndef TP_REWRITE_H
#define TP_REWRITE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "csum.h"
#include "parse.h"
#include "maps.h"
#include "neigh.h"

/* Everything the output frame needs, decided before the first write. */
struct tp_out {
	union tp_addr saddr;
	union tp_addr daddr;
	__u64 smac;       /* as mac_load() reads it */
	__u64 dmac;
	__u8 family;      /* 4 or 6 */
	__u8 chan;        /* 1: the output is ChannelData (prepend the 4-byte header) */
	__be16 sport;     /* network order */
	__be16 dport;     /* network order */
	__be16 channel;   /* network order, when chan */
	__u16 n;          /* host order: application payload length */
	__u32 path;       /* enum tp_path */
};

static __always_inline __u32 out_ip_hlen(const struct tp_out *o)
{
	return o->family == 4 ? TP_IPV4_HLEN : TP_IPV6_HLEN;
}

static __always_inline __u32 out_udp_len(const struct tp_out *o)
{
	return TP_UDP_HLEN + (o->chan ? TP_CHAN_HLEN : 0) + o->n;
}

/* Sum of a UDP pseudo-header (either family) plus the UDP header with a
 * zero checksum, plus the ChannelData header when there is one. */
static __always_inline __u64 csum_udp_headers(const union tp_addr *s, const union tp_addr *d, int v6,
					      __be16 sport, __be16 dport, __u16 udp_len,
					      int chan, __be16 channel, __u16 chan_len)
{
	__u64 sum;

	if (v6)
		sum = (__u64)s->w[0] + s->w[1] + s->w[2] + s->w[3] +
		      d->w[0] + d->w[1] + d->w[2] + d->w[3];
	else
		sum = (__u64)s->w[3] + d->w[3];
	sum += bpf_htons(TP_IPPROTO_UDP);
	sum += 2 * (__u64)bpf_htons(udp_len); /* pseudo-header and UDP header */
	sum += sport + dport;
	if (chan)
		sum += channel + bpf_htons(chan_len);
	return sum;
}

/*
 * Next-hop MACs for the output, which must leave by the ingress interface
 * (XDP_TX). Two sources, in order:
 * 1. bpf_fib_lookup, an output lookup restricted to the ingress interface:
 *    authoritative when it answers (route via this interface, neighbour
 *    resolved; policy routing and multipath included), and it also bounds
 *    the packet by the route's MTU. Observed on 6.18: even with
 *    BPF_FIB_LOOKUP_OUTPUT it answers BPF_FIB_LKUP_RET_FWD_DISABLED unless
 *    forwarding is on for the interface (net.ipv4.conf.IF.forwarding /
 *    net.ipv6.conf.IF.forwarding), and forwarding is off on a relay host,
 *    which is why (2) exists. In BPF_PROG_TEST_RUN (ingress = lo) it
 *    answers FWD_DISABLED, or NOT_FWDED when forwarding is on but nothing
 *    routes via lo.
 * 2. Otherwise the kernel's route and neighbour entry as the sidecar
 *    mirrors them (neigh.h): the same answer the stack would give, read
 *    from maps no frame can write.
 * If neither answers, the frame is passed with the mirror's reason
 * (pass_no_route, pass_other_interface, pass_no_neigh): the stack sends it
 * via the sidecar and relay, resolving the neighbour if need be.
 * Returns TP_CONTINUE with e filled, TP_PASS_TOO_BIG when the route's MTU
 * is smaller, or one of the pass reasons above.
 * A subprogram: only a next-hop cache miss runs it, so its instructions stay
 * out of the relaying paths' instruction cache.
 */
static __attribute__((noinline)) int next_hop(struct xdp_md *ctx, const struct tp_out *o, __u16 ip_len,
				    struct nh_entry *e)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct tp_hop h;
	int r;

	if (TP_FIB_LOOKUP) {
		struct bpf_fib_lookup fib = {};
		long rc;

		fib.l4_protocol = TP_IPPROTO_UDP;
		fib.sport = o->sport;
		fib.dport = o->dport;
		fib.tot_len = ip_len;
		fib.ifindex = ifindex;
		if (o->family == 4) {
			fib.family = TP_AF_INET;
			fib.ipv4_src = o->saddr.w[3];
			fib.ipv4_dst = o->daddr.w[3];
		} else {
			fib.family = TP_AF_INET6;
			__builtin_memcpy(fib.ipv6_src, o->saddr.w, 16);
			__builtin_memcpy(fib.ipv6_dst, o->daddr.w, 16);
		}
		rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
			return TP_PASS_TOO_BIG;
		if (rc == BPF_FIB_LKUP_RET_SUCCESS && fib.ifindex == ifindex) {
			__u64 smac = 0, dmac = 0;

			__builtin_memcpy(&smac, fib.smac, 6);
			__builtin_memcpy(&dmac, fib.dmac, 6);
			e->smac = smac;
			e->dmac = dmac;
			/* On success tot_len holds the route's MTU (mtu_result):
			 * the answer covers every output up to it. */
			e->max_ip_len = fib.mtu_result;
			return TP_CONTINUE;
		}
	}
	r = mirror_next_hop(&o->daddr, o->family, ifindex, ip_len, &h);
	if (r != TP_CONTINUE)
		return r;
	e->smac = h.smac;
	e->dmac = h.dmac;
	e->max_ip_len = h.max_ip_len;
	return TP_CONTINUE;
}

static __always_inline int fib_macs(struct xdp_md *ctx, struct tp_out *o, __u16 ip_len, __u32 cpu)
{
	__u32 ifindex = ctx->ingress_ifindex;
	int r;

	if (TP_NH_TTL_JIFFIES != 0) {
		__u32 slot = cpu * TP_NH_SLOTS + addr_slot(&o->daddr);
		struct nh_entry *e = bpf_map_lookup_elem(&nh_cache, &slot);
		__u64 now;

		if (e) {
			now = bpf_jiffies64();
			if (now >= e->expires || e->ifindex != ifindex || ip_len > e->max_ip_len ||
			    e->family != o->family || !addr_eq(&e->daddr, &o->daddr)) {
				/* Decide into tmp: a pass must not leave a
				 * half-updated slot behind for the next frame. */
				struct nh_entry tmp;

				r = next_hop(ctx, o, ip_len, &tmp);
				if (r != TP_CONTINUE)
					return r;
				e->smac = tmp.smac;
				e->dmac = tmp.dmac;
				e->max_ip_len = tmp.max_ip_len;
				e->daddr = o->daddr;
				e->family = o->family;
				e->ifindex = ifindex;
				e->expires = now + TP_NH_TTL_JIFFIES;
			}
			o->smac = e->smac;
			o->dmac = e->dmac;
			return TP_CONTINUE;
		}
	}
	struct nh_entry tmp;

	r = next_hop(ctx, o, ip_len, &tmp);
	if (r != TP_CONTINUE)
		return r;
	o->smac = tmp.smac;
	o->dmac = tmp.dmac;
	return TP_CONTINUE;
}

static __always_inline void write_eth(struct ethhdr *eth, const struct tp_out *o, const int family)
{
	void *p = eth;

	mac_store(p, o->dmac);
	mac_store(p + 6, o->smac);
	*(__be16 *)(p + 12) = family == 4 ? bpf_htons(TP_ETH_P_IP) : bpf_htons(TP_ETH_P_IPV6);
}

/* The header is assembled as five words in registers (memory order, read
 * as little-endian) so its checksum is summed without reading back what was
 * just stored byte by byte (a store-forwarding stall per word). */
static __always_inline void write_ipv4(struct iphdr *ip, const struct tp_out *o, __u16 tot_len)
{
	__u32 *w = (__u32 *)ip;
	__u32 w0 = 0x45 | ((__u32)bpf_htons(tot_len) << 16);   /* version 4, IHL 5, TOS 0, length */
	__u32 w1 = (__u32)bpf_htons(0x4000) << 16;             /* ID 0, DF */
	__u32 w2 = TP_OUT_TTL | (TP_IPPROTO_UDP << 8);         /* TTL, UDP, checksum 0 */
	__u32 sa = o->saddr.w[3], da = o->daddr.w[3];
	__u16 check = ~csum_fold((__u64)w0 + w1 + w2 + sa + da);

	w[0] = w0;
	w[1] = w1;
	w[2] = w2 | ((__u32)check << 16);
	w[3] = sa;
	w[4] = da;
}

static __always_inline void write_ipv6(struct ipv6hdr *ip6, const struct tp_out *o, __u16 plen)
{
	__u32 *w = (__u32 *)ip6;

	w[0] = bpf_htonl(0x60000000); /* version 6, traffic class 0, flow label 0 */
	ip6->payload_len = bpf_htons(plen);
	ip6->nexthdr = TP_IPPROTO_UDP;
	ip6->hop_limit = TP_OUT_TTL;
	__builtin_memcpy(&ip6->saddr, o->saddr.b, 16);
	__builtin_memcpy(&ip6->daddr, o->daddr.b, 16);
}

static __always_inline void write_udp(struct udphdr *udp, const struct tp_out *o, __u16 len, __u16 check)
{
	udp->source = o->sport;
	udp->dest = o->dport;
	udp->len = bpf_htons(len);
	udp->check = check;
}

#endif /* TP_REWRITE_H */
