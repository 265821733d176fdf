/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Frame parsing. Contract of every parse_* helper: it checks bounds against
 * data_end itself, fills the struct it is given, and returns TP_CONTINUE
 * when the frame may go on or the enum tp_reason it must be passed with.
 * Nothing here writes to the packet.
 *
 * Order of checks (decides which reason a frame with several faults gets):
 * L2 (VLAN, ethertype), L3 structure (version, options, fragments, extension
 * headers, protocol, lengths, IPv4 header checksum), then addressing
 * (destination, then an IPv6 source in IPv4-mapped form).
 */
#ifndef TP_PARSE_H
#define TP_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "turn_router_shared.h"
#include "consts.h"
#include "csum.h"

/* An address in the shared 16-byte form (IPv4-mapped for IPv4). Its family
 * travels beside it (tp_in, tp_out, every map struct) and is never inferred
 * from the form: ::ffff:a.b.c.d may be an IPv6 address someone wrote.
 * Aligned so it can be compared and copied as words on the stack, where
 * the verifier insists on aligned access. */
union tp_addr {
	__u8 b[16];
	__u32 w[4];
	__u64 d[2];
} __attribute__((aligned(8)));

/* What the program needs from an input frame, copied out of the packet so
 * it survives bpf_xdp_adjust_head (which invalidates packet pointers). */
struct tp_in {
	union tp_addr saddr;
	union tp_addr daddr;
	__u8 family;     /* 4 or 6 */
	__be16 sport;    /* network order */
	__be16 dport;    /* network order */
	__be16 udp_csum; /* as on the wire */
	__u16 udp_len;   /* host order, UDP header included */
	__u16 trailer;   /* host order: bytes after the IP datagram (Ethernet padding) */
};

/* Addresses are compared word by word, as addr_load writes them: a 64-bit
 * load of two 32-bit stores still in flight cannot be forwarded from the
 * store buffer and waits for both to reach the cache. */
static __always_inline int addr_is_v4(const union tp_addr *a)
{
	return (a->w[0] | a->w[1] | (a->w[2] ^ bpf_htonl(0xffff))) == 0;
}

static __always_inline int addr_eq(const union tp_addr *a, const union tp_addr *b)
{
	return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) | (a->w[3] ^ b->w[3])) == 0;
}

static __always_inline void addr_set_v4(union tp_addr *a, __be32 v4)
{
	a->w[0] = 0;
	a->w[1] = 0;
	a->w[2] = bpf_htonl(0xffff);
	a->w[3] = v4;
}

/* Copies 16 bytes from a possibly unaligned place (packet, shared struct). */
static __always_inline void addr_load(union tp_addr *a, const void *p)
{
	const __u32 *w = p;
	a->w[0] = w[0];
	a->w[1] = w[1];
	a->w[2] = w[2];
	a->w[3] = w[3];
}

/* A MAC address as one value: its 6 bytes in memory order in the low 48
 * bits. Two loads and two stores instead of the 6 + 6 byte moves clang
 * emits for a memcpy from the (packed) Ethernet header. */
static __always_inline __u64 mac_load(const void *p)
{
	return *(const __u32 *)p | ((__u64)*(const __u16 *)(p + 4) << 32);
}

static __always_inline void mac_store(void *p, __u64 mac)
{
	*(__u32 *)p = (__u32)mac;
	*(__u16 *)(p + 4) = (__u16)(mac >> 32);
}

static __always_inline int ipv6_is_ext_header(__u8 nexthdr)
{
	switch (nexthdr) {
	case 0:   /* hop-by-hop options */
	case 43:  /* routing */
	case 51:  /* authentication header */
	case 60:  /* destination options */
	case 135: /* mobility */
	case 139: /* host identity protocol */
	case 140: /* shim6 */
	case 253: /* experimental */
	case 254:
		return 1;
	}
	return 0;
}

static __always_inline int parse_ipv4(void *data, void *end, struct tp_in *in)
{
	struct iphdr *ip = data + TP_ETH_HLEN;
	struct udphdr *udp = data + TP_ETH_HLEN + TP_IPV4_HLEN;
	__u16 tot_len;

	if ((void *)(udp + 1) > end)
		return TP_PASS_TRUNCATED;
	if (ip->version != 4)
		return TP_PASS_NOT_IP;
	if (ip->ihl != 5)
		return ip->ihl < 5 ? TP_PASS_TRUNCATED : TP_PASS_IP_OPTIONS;
	if (ip->frag_off & bpf_htons(0x3fff)) /* MF or an offset */
		return TP_PASS_FRAGMENT;
	if (ip->protocol != TP_IPPROTO_UDP)
		return TP_PASS_NOT_UDP;
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < TP_IPV4_HLEN + TP_UDP_HLEN || data + TP_ETH_HLEN + tot_len > end)
		return TP_PASS_TRUNCATED;
	in->udp_len = bpf_ntohs(udp->len);
	if (in->udp_len != tot_len - TP_IPV4_HLEN)
		return TP_PASS_TRUNCATED;
	/* The header is rebuilt on output, so a corrupt one must not be
	 * laundered into a valid checksum: let the stack drop it. */
	if (csum_fold(csum_ipv4_header(ip)) != 0xffff)
		return TP_PASS_BAD_CHECKSUM;

	in->family = 4;
	addr_set_v4(&in->saddr, ip->saddr);
	addr_set_v4(&in->daddr, ip->daddr);
	in->sport = udp->source;
	in->dport = udp->dest;
	in->udp_csum = udp->check;
	in->trailer = end - (data + TP_ETH_HLEN + tot_len);
	return TP_CONTINUE;
}

