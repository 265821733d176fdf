/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * turnpike's XDP fast path: relays TURN ChannelData <-> plain UDP between
 * clients and peers for channels the relay has bound (RFC 8656 section 12),
 * for IPv4 and IPv6 and across them, and ChannelData -> ChannelData when
 * both ends are allocations on this relay (a binding the relay itself no
 * longer installs: its peer policy refuses its own transport addresses).
 * Everything else is XDP_PASS with a counted reason: the sidecar's sockets
 * and the relay handle it.
 *
 * One policy switch (finish): a reason either passes the frame to the stack
 * or, once the frame is half rewritten, drops it; both are counted in
 * tp_reasons. Relayed frames are counted per CPU and path in tp_path_stats.
 *
 * Next-hop MACs come from the FIB when the host forwards, else from the
 * kernel's routes and neighbours as the sidecar mirrors them (neigh.h,
 * rewrite.h); frames never teach the program anything.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "turn_router_shared.h"
#include "consts.h"
#include "maps.h"
#include "csum.h"
#include "parse.h"
#include "neigh.h"
#include "bindings.h"
#include "rewrite.h"

/* Not a reason: the frame was rewritten and goes out with XDP_TX. */
#define TP_RELAYED 1000

/* This CPU's row of tp_reasons; see count_path. */
static __always_inline void count_reason(__u32 reason)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct tp_reason_row *row = bpf_map_lookup_elem(&tp_reasons, &cpu);

	if (row && reason < TP_REASON_MAX)
		row->count[reason] += 1;
}

/* This CPU's row of tp_path_stats (turn_router_shared.h): only this CPU
 * writes it, and XDP runs with bottom halves off, so plain adds suffice. */
static __always_inline void count_path(__u32 cpu, __u32 path, __u32 bytes)
{
	struct tp_path_row *row = bpf_map_lookup_elem(&tp_path_stats, &cpu);

	if (row && path < TP_PATH_MAX) {
		row->path[path].packets += 1;
		row->path[path].bytes += bytes;
	}
}

/* Sends a diagnostic unless this CPU used its budget for the current
 * one-second window. Perf events are for rare things only, so this is a
 * subprogram of its own: out of the relaying paths' instruction cache. */
static __attribute__((noinline)) int diag(struct xdp_md *ctx, __u32 kind, __u32 reason, __s32 ret,
					  __u32 path)
{
	__u32 zero = 0;
	const struct tp_config *cfg = bpf_map_lookup_elem(&tp_config, &zero);
	struct tp_diag_budget *b = bpf_map_lookup_elem(&tp_diag_budget, &zero);
	struct tp_diag_event ev = {};
	__u64 now;

	if (!b || !cfg)
		return 0;
	now = bpf_ktime_get_ns();
	if (now - b->window_start_ns >= 1000000000ull) {
		b->window_start_ns = now;
		b->sent = 0;
		b->suppressed = 0;
	}
	if (b->sent >= cfg->diag_per_sec) {
		b->suppressed += 1;
		return 0;
	}
	b->sent += 1;
	ev.kind = kind;
	ev.reason = reason;
	ev.ret = ret;
	ev.path = path;
	ev.timestamp_ns = now;
	bpf_perf_event_output(ctx, &tp_diag, BPF_F_CURRENT_CPU, &ev, sizeof(ev));
	return 0;
}

static __always_inline int drop(struct xdp_md *ctx, __u32 reason, __s32 ret, __u32 path)
{
	diag(ctx, TP_DIAG_DROP, reason, ret, path);
	return reason;
}

static __always_inline int relay_addr(const struct tp_config *cfg, int family, union tp_addr *a)
{
	if (family == 4) {
		if (!(cfg->flags & TP_CFG_HAVE_V4))
			return -1;
		addr_set_v4(a, *(const __u32 *)cfg->relay_v4);
	} else {
		if (!(cfg->flags & TP_CFG_HAVE_V6))
			return -1;
		addr_load(a, cfg->relay_v6);
	}
	return 0;
}

static __always_inline int is_alloc_port(const struct tp_config *cfg, __be16 port)
{
	__u16 p = bpf_ntohs(port);

	return p >= bpf_ntohs(cfg->port_min) && p <= bpf_ntohs(cfg->port_max);
}

/*
 * Turns the input frame into the output one. in_hlen: bytes in front of the
 * application payload in the input (Ethernet, IP, UDP, ChannelData header);
 * removed: checksum sum of what the input carried besides the payload
 * (ChannelData header, padding) beyond its UDP headers; pad: padding bytes.
 */
