/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The real-datapath benchmark's baseline (bench/xdp-veth.bench.ts): the
 * least an XDP relay can do per frame, i.e. bounce it back where it came
 * from. Swaps the Ethernet addresses and returns XDP_TX, so the driver's
 * receive and transmit work is the same as for turn_router; only the relay
 * logic is missing.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_tx_baseline(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 *m = data;
	__u16 t0, t1, t2;

	if (data + 14 > end)
		return XDP_PASS;
	t0 = m[0];
	t1 = m[1];
	t2 = m[2];
	m[0] = m[3];
	m[1] = m[4];
	m[2] = m[5];
	m[3] = t0;
	m[4] = t1;
	m[5] = t2;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