static __always_inline int parse_ipv6(void *data, void *end, struct tp_in *in)
{
	struct ipv6hdr *ip6 = data + TP_ETH_HLEN;
	struct udphdr *udp = data + TP_ETH_HLEN + TP_IPV6_HLEN;
	__u16 plen;

	if ((void *)(udp + 1) > end)
		return TP_PASS_TRUNCATED;
	if (ip6->version != 6)
		return TP_PASS_NOT_IP;
	if (ip6->nexthdr != TP_IPPROTO_UDP) {
		if (ip6->nexthdr == 44)
			return TP_PASS_FRAGMENT;
		return ipv6_is_ext_header(ip6->nexthdr) ? TP_PASS_IPV6_EXT : TP_PASS_NOT_UDP;
	}
	plen = bpf_ntohs(ip6->payload_len);
	/* plen 0 would be a jumbogram: not ours. */
	if (plen < TP_UDP_HLEN || data + TP_ETH_HLEN + TP_IPV6_HLEN + plen > end)
		return TP_PASS_TRUNCATED;
	in->udp_len = bpf_ntohs(udp->len);
	if (in->udp_len != plen)
		return TP_PASS_TRUNCATED;
	if (udp->check == 0) /* mandatory over IPv6 (RFC 8200 8.1) */
		return TP_PASS_BAD_CHECKSUM;

	in->family = 6;
	addr_load(&in->saddr, &ip6->saddr);
	addr_load(&in->daddr, &ip6->daddr);
	in->sport = udp->source;
	in->dport = udp->dest;
	in->udp_csum = udp->check;
	in->trailer = end - (data + TP_ETH_HLEN + TP_IPV6_HLEN + plen);
	return TP_CONTINUE;
}

/* The IP version of the frame from its Ethertype: 4 or 6 in *fam and
 * TP_CONTINUE, or the reason it is passed. */
static __always_inline int parse_eth(void *data, void *end, int *fam)
{
	__be16 proto;

	if (data + TP_ETH_HLEN > end)
		return TP_PASS_TRUNCATED;
	proto = *(__be16 *)(data + 12); /* one load: ethhdr is packed */
	if (proto == bpf_htons(TP_ETH_P_IP)) {
		*fam = 4;
		return TP_CONTINUE;
	}
	if (proto == bpf_htons(TP_ETH_P_IPV6)) {
		*fam = 6;
		return TP_CONTINUE;
	}
	if (proto == bpf_htons(TP_ETH_P_8021Q) || proto == bpf_htons(TP_ETH_P_8021AD))
		return TP_PASS_VLAN;
	return TP_PASS_NOT_IP;
}

/* Parses IP (version fam, a constant: the caller has one copy per family)
 * + UDP after parse_eth, and checks the destination address is the relay's
 * address of that family. */
static __always_inline int parse_ip(void *data, void *end, const struct tp_config *cfg,
				    struct tp_in *in, const int fam)
{
	union tp_addr relay;
	int r;

	if (fam == 4) {
		r = parse_ipv4(data, end, in);
		if (r != TP_CONTINUE)
			return r;
		if (!(cfg->flags & TP_CFG_HAVE_V4) || in->daddr.w[3] != *(const __u32 *)cfg->relay_v4)
			return TP_PASS_NOT_RELAY_ADDR;
	} else {
		r = parse_ipv6(data, end, in);
		if (r != TP_CONTINUE)
			return r;
		addr_load(&relay, cfg->relay_v6);
		if (!(cfg->flags & TP_CFG_HAVE_V6) || !addr_eq(&in->daddr, &relay))
			return TP_PASS_NOT_RELAY_ADDR;
		/* ::ffff:a.b.c.d is IPv4 in IPv6 form, never a source on the
		 * wire (the stack drops it as well), and in the program's
		 * 16-byte form it is a.b.c.d: drop it before a binding lookup
		 * can take it for that IPv4 host. */
		if (addr_is_v4(&in->saddr))
			return TP_DROP_V4_MAPPED;
	}
	return TP_CONTINUE;
}

#endif /* TP_PARSE_H */
