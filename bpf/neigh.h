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
#include <bpf/bpf_helpers.h>
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

static __always_inline void neigh_key(struct tp_neigh_key *k, const union tp_addr *a, __u32 ifindex)
{
	addr_load((union tp_addr *)k->addr, a->b);
	k->ifindex = ifindex;
}

/* Slot of an address in the per-CPU direct-mapped caches: the last word
 * (the IPv4 address, or the IPv6 interface id's tail) mixed with the word
 * before. */
static __always_inline __u32 addr_slot(const union tp_addr *a)
{
	__u32 h = a->w[3] ^ (a->w[2] >> 7);

	return (h ^ (h >> 16) ^ (h >> 8)) & (TP_NH_SLOTS - 1);
}

/* Writes or refreshes the tp_neigh entry of the input's source. */
static __always_inline void neigh_store(struct xdp_md *ctx, const struct tp_in *in)
{
	struct tp_neigh_key k __attribute__((aligned(8))) = {};
	struct tp_neigh_value *v;
	__u64 now;

	neigh_key(&k, &in->saddr, ctx->ingress_ifindex);
	v = bpf_map_lookup_elem(&tp_neigh, &k);
	now = bpf_ktime_get_coarse_ns();
	if (v) {
		__u64 *mac = (__u64 *)v->mac; /* mac + zero pad, 8-byte aligned in the map */

		if (*mac != in->smac) {
			*mac = in->smac;
			v->seen_ns = now;
		} else if (now - v->seen_ns >= TP_NEIGH_REFRESH_NS) {
			v->seen_ns = now;
		}
		return;
	}
	{
		struct tp_neigh_value nv __attribute__((aligned(8))) = {};

		*(__u64 *)nv.mac = in->smac;
		nv.seen_ns = now;
		/* BPF_NOEXIST: another CPU may have added it meanwhile; either
		 * value is right. A full LRU evicts, so this does not fail for
		 * lack of room. */
		bpf_map_update_elem(&tp_neigh, &k, &nv, BPF_NOEXIST);
	}
}

/*
 * Records the input's source MAC as the next hop towards its source
 * address on the ingress interface. Called for every UDP frame to a relay
 * address; a source this CPU confirmed recently with the same MAC on the
 * same interface costs one per-CPU slot read and no tp_neigh access.
 * Concurrent writers on other CPUs store the same or a newer MAC as one
 * aligned 64-bit word, so a reader never sees half of one.
 */
static __always_inline void neigh_learn(struct xdp_md *ctx, const struct tp_in *in)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct nb_seen *s = 0;
	__u64 now = 0;

	if (in->smac == 0 || mac_is_group(in->smac))
		return;
	if (TP_NEIGH_CONFIRM_JIFFIES != 0) {
		__u32 slot = addr_slot(&in->saddr);

		s = bpf_map_lookup_elem(&nb_seen, &slot);
		if (s) {
			now = bpf_jiffies64();
			if (now < s->until && s->mac == in->smac && s->ifindex == ifindex &&
			    addr_eq(&s->addr, &in->saddr))
				return;
		}
	}
	neigh_store(ctx, in);
	if (s) {
		s->addr = in->saddr;
		s->mac = in->smac;
		s->ifindex = ifindex;
		s->until = now + TP_NEIGH_CONFIRM_JIFFIES;
	}
}

/* The learned next-hop MAC towards addr on ifindex (mac_load() form), or 0. */
static __always_inline __u64 neigh_mac(const union tp_addr *addr, __u32 ifindex)
{
	struct tp_neigh_key k __attribute__((aligned(8))) = {};
	struct tp_neigh_value *v;

	neigh_key(&k, addr, ifindex);
	v = bpf_map_lookup_elem(&tp_neigh, &k);
	return v ? *(__u64 *)v->mac : 0;
}

#endif /* TP_NEIGH_H */
