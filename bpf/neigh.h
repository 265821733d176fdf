/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The next hop of an output from the kernel's own tables, as the sidecar
 * mirrors them (tp_routes, tp_neigh; turn_router_shared.h): the route to the
 * destination names the interface and the gateway (or says the destination
 * is on-link), and the neighbour entry of that next hop on that interface
 * gives both Ethernet addresses. This is what makes the fast path work on a
 * relay that does not forward (bpf_fib_lookup then answers nothing), from
 * the first packet, whether or not the destination ever sent us anything.
 * Nothing here is learned from frames: a frame from the LAN cannot change
 * where relayed traffic goes.
 */
#ifndef TP_NEIGH_H
#define TP_NEIGH_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "turn_router_shared.h"
#include "consts.h"
#include "parse.h"
#include "maps.h"

/* Slot of an address in the per-CPU direct-mapped next-hop cache: the last
 * word (the IPv4 address, or the IPv6 interface id's tail) mixed with the
 * word before. */
static __always_inline __u32 addr_slot(const union tp_addr *a)
{
	__u32 h = a->w[3] ^ (a->w[2] >> 7);

	return (h ^ (h >> 16) ^ (h >> 8)) & (TP_NH_SLOTS - 1);
}

/* The mirror's answer for an output to daddr (of family) leaving by ifindex. */
struct tp_hop {
	__u64 smac;        /* as mac_load() reads it */
	__u64 dmac;
	__u16 max_ip_len;  /* the route's MTU, or 0xffff when it has none */
};

/*
 * Looks the destination up in tp_routes, then its next hop in tp_neigh.
 * Returns TP_CONTINUE with h filled, or why the stack must send it:
 * TP_PASS_NO_ROUTE (no unicast route), TP_PASS_OTHER_INTERFACE (the route
 * leaves by another interface: XDP_TX cannot), TP_PASS_TOO_BIG (over the
 * route's MTU) or TP_PASS_NO_NEIGH (the next hop is not resolved yet).
 */
static __always_inline int mirror_next_hop(const union tp_addr *daddr, __u8 family, __u32 ifindex,
					   __u16 ip_len, struct tp_hop *h)
{
	struct tp_route_key rk __attribute__((aligned(8))) = {};
	struct tp_neigh_key nk __attribute__((aligned(8))) = {};
	struct tp_route_value *r;
	struct tp_neigh_value *n;

	rk.prefixlen = 32 + 128;
	rk.family = family;
	addr_load((union tp_addr *)rk.addr, daddr->b);
	r = bpf_map_lookup_elem(&tp_routes, &rk);
	if (!r || r->kind != TP_ROUTE_UNICAST)
		return TP_PASS_NO_ROUTE;
	if (r->ifindex != ifindex)
		return TP_PASS_OTHER_INTERFACE;
	if (r->mtu != 0 && ip_len > r->mtu)
		return TP_PASS_TOO_BIG;
	if (r->gateway_family != 0) {
		addr_load((union tp_addr *)nk.addr, r->gateway);
		nk.family = r->gateway_family;
	} else {
		addr_load((union tp_addr *)nk.addr, daddr->b);
		nk.family = family;
	}
	nk.ifindex = ifindex;
	h->max_ip_len = r->mtu != 0 ? r->mtu : 0xffff;
	n = bpf_map_lookup_elem(&tp_neigh, &nk);
	if (!n)
		return TP_PASS_NO_NEIGH;
	/* mac + zero pad and own_mac + zero pad, 8-byte aligned in the map */
	h->dmac = *(__u64 *)n->mac;
	h->smac = *(__u64 *)n->own_mac;
	return TP_CONTINUE;
}

#endif /* TP_NEIGH_H */
