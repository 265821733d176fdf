/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Finding a binding (turn_router_shared.h, "bindings"): hash the 24-byte
 * key with the tables' seed, look in its two buckets, compare the whole key
 * in each candidate slot's binding. Every step is an array access the
 * verifier inlines. src/sidecar/bpf/bind-hash.ts computes the same hash.
 */
#ifndef TP_BINDINGS_H
#define TP_BINDINGS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "turn_router_shared.h"
#include "maps.h"

/* Seed words per direction, so a client key and a peer key with the same
 * bytes land differently. */
#define TP_DIR_CHAN 0
#define TP_DIR_PEER 1

/* A 64-bit finalizer (multiply, xor-shift): every input bit reaches every
 * output bit, so the seed decides where a key goes. */
static __always_inline __u64 tp_mix(__u64 h)
{
	h ^= h >> 31;
	h *= 0x7fb5d329728ea185ull;
	h ^= h >> 27;
	h *= 0x81dadef4bc2dd44dull;
	h ^= h >> 33;
	return h;
}

/* Hash of a 24-byte key (three 8-byte words) for one direction. */
static __always_inline __u64 tp_key_hash(const __u64 *w, const struct tp_bind_meta *m, __u32 dir)
{
	__u64 h = tp_mix(w[0] ^ m->seed[dir & 1]);

	h = tp_mix(h ^ w[1] ^ m->seed[(dir + 1) & 1]);
	return tp_mix(h ^ w[2] ^ dir);
}

/* The binding in bucket b of dir whose key at offset off equals key. */
static __always_inline const struct tp_binding *tp_in_bucket(void *dir, __u32 b, __u32 tag,
							    const __u64 *key, const __u32 off)
{
	const struct tp_bucket *bk = bpf_map_lookup_elem(dir, &b);

	if (!bk)
		return 0;
#pragma unroll
	for (int i = 0; i < TP_BUCKET_SLOTS; i++) {
		/* One load: the sidecar may change the slot at any time. */
		__u32 s = *(volatile const __u32 *)&bk->slot[i];
		__u32 idx = (s & TP_SLOT_INDEX_MASK) - 1;
		const struct tp_binding *e;
		const __u64 *k;

		if ((s >> TP_SLOT_TAG_SHIFT) != tag || !(s & TP_SLOT_INDEX_MASK))
			continue;
		e = bpf_map_lookup_elem(&tp_bindings, &idx);
		if (!e)
			continue;
		k = (const void *)e + off;
		if (k[0] == key[0] && k[1] == key[1] && k[2] == key[2])
			return e;
	}
	return 0;
}

/* The binding whose key (at offset off of struct tp_binding) equals key,
 * looked up in dir; 0 when none. */
static __always_inline const struct tp_binding *tp_find(void *dir, const __u64 *key, const __u32 off,
							const __u32 which)
{
	__u32 zero = 0;
	const struct tp_bind_meta *m = bpf_map_lookup_elem(&tp_bind_meta, &zero);
	const struct tp_binding *e;
	__u64 h;
	__u32 tag;

	if (!m || m->version != TP_BIND_VERSION)
		return 0;
	h = tp_key_hash(key, m, which);
	tag = (__u32)(h >> 56);
	e = tp_in_bucket(dir, (__u32)h & m->bucket_mask, tag, key, off);
	if (e)
		return e;
	return tp_in_bucket(dir, (__u32)(h >> 24) & m->bucket_mask, tag, key, off);
}

static __always_inline const struct tp_chan_value *tp_find_chan(const struct tp_chan_key *k)
{
	const struct tp_binding *e = tp_find(&tp_chan_to_peer, (const __u64 *)k, 0, TP_DIR_CHAN);

	return e ? &e->peer : 0;
}

static __always_inline const struct tp_peer_value *tp_find_peer(const struct tp_peer_key *k)
{
	const struct tp_binding *e =
		tp_find(&tp_peer_to_chan, (const __u64 *)k, __builtin_offsetof(struct tp_binding, peer), TP_DIR_PEER);

	return e ? (const struct tp_peer_value *)&e->chan : 0;
}

#endif /* TP_BINDINGS_H */
