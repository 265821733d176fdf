/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The veth benchmark's receiver (bench/xdp-veth.bench.ts): drops every
 * frame. A veth end only accepts frames XDP_TX'd by its peer when it has an
 * XDP program itself, and with bpf_stats enabled this program's run count
 * is the number of frames the relay sent.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