static __always_inline int emit_t(struct xdp_md *ctx, const struct tp_config *cfg,
				   const struct tp_in *in, struct tp_out *o,
				   __u32 in_hlen, __u64 removed, __u32 pad, const int in_fam, const int out_fam)
{
	__u32 ip_hlen = out_fam == 4 ? TP_IPV4_HLEN : TP_IPV6_HLEN;
	__u32 udp_len = out_udp_len(o);
	__u32 ip_len = ip_hlen + udp_len;
	__u32 out_hlen = TP_ETH_HLEN + ip_hlen + TP_UDP_HLEN + (o->chan ? TP_CHAN_HLEN : 0);
	__u32 cpu = bpf_get_smp_processor_id(); /* next-hop cache and counters */
	__u16 check;
	void *data, *end;
	long rc;
	int r;

	/* The relay refuses such peers; a binding that names one anyway must
	 * not put IPv4 in IPv6 form on the wire. */
	if (out_fam == 6 && addr_is_v4(&o->daddr))
		return TP_DROP_V4_MAPPED;
	if (ip_len > cfg->mtu || ip_len > TP_MAX_IP_LEN)
		return TP_PASS_TOO_BIG;

	if (in_fam == 4 && in->udp_csum == 0) {
		if (out_fam == 4) {
			check = 0; /* no checksum stays no checksum within IPv4 */
		} else {
			int sum = tp_csum_payload(ctx, in_hlen, o->n);

			if (sum < 0)
				return TP_PASS_TRUNCATED;
			check = csum_udp_field(~csum_fold(
				(__u64)sum + csum_udp_headers(&o->saddr, &o->daddr, 1, o->sport, o->dport,
							     udp_len, o->chan, o->channel, o->n)));
		}
	} else {
		removed += csum_udp_headers(&in->saddr, &in->daddr, in_fam == 6, in->sport,
					    in->dport, in->udp_len, 0, 0, 0);
		check = csum_udp_field(csum_replace(
			in->udp_csum, removed,
			csum_udp_headers(&o->saddr, &o->daddr, out_fam == 6, o->sport, o->dport,
					 udp_len, o->chan, o->channel, o->n)));
	}

	r = fib_macs(ctx, o, ip_len, cpu);
	if (r != TP_CONTINUE)
		return r;

	/* First change to the frame. If the driver lacks headroom nothing has
	 * changed yet, so userspace can still relay it. Channel -> channel
	 * within a family keeps the header length: no helper call then. */
	if (in_hlen != out_hlen && bpf_xdp_adjust_head(ctx, (int)in_hlen - (int)out_hlen))
		return TP_PASS_NO_HEADROOM;
	if (pad + in->trailer) {
		rc = bpf_xdp_adjust_tail(ctx, -(int)(pad + in->trailer));
		if (rc)
			return drop(ctx, TP_DROP_ADJUST_TAIL, rc, o->path);
	}

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (out_fam == 4) {
		struct iphdr *ip = data + TP_ETH_HLEN;
		struct udphdr *udp = data + TP_ETH_HLEN + TP_IPV4_HLEN;
		__be16 *ch = data + TP_ETH_HLEN + TP_IPV4_HLEN + TP_UDP_HLEN;

		if ((void *)(udp + 1) > end)
			return drop(ctx, TP_DROP_BOUNDS, 0, o->path);
		write_eth(data, o, out_fam);
		write_ipv4(ip, o, ip_len);
		write_udp(udp, o, udp_len, check);
		if (o->chan) {
			if ((void *)(ch + 2) > end)
				return drop(ctx, TP_DROP_BOUNDS, 0, o->path);
			ch[0] = o->channel;
			ch[1] = bpf_htons(o->n);
		}
	} else {
		struct ipv6hdr *ip6 = data + TP_ETH_HLEN;
		struct udphdr *udp = data + TP_ETH_HLEN + TP_IPV6_HLEN;
		__be16 *ch = data + TP_ETH_HLEN + TP_IPV6_HLEN + TP_UDP_HLEN;

		if ((void *)(udp + 1) > end)
			return drop(ctx, TP_DROP_BOUNDS, 0, o->path);
		write_eth(data, o, out_fam);
		write_ipv6(ip6, o, udp_len);
		write_udp(udp, o, udp_len, check);
		if (o->chan) {
			if ((void *)(ch + 2) > end)
				return drop(ctx, TP_DROP_BOUNDS, 0, o->path);
			ch[0] = o->channel;
			ch[1] = bpf_htons(o->n);
		}
	}
	count_path(cpu, o->path, o->n);
	return TP_RELAYED;
}

/* emit_t with the families as constants: one copy of the rewrite per input
 * and output family, each without the other family's branches (and the
 * registers they would keep alive). */
static __always_inline int emit(struct xdp_md *ctx, const struct tp_config *cfg,
				const struct tp_in *in, struct tp_out *o,
				__u32 in_hlen, __u64 removed, __u32 pad, const int in_fam)
{
	return o->family == 4 ? emit_t(ctx, cfg, in, o, in_hlen, removed, pad, in_fam, 4)
			      : emit_t(ctx, cfg, in, o, in_hlen, removed, pad, in_fam, 6);
}

