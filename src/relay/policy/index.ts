// Public API of peer policy (which peer addresses a client may reach: deny
// internal networks by default, CVE-2020-26262 class) and the per-source
// token-bucket rate limiter (IPv6 by prefix, bounded memory). Pure: time is a parameter.
export type { PeerPolicy, PeerPolicyOptions, PolicyDecision, DenyReason, EmbeddingKind, RelaySelf } from '../../shared/peer-policy.ts';
export { createPeerPolicy, DEFAULT_DENIED } from '../../shared/peer-policy.ts';
export type { Admission, RateLimiter, RateLimiterOptions } from './rate-limit.ts';
export { createRateLimiter, sourceKey } from './rate-limit.ts';
