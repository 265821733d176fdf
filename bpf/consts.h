/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Kernel-only constants of the TURN router. Limits sit behind #ifndef so a
 * build can override them (make CFLAGS_EXTRA=-DTP_MAX_BINDINGS=...).
 */
#ifndef TP_CONSTS_H
#define TP_CONSTS_H

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* csum.h sums packet bytes as loaded (raw little-endian words); the padding
 * arithmetic there assumes a little-endian target (bpfel). */
#error "turn_router is written for little-endian BPF targets"
#endif

/* Default capacity of each binding map; the loader overrides max_entries. */
#ifndef TP_MAX_BINDINGS
#define TP_MAX_BINDINGS 65536
#endif

/* Largest IP packet the program will build. Bounds the variable packet
 * offsets the verifier must track and the full-checksum loop below. */
#ifndef TP_MAX_IP_LEN
#define TP_MAX_IP_LEN 9216
#endif

/* 1: next-hop MACs from bpf_fib_lookup first (rewrite.h), then the
 * mirrored routes and neighbours. 0: the mirror only; saves the lookup's
 * cost where forwarding is off anyway (the FIB then always answers
 * FWD_DISABLED). */
#ifndef TP_FIB_LOOKUP
#define TP_FIB_LOOKUP 1
#endif

/* Next-hop cache (maps.h nh_cache): slots per CPU (a power of two; 128 x
 * 64 bytes keeps a 2-CPU host's cache in one small allocation) and how
 * long an answer is trusted, in jiffies: 50 = 50 ms at HZ=1000, 200 ms at
 * HZ=250, 500 ms at HZ=100. After a route or a neighbour's MAC changes,
 * frames may go to the old next hop for at most this long after the mirror
 * has it (the sidecar's part is about 100 ms): within a second in all. 0
 * disables the cache. */
#ifndef TP_NH_SLOTS
#define TP_NH_SLOTS 128
#endif
#ifndef TP_NH_TTL_JIFFIES
#define TP_NH_TTL_JIFFIES 50
#endif

/* Capacity of the mirrored tables (maps.h tp_routes, tp_neigh). */
#ifndef TP_MAX_ROUTES
#define TP_MAX_ROUTES 16384
#endif
#ifndef TP_MAX_NEIGH
#define TP_MAX_NEIGH 16384
#endif

/* Header values of the packets the relay originates (it is an endpoint, not
 * a router: RFC 8656 section 14 "alternate behaviour", as a UDP socket would
 * send them). IPv4 outputs are atomic datagrams: DF set, ID 0 (RFC 6864). */
#define TP_OUT_TTL 64

#define TP_ETH_HLEN 14
#define TP_IPV4_HLEN 20
#define TP_IPV6_HLEN 40
#define TP_UDP_HLEN 8
#define TP_CHAN_HLEN 4

#define TP_ETH_P_IP 0x0800     /* host order; compare with bpf_htons() */
#define TP_ETH_P_IPV6 0x86DD
#define TP_ETH_P_8021Q 0x8100
#define TP_ETH_P_8021AD 0x88A8
#define TP_IPPROTO_UDP 17
#define TP_AF_INET 2
#define TP_AF_INET6 10

/* Helpers below return an XDP action / reason (>= 0) to stop, or this to
 * go on (Katran's FURTHER_PROCESSING convention). */
#define TP_CONTINUE (-1)

#endif /* TP_CONSTS_H */