/* Path index: base + input family (IPv6: +2) + output family (IPv6: +1). */
static __always_inline __u32 path_of(__u32 base, int in_family, int out_family)
{
	return base + (in_family == 6 ? 2 : 0) + (out_family == 6 ? 1 : 0);
}

/* What from_peer/from_client decide: the output, and what emit must know
 * of the input beyond struct tp_in. Both directions end in the one emit()
 * call of route(), so the rewrite exists once per family pair in the
 * program instead of once per direction. */
struct tp_plan {
	struct tp_out o;
	__u64 removed;   /* see emit_t */
	__u32 in_hlen;
	__u32 pad;
};

/* UDP from a peer to an allocation port -> ChannelData to the client. */
static __always_inline int from_peer(const struct tp_config *cfg, const struct tp_in *in,
				     struct tp_plan *p, const int in_fam)
{
	struct tp_peer_key key __attribute__((aligned(8))) = {};
	const struct tp_peer_value *v;
	struct tp_out *o = &p->o;

	addr_load((union tp_addr *)key.peer_addr, in->saddr.b);
	key.peer_port = in->sport;
	key.alloc_port = in->dport;
	key.peer_family = in_fam;
	v = tp_find_peer(&key);
	if (!v)
		return TP_PASS_NO_BINDING;

	addr_load(&o->daddr, v->client_addr);
	o->family = v->client_family;
	if (relay_addr(cfg, o->family, &o->saddr))
		return TP_PASS_FAMILY_UNAVAILABLE;
	o->sport = cfg->listen_port;
	o->dport = v->client_port;
	o->chan = 1;
	o->channel = v->channel;
	o->n = in->udp_len - TP_UDP_HLEN;
	o->path = path_of(TP_PATH_UDP_TO_CHAN_44, in_fam, o->family);
	p->in_hlen = TP_ETH_HLEN + (in_fam == 4 ? TP_IPV4_HLEN : TP_IPV6_HLEN) + TP_UDP_HLEN;
	p->removed = 0;
	p->pad = 0;
	return TP_CONTINUE;
}

/* Checksum sum of 0-3 padding bytes at q (q = payload + 4 + len). A byte
 * at an even offset from the UDP header is the low byte of its word. */
static __always_inline int pad_sum(void *q, void *end, __u32 pad, __u32 odd_start, __u64 *sum)
{
	__u32 sh0 = odd_start ? 8 : 0; /* shift of bytes 0 and 2 */
	__u32 sh1 = odd_start ? 0 : 8; /* shift of byte 1 */
	__u64 s = 0;

	if (pad >= 1) {
		if (q + 1 > end)
			return -1;
		s += (__u32)(*(__u8 *)q) << sh0;
	}
	if (pad >= 2) {
		if (q + 2 > end)
			return -1;
		s += (__u32)(*(__u8 *)(q + 1)) << sh1;
	}
	if (pad >= 3) {
		if (q + 3 > end)
			return -1;
		s += (__u32)(*(__u8 *)(q + 2)) << sh0;
	}
	*sum = s;
	return 0;
}

/* ChannelData from a client to the listen port -> UDP to the peer, or
 * ChannelData to another client of this relay. */
