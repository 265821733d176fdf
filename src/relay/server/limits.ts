// The configured limits on what one request, one allocation and one user may
// hold, and the answer when a request would exceed one (RFC 8656):
// - §7.2: "the server MAY choose to reject the request with a 486
//   (Allocation Quota Reached) error if it feels the client is trying to
//   exceed some locally defined allocation quota", defined "based on the
//   username"; and with 508 (Insufficient Capacity) when it cannot satisfy
//   the request for capacity. So a user's quotas (allocations, reserved
//   ports) answer 486, the relay's totals 508.
// - §9.2: a valid CreatePermission the server cannot satisfy "due to some
//   capacity limit or similar" gets 508; too many peers in one request is
//   such a limit (the request itself is well formed, so not 400).
// - §12.2: likewise 508 for a ChannelBind beyond a capacity limit.
// The user is the quota key a credential source names (CredentialSource.userOf),
// so freshly minted REST credentials of one user share one quota. Each
// refusal names its limit, counted in ServerStats.refused.
import { ERROR } from '../stun/index.ts';
import type { CredentialSource } from '../auth/index.ts';
import type { RelayRefusal } from '../../shared/reasons.ts';
import type { TurnServerOptions } from './options.ts';
import type { Reply } from './reply.ts';
import type { Allocation, RelayState } from './state.ts';

type ErrorReply = Extract<Reply, { kind: 'error' }>;

/** The limits of TurnServerOptions (undefined = none). */
export type Limits = Pick<
  TurnServerOptions,
  | 'maxAllocations' | 'maxAllocationsPerUser' | 'maxReservations' | 'maxReservationsPerUser'
  | 'maxPeersPerRequest' | 'maxPermissionsPerAllocation' | 'maxChannelsPerAllocation' | 'maxChannelsPerUser'
>;

/** Allocates started but not yet complete: they count against the allocation limits too. */
export interface PendingCounts {
  readonly size: number;
  countOf(user: string): number;
}

/** The user the quotas count a request against: the one its credential source names, else the username itself. */
export function quotaUser(credentials: CredentialSource, username: string): string {
  return credentials.userOf(username) ?? username;
}

const refusal = (code: number, refused: RelayRefusal): ErrorReply => ({ kind: 'error', code, refused });
/** Is `total` beyond `max`? */
const exceeds = (max: number | undefined, total: number): boolean => max !== undefined && total > max;

/**
 * A new Allocate of `user` (`reserve`: EVEN-PORT with the R bit). A pending
 * Allocate with the R bit holds its pair port without counting as a
 * reservation yet: the allocation quota and the port-open deadline bound those.
 */
export function allocationRefusal(limits: Limits, state: RelayState, pending: PendingCounts, user: string, reserve: boolean): ErrorReply | undefined {
  if (exceeds(limits.maxAllocationsPerUser, state.allocationsOf(user) + pending.countOf(user) + 1)) {
    return refusal(ERROR.ALLOCATION_QUOTA_REACHED, 'allocations-per-user');
  }
  if (exceeds(limits.maxAllocations, state.allocations + pending.size + 1)) return refusal(ERROR.INSUFFICIENT_CAPACITY, 'allocations-total');
  if (!reserve) return undefined;
  if (exceeds(limits.maxReservationsPerUser, state.reservationsOf(user) + 1)) return refusal(ERROR.ALLOCATION_QUOTA_REACHED, 'reservations-per-user');
  if (exceeds(limits.maxReservations, state.reservations.size + 1)) return refusal(ERROR.INSUFFICIENT_CAPACITY, 'reservations-total');
  return undefined;
}

/** A CreatePermission naming `peers` XOR-PEER-ADDRESS attributes. */
export function peersRefusal(limits: Limits, peers: number): ErrorReply | undefined {
  return exceeds(limits.maxPeersPerRequest, peers) ? refusal(ERROR.INSUFFICIENT_CAPACITY, 'peers-per-request') : undefined;
}

/** `added` permissions for peer IPs the allocation has none for yet (refreshing one is always allowed). */
export function permissionsRefusal(limits: Limits, allocation: Allocation, added: number): ErrorReply | undefined {
  return added > 0 && exceeds(limits.maxPermissionsPerAllocation, allocation.permissions.size + added)
    ? refusal(ERROR.INSUFFICIENT_CAPACITY, 'permissions-per-allocation')
    : undefined;
}

/** A channel number the allocation neither binds nor holds: one more channel for it and for its user. */
export function channelRefusal(limits: Limits, state: RelayState, allocation: Allocation): ErrorReply | undefined {
  if (exceeds(limits.maxChannelsPerAllocation, allocation.channelsByNumber.size + 1)) {
    return refusal(ERROR.INSUFFICIENT_CAPACITY, 'channels-per-allocation');
  }
  if (exceeds(limits.maxChannelsPerUser, state.channelsOf(allocation.user) + 1)) return refusal(ERROR.INSUFFICIENT_CAPACITY, 'channels-per-user');
  return undefined;
}
