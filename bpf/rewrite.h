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
 * Next-hop MACs for the output. The relay originates the packet, so this is
 * an output lookup restricted to the ingress interface: XDP_TX can only leave
 * there. Observed on 6.18: even with BPF_FIB_LOOKUP_OUTPUT the helper answers
 * BPF_FIB_LKUP_RET_FWD_DISABLED unless forwarding is on for the interface
 * (net.ipv4.conf.IF.forwarding / net.ipv6.conf.IF.forwarding), so without it
 * every output takes the swap below, which is wrong for peers on the same L2
 * segment (the sidecar warns about it at start). On success with a resolved
 * neighbour the FIB's MACs are used; otherwise (no neighbour yet, no route
 * on this interface, test runs on lo) the frame goes back to the L2 hop it
 * came from, i.e. source and destination MACs swapped. That is right for a
 * relay behind one gateway and for LAN clients, and it is what the
 * architecture calls "the next hop seen on ingress".
 * Returns TP_CONTINUE, TP_PASS_TOO_BIG when the route's MTU is smaller, or
 * TP_PASS_NO_NEIGH when the next hop on this interface is not resolved yet.
 */
static __always_inline int fib_lookup_macs(struct xdp_md *ctx, const struct tp_out *o, __u16 ip_len,
					   struct nh_entry *e)
{
	struct bpf_fib_lookup fib = {};
	__u64 smac = 0, dmac = 0;
	long rc;

	fib.l4_protocol = TP_IPPROTO_UDP;
	fib.sport = o->sport;
	fib.dport = o->dport;
	fib.tot_len = ip_len;
	fib.ifindex = ctx->ingress_ifindex;
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
	/* The route leaves by this interface but the next hop's MAC is not known
	 * yet (a LAN peer nobody has talked to): swapping MACs would send the
	 * frame back to whoever sent it. The stack relays this one, and its
	 * neighbour resolution fills the table for the next packets. Not cached. */
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH && fib.ifindex == ctx->ingress_ifindex)
		return TP_PASS_NO_NEIGH;
	if (rc == BPF_FIB_LKUP_RET_SUCCESS && fib.ifindex == ctx->ingress_ifindex) {
		__builtin_memcpy(&smac, fib.smac, 6);
		__builtin_memcpy(&dmac, fib.dmac, 6);
		e->swap = 0;
		e->smac = smac;
		e->dmac = dmac;
		/* On success tot_len holds the route's MTU (mtu_result): the
		 * answer covers every output up to it. */
		e->max_ip_len = fib.mtu_result;
	} else {
		/* No MTU to learn: covers outputs up to this one's length; a
		 * longer one asks again, in case its route would refuse it. */
		e->swap = 1;
		e->max_ip_len = ip_len;
	}
	return TP_CONTINUE;
}

static __always_inline void use_answer(const struct nh_entry *e, const struct tp_in *in, struct tp_out *o)
{
	if (e->swap) {
		o->smac = in->dmac;
		o->dmac = in->smac;
	} else {
		o->smac = e->smac;
		o->dmac = e->dmac;
	}
}

static __always_inline int fib_macs(struct xdp_md *ctx, const struct tp_in *in, struct tp_out *o,
				    __u16 ip_len)
{
	__u32 ifindex = ctx->ingress_ifindex;
	int r;

	if (TP_FIB_LOOKUP * TP_NH_TTL_JIFFIES != 0) {
		/* Slot from the destination's last word (the IPv4 address, or
		 * the IPv6 interface id's tail) mixed with the word before. */
		__u32 h = o->daddr.w[3] ^ (o->daddr.w[2] >> 7);
		__u32 slot = (h ^ (h >> 16) ^ (h >> 8)) & (TP_NH_SLOTS - 1);
		struct nh_entry *e = bpf_map_lookup_elem(&nh_cache, &slot);
		__u64 now;

		if (e) {
			now = bpf_jiffies64();
			if (now >= e->expires || e->ifindex != ifindex || ip_len > e->max_ip_len ||
			    !addr_eq(&e->daddr, &o->daddr)) {
				r = fib_lookup_macs(ctx, o, ip_len, e);
				if (r != TP_CONTINUE)
					return r;
				e->daddr = o->daddr;
				e->ifindex = ifindex;
				e->expires = now + TP_NH_TTL_JIFFIES;
			}
			use_answer(e, in, o);
			return TP_CONTINUE;
		}
	}
	if (TP_FIB_LOOKUP) {
		struct nh_entry tmp = {};

		r = fib_lookup_macs(ctx, o, ip_len, &tmp);
		if (r != TP_CONTINUE)
			return r;
		use_answer(&tmp, in, o);
		return TP_CONTINUE;
	}
	o->smac = in->dmac;
	o->dmac = in->smac;
	return TP_CONTINUE;
}

static __always_inline void write_eth(struct ethhdr *eth, const struct tp_out *o)
{
	void *p = eth;

	mac_store(p, o->dmac);
	mac_store(p + 6, o->smac);
	*(__be16 *)(p + 12) = o->family == 4 ? bpf_htons(TP_ETH_P_IP) : bpf_htons(TP_ETH_P_IPV6);
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
