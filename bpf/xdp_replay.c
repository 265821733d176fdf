/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The warm column of bench/xdp.bench.ts. BPF_PROG_TEST_RUN with repeat=N
 * runs a program N times on one buffer, so a program that rewrites its frame
 * sees its own output from the second run on. This wrapper puts the input
 * frame back before every run (head moved back to where it was, bytes
 * rewritten from replay_frame) and then tail-calls the program under test
 * (replay_target[0]): N runs of turn_router, or of the empty program, each
 * on the original frame, inside one syscall, as a NAPI poll would run them.
 * The bench times the empty program through the same wrapper, so the
 * wrapper's own cost is in both figures and the difference is the path's.
 *
 * Assumes the program under test moves only the head (the bench's frames
 * have no ChannelData padding and no Ethernet trailer).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define REPLAY_MAX 1536

struct replay_frame {
	__u32 len;                 /* host order: bytes of frame used */
	__u8 frame[REPLAY_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct replay_frame);
} replay_frame SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} replay_target SEC(".maps");

SEC("xdp")
int xdp_replay(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct replay_frame *r = bpf_map_lookup_elem(&replay_frame, &zero);
	__u32 len;
	int cur;

	if (!r)
		return XDP_ABORTED;
	len = r->len;
	if (len < 14 || len > REPLAY_MAX)
		return XDP_ABORTED;
	cur = bpf_xdp_get_buff_len(ctx);
	if (cur != (int)len && bpf_xdp_adjust_head(ctx, cur - (int)len))
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, r->frame, len))
		return XDP_ABORTED;
	bpf_tail_call(ctx, &replay_target, 0);
	return XDP_ABORTED;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
