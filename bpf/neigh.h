/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The learned neighbour table (tp_neigh): who is the next hop towards an
 * address, as seen on the frames that address sends us. This is what makes
 * the fast path work on a relay that does not forward (bpf_fib_lookup then
 * answers nothing): the output goes to the MAC the destination's own
 * frames came from, never blindly back to whoever sent the input.
 */
#ifndef TP_NEIGH_H
#define TP_NEIGH_H

#include <linux/bpf.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "turn_router_shared.h"
#include "consts.h"
#include "parse.h"
#include "maps.h"

/* Bit 0 of the first byte: a group (multicast/broadcast) address, never a
 * host's own; in the mac_load() form that byte is the lowest. */
static __always_inline int mac_is_group(__u64 mac)
{
	return mac & 1;
}

static __always_inline void neigh_key(struct tp_neigh_key *k, const union tp_addr *a, __u8 family,
				      __u32 ifindex)
{
	addr_load((union tp_addr *)k->addr, a->b);
	k->ifindex = ifindex;
	k->family = family;
}

/* Slot of an address in the per-CPU direct-mapped caches: the last word
 * (the IPv4 address, or the IPv6 interface id's tail) mixed with the word
 * before. */
static __always_inline __u32 addr_slot(const union tp_addr *a)
{
	__u32 h = a->w[3] ^ (a->w[2] >> 7);

	return (h ^ (h >> 16) ^ (h >> 8)) & (TP_NH_SLOTS - 1);
}

/* Writes or refreshes the tp_neigh entry of addr; with update_only, only
 * an existing entry is changed (unsolicited announcements must not fill
 * the table with every host on the segment). */
static __always_inline void neigh_store(struct xdp_md *ctx, const union tp_addr *addr, __u8 family,
					__u64 smac, int update_only)
{
	struct tp_neigh_key k __attribute__((aligned(8))) = {};
	struct tp_neigh_value *v;
	__u64 now;

	neigh_key(&k, addr, family, ctx->ingress_ifindex);
	v = bpf_map_lookup_elem(&tp_neigh, &k);
	now = bpf_ktime_get_coarse_ns();
	if (v) {
		__u64 *mac = (__u64 *)v->mac; /* mac + zero pad, 8-byte aligned in the map */

		if (*mac != smac) {
			*mac = smac;
			v->seen_ns = now;
		} else if (now - v->seen_ns >= TP_NEIGH_REFRESH_NS) {
			v->seen_ns = now;
		}
		return;
	}
	if (!update_only) {
		struct tp_neigh_value nv __attribute__((aligned(8))) = {};

		*(__u64 *)nv.mac = smac;
		nv.seen_ns = now;
		/* BPF_NOEXIST: another CPU may have added it meanwhile; either
		 * value is right. A full LRU evicts, so this does not fail for
		 * lack of room. */
		bpf_map_update_elem(&tp_neigh, &k, &nv, BPF_NOEXIST);
	}
}

/*
 * Records smac as the next hop towards addr (of family 4 or 6) on the
 * ingress interface.
 * Called for every UDP frame to a relay address (with its source), so a
 * source this CPU confirmed recently with the same MAC on the same
 * interface costs one per-CPU slot read and no tp_neigh access.
 * Concurrent writers on other CPUs store the same or a newer MAC as one
 * aligned 64-bit word, so a reader never sees half of one.
 */
static __always_inline void neigh_learn(struct xdp_md *ctx, const union tp_addr *addr, __u8 family,
					__u64 smac, int update_only)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct nb_seen *s = 0;
	__u64 now = 0;

	if (smac == 0 || mac_is_group(smac))
		return;
	if (TP_NEIGH_CONFIRM_JIFFIES != 0) {
		__u32 slot = addr_slot(addr);

		s = bpf_map_lookup_elem(&nb_seen, &slot);
		if (s) {
			now = bpf_jiffies64();
			if (now < s->until && s->mac == smac && s->ifindex == ifindex &&
			    s->family == family && addr_eq(&s->addr, addr))
				return;
		}
	}
	neigh_store(ctx, addr, family, smac, update_only);
	/* An update_only miss stored nothing, so it confirms nothing. */
	if (s && !update_only) {
		s->addr = *addr;
		s->mac = smac;
		s->ifindex = ifindex;
		s->family = family;
		s->until = now + TP_NEIGH_CONFIRM_JIFFIES;
	}
}