static __always_inline int from_client(struct xdp_md *ctx, const struct tp_config *cfg,
				       const struct tp_in *in, struct tp_plan *p, const int in_fam)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 l3 = in_fam == 4 ? TP_IPV4_HLEN : TP_IPV6_HLEN;
	void *payload = data + TP_ETH_HLEN + TP_UDP_HLEN + l3;
	struct tp_chan_key key __attribute__((aligned(8))) = {};
	const struct tp_chan_value *v;
	struct tp_out *o = &p->o;
	union tp_addr peer;
	__u32 ulen = in->udp_len - TP_UDP_HLEN; /* UDP payload length */
	__u32 len, pad;
	__u16 channel;
	__be16 *hdr = payload;
	__u64 removed;

	if (ulen < TP_CHAN_HLEN)
		return TP_PASS_STUN; /* too short for ChannelData: let the relay judge */
	if ((void *)(hdr + 2) > end)
		return TP_PASS_TRUNCATED;
	channel = bpf_ntohs(hdr[0]);
	if ((channel & 0xc000) == 0)
		return TP_PASS_STUN;
	/* 0x4000-0x7FFF: RFC 8656 binds only up to 0x4FFF, but RFC 5766 clients
	 * (coturn's among them) use the whole 01 prefix; the binding map decides. */
	if ((channel & 0xc000) != 0x4000)
		return TP_PASS_BAD_CHANNEL_DATA;
	len = bpf_ntohs(hdr[1]);
	if (len > ulen - TP_CHAN_HLEN)
		return TP_PASS_BAD_CHANNEL_DATA;
	pad = ulen - TP_CHAN_HLEN - len;
	if (pad > 3)
		return TP_PASS_BAD_CHANNEL_DATA;
	if (len > TP_MAX_IP_LEN)
		return TP_PASS_TOO_BIG;
	if (pad_sum(payload + TP_CHAN_HLEN + len, end, pad, len & 1, &removed))
		return TP_PASS_TRUNCATED;
	removed += hdr[0] + hdr[1];

	addr_load((union tp_addr *)key.client_addr, in->saddr.b);
	key.client_port = in->sport;
	key.channel = hdr[0];
	key.client_family = in_fam;
	v = tp_find_chan(&key);
	if (!v)
		return TP_PASS_NO_BINDING;

	addr_load(&peer, v->peer_addr);
	o->family = v->peer_family;
	if (relay_addr(cfg, o->family, &o->saddr))
		return TP_PASS_FAMILY_UNAVAILABLE;
	o->n = len;

	if (addr_eq(&peer, &o->saddr)) {
		/* The peer is this relay. Only another allocation here is a
		 * valid target (both ends allocated on this relay, the other
		 * end's channel bound: the sidecar names its client in this
		 * value); anything else is the relay's to refuse. */
		if (!is_alloc_port(cfg, v->peer_port) || v->partner_channel == 0)
			return TP_PASS_NO_BINDING;
		addr_load(&o->daddr, v->partner_addr);
		o->family = v->partner_family;
		if (relay_addr(cfg, o->family, &o->saddr))
			return TP_PASS_FAMILY_UNAVAILABLE;
		o->sport = cfg->listen_port;
		o->dport = v->partner_port;
		o->chan = 1;
		o->channel = v->partner_channel;
		o->path = path_of(TP_PATH_CHAN_TO_CHAN_44, in_fam, o->family);
	} else {
		o->daddr = peer;
		o->sport = v->alloc_port;
		o->dport = v->peer_port;
		o->chan = 0;
		o->channel = 0;
		o->path = path_of(TP_PATH_CHAN_TO_UDP_44, in_fam, o->family);
	}
	p->in_hlen = TP_ETH_HLEN + l3 + TP_UDP_HLEN + TP_CHAN_HLEN;
	p->removed = removed;
	p->pad = pad;
	return TP_CONTINUE;
}

/* Everything after the Ethertype for one input family (a constant: route()
 * has one copy per family, so nothing below branches on it at run time). */
static __always_inline int route_t(struct xdp_md *ctx, const struct tp_config *cfg, const int in_fam)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct tp_in in = {};
	struct tp_plan p; /* every field is set before it is read (from_*, fib_macs) */
	int r;

	r = parse_ip(data, end, cfg, &in, in_fam);
	if (r != TP_CONTINUE)
		return r;
	if (in.dport == cfg->listen_port) {
		r = from_client(ctx, cfg, &in, &p, in_fam);
	} else if (bpf_ntohs(cfg->port_min) > bpf_ntohs(cfg->port_max)) {
		diag(ctx, TP_DIAG_MISCONFIG, TP_PASS_NOT_RELAY_PORT, 0, TP_PATH_MAX);
		return TP_PASS_NOT_RELAY_PORT;
	} else if (is_alloc_port(cfg, in.dport)) {
		r = from_peer(cfg, &in, &p, in_fam);
	} else {
		return TP_PASS_NOT_RELAY_PORT;
	}
	if (r != TP_CONTINUE)
		return r;
	return emit(ctx, cfg, &in, &p.o, p.in_hlen, p.removed, p.pad, in_fam);
}

static __always_inline int route(struct xdp_md *ctx, const struct tp_config *cfg)
{
	int fam = 0, r;

	r = parse_eth((void *)(long)ctx->data, (void *)(long)ctx->data_end, &fam);
	if (r != TP_CONTINUE)
		return r;
	return fam == 4 ? route_t(ctx, cfg, 4) : route_t(ctx, cfg, 6);
}

/* The one policy switch: relayed -> TX; a drop reason -> DROP; else PASS. */
static __always_inline int finish(int r)
{
	if (r == TP_RELAYED)
		return XDP_TX;
	count_reason(r);
	if ((__u32)r < TP_REASON_MAX && (TP_DROP_REASONS_MASK >> r) & 1)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp")
int turn_router(struct xdp_md *ctx)
{
	__u32 zero = 0;
	const struct tp_config *cfg = bpf_map_lookup_elem(&tp_config, &zero);

	if (!cfg || cfg->flags == 0)
		return finish(TP_PASS_NOT_CONFIGURED);
	return finish(route(ctx, cfg));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
