// CreatePermission (RFC 8656 §9.2) and ChannelBind (§12.2): the peer checks
// both share, the limits (limits.ts), then the table changes (state.ts emits
// the data-plane events, before the server queues the response).
import { ERROR, type StunMessage } from '../stun/index.ts';
import type { PeerPolicy } from '../policy/index.ts';
import { familyName } from './address.ts';
import { validChannel } from './channel-data.ts';
import { channelRefusal, peersRefusal, permissionsRefusal, type Limits } from './limits.ts';
import type { Reply } from './reply.ts';
import type { Allocation, RelayState } from './state.ts';
import type { TransportAddress } from './types.ts';

export interface PeerRules extends Limits {
  readonly peerPolicy: PeerPolicy;
  /** Highest channel number accepted (see options.ts). */
  readonly maxChannel: number;
}

/** 443 when the allocation has no relayed address in the peer's family, 403 when policy denies it. */
function checkPeer(rules: PeerRules, allocation: Allocation, peer: TransportAddress): Reply | undefined {
  if (allocation.ports[familyName(peer.family)] === undefined) return { kind: 'error', code: ERROR.PEER_ADDRESS_FAMILY_MISMATCH };
  if (!rules.peerPolicy.check(peer.address, peer.port).allowed) return { kind: 'error', code: ERROR.FORBIDDEN };
  return undefined;
}

// RFC 8656 §9.2
export function createPermission(state: RelayState, rules: PeerRules, msg: StunMessage, allocation: Allocation | undefined, now: number): Reply {
  if (allocation === undefined) return { kind: 'error', code: ERROR.ALLOCATION_MISMATCH };
  const peers = msg.attributes.xorPeerAddress ?? [];
  if (peers.length === 0) return { kind: 'error', code: ERROR.BAD_REQUEST };
  const tooMany = peersRefusal(rules, peers.length);
  if (tooMany) return tooMany;
  // All or nothing: check every peer before installing any.
  const added = new Set<string>();
  for (const peer of peers) {
    const refused = checkPeer(rules, allocation, peer);
    if (refused) return refused;
    if (!state.hasPermission(allocation, peer.address)) added.add(peer.address);
  }
  const over = permissionsRefusal(rules, allocation, added.size);
  if (over) return over;
  for (const peer of peers) state.installPermission(allocation, peer.address, now);
  return { kind: 'success', attributes: {} };
}

// RFC 8656 §12.2
export function channelBind(state: RelayState, rules: PeerRules, msg: StunMessage, allocation: Allocation | undefined, now: number): Reply {
  if (allocation === undefined) return { kind: 'error', code: ERROR.ALLOCATION_MISMATCH };
  const number = msg.attributes.channelNumber;
  const peer = msg.attributes.xorPeerAddress?.[0];
  if (number === undefined || peer === undefined || !validChannel(number, rules.maxChannel)) {
    return { kind: 'error', code: ERROR.BAD_REQUEST };
  }
  const refused = checkPeer(rules, allocation, peer);
  if (refused) return refused;
  if (state.channelConflict(allocation, number, peer)) return { kind: 'error', code: ERROR.BAD_REQUEST };
  // A new number counts against the channel limits; the permission §12.2
  // installs with it against the permission limit.
  const over =
    (allocation.channelsByNumber.has(number) ? undefined : channelRefusal(rules, state, allocation)) ??
    permissionsRefusal(rules, allocation, state.hasPermission(allocation, peer.address) ? 0 : 1);
  if (over) return over;
  // Binding first, then the permission (§12.2 installs or refreshes it too):
  // if the permission had lapsed, installing it announces the channel, so
  // the data plane gets one channel-bound with the new binding, and every
  // event goes out before the response.
  state.bindChannel(allocation, number, peer, now);
  state.installPermission(allocation, peer.address, now);
  return { kind: 'success', attributes: {} };
}