/*
 * Address resolution traffic teaches next hops too, so a destination that
 * never sends UDP to the relay (a one-way flow to a peer) gets a fast path
 * once the stack has resolved it for the first relayed packets:
 * - ARP (RFC 826) request or reply whose target is the relay's IPv4
 *   address: sender protocol address -> sender hardware address; a
 *   gratuitous ARP (sender = target address) only updates a known entry.
 * - IPv6 Neighbor Solicitation for the relay's address (not from ::, i.e.
 *   not DAD): source -> Ethernet source; Neighbor Advertisement to the
 *   relay's address: target -> Ethernet source; one to a multicast
 *   address (unsolicited) only updates a known entry (RFC 4861 7.2.6).
 * Both are frames the program passes anyway (pass_not_ip, pass_not_udp);
 * nothing here changes the verdict. ND messages must carry hop limit 255
 * (RFC 4861 7.1.1), which an off-link sender cannot forge.
 */
static __always_inline void neigh_learn_resolution(struct xdp_md *ctx, const struct tp_config *cfg,
						   void *data, void *end)
{
	__be16 proto;
	union tp_addr a;

	if (data + TP_ETH_HLEN > end)
		return;
	proto = *(__be16 *)(data + 12);
	if (proto == bpf_htons(TP_ETH_P_ARP)) {
		__u8 *p = data + TP_ETH_HLEN;
		__be32 spa, tpa, relay = *(const __u32 *)cfg->relay_v4;
		__be16 op;

		if ((void *)(p + 28) > end || !(cfg->flags & TP_CFG_HAVE_V4))
			return;
		if (*(__be16 *)p != bpf_htons(1) || *(__be16 *)(p + 2) != bpf_htons(TP_ETH_P_IP) ||
		    p[4] != 6 || p[5] != 4)
			return;
		op = *(__be16 *)(p + 6);
		if (op != bpf_htons(1) && op != bpf_htons(2))
			return;
		spa = *(__be32 *)(p + 14);
		tpa = *(__be32 *)(p + 24);
		if (spa == 0 || spa == relay)
			return;
		addr_set_v4(&a, spa);
		if (tpa == relay)
			neigh_learn(ctx, &a, TP_FAMILY_V4, mac_load(p + 8), 0);
		else if (tpa == spa)
			neigh_learn(ctx, &a, TP_FAMILY_V4, mac_load(p + 8), 1);
	} else if (proto == bpf_htons(TP_ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + TP_ETH_HLEN;
		__u8 *icmp = data + TP_ETH_HLEN + TP_IPV6_HLEN;
		union tp_addr relay, target, ip;

		if ((void *)(icmp + 24) > end || !(cfg->flags & TP_CFG_HAVE_V6))
			return;
		if (ip6->nexthdr != TP_IPPROTO_ICMPV6 || ip6->hop_limit != 255 || icmp[1] != 0)
			return;
		addr_load(&relay, cfg->relay_v6);
		addr_load(&target, icmp + 8);
		if (icmp[0] == TP_ND_NEIGHBOR_SOLICIT) {
			addr_load(&ip, &ip6->saddr);
			if (addr_eq(&target, &relay) && (ip.d[0] | ip.d[1]) != 0)
				neigh_learn(ctx, &ip, TP_FAMILY_V6, mac_load(data + 6), 0);
		} else if (icmp[0] == TP_ND_NEIGHBOR_ADVERT) {
			addr_load(&ip, &ip6->daddr);
			if (addr_eq(&target, &relay))
				return;
			if (addr_eq(&ip, &relay))
				neigh_learn(ctx, &target, TP_FAMILY_V6, mac_load(data + 6), 0);
			else if (ip.b[0] == 0xff)
				neigh_learn(ctx, &target, TP_FAMILY_V6, mac_load(data + 6), 1);
		}
	}
}

/* The learned next-hop MAC towards addr of family on ifindex (mac_load() form), or 0. */
static __always_inline __u64 neigh_mac(const union tp_addr *addr, __u8 family, __u32 ifindex)
{
	struct tp_neigh_key k __attribute__((aligned(8))) = {};
	struct tp_neigh_value *v;

	neigh_key(&k, addr, family, ifindex);
	v = bpf_map_lookup_elem(&tp_neigh, &k);
	return v ? *(__u64 *)v->mac : 0;
}

#endif /* TP_NEIGH_H */
