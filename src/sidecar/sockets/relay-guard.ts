// What the relay may ask of the sidecar, checked frame by frame before the
// sidecar acts on it. The relay is the less trusted process (it parses
// untrusted TURN traffic); the sidecar binds ports as root, writes the kernel
// maps and sends from the host's network. So, per link connection:
//   - allocation ports only inside the configured range: OPEN_PORT,
//     SNAPSHOT_PORT, and every port of a binding the kernel would relay from;
//   - datagrams only from the listen port or a port the relay holds (asked
//     for and not closed since). One from another port of the range is
//     dropped, not refused: after a reconnect the relay may send before its
//     re-announcement reached that port, which has no socket then anyway;
//   - peers (a binding's, and a datagram's sent from an allocation port) pass
//     the peer policy, checked again here, not taken on the relay's word;
//   - control frames at most `controlPerSecond` (burst: two seconds' worth).
// A refusal is a violation: the bridge closes the link and reports it.
import type { Config } from '../../config/schema.ts';
import type { Frame } from '../../link/protocol.ts';
import type { ChannelBinding } from '../../shared/binding.ts';
import { portKey, type Family, type TransportAddress } from '../../shared/endpoint.ts';
import { createPeerPolicy, type PeerPolicy } from '../../shared/peer-policy.ts';
import type { SecurityRefusal } from '../security.ts';

export interface RelayLimits {
  /** Allocation ports the relay may open (config portRange). */
  readonly portRange: { readonly min: number; readonly max: number };
  readonly peerPolicy: PeerPolicy;
  /** Control frames per second (config linkControlRate). */
  readonly controlPerSecond: number;
}

/** The limits the configuration sets: the range, the same peer policy the relay applies, the control rate. */
export function relayLimits(config: Pick<Config, 'portRange' | 'allowedPeers' | 'deniedPeers' | 'linkControlRate'>): RelayLimits {
  return {
    portRange: config.portRange,
    // The relay's lists and structural refusals, checked per peer address. Not its
    // "relay itself" rule: that one is per port, the relay applies it per request
    // and per datagram, and an address-only version here would turn a client's
    // peer on the relay's host into a violation that closes the link.
    peerPolicy: createPeerPolicy({ allowed: config.allowedPeers, denied: config.deniedPeers }),
    controlPerSecond: config.linkControlRate,
  };
}

/** null: go ahead; 'drop': discard quietly (counted); otherwise the violation. */
export type Verdict = null | 'drop' | SecurityRefusal;

/** Peer verdicts remembered per address before the cache starts over. */
const POLICY_CACHE = 4096;

export class RelayGuard {
  /** Ports the relay asked for and has not closed (portKey). */
  private readonly held = new Set<number>();
  private readonly peerAllowed = new Map<string, boolean>();
  private tokens: number;
  private last: number;

  constructor(
    private readonly limits: RelayLimits,
    /** The listen sockets' ports (portKey): the relay answers clients from them. */
    private readonly listenPorts: ReadonlySet<number>,
    now = performance.now(),
  ) {
    this.tokens = limits.controlPerSecond * 2;
    this.last = now;
  }

  check(f: Frame, now = performance.now()): Verdict {
    switch (f.kind) {
      case 'packet-out':
        return this.datagram(f.from.family, f.from.port, f.to);
      case 'log':
      case 'counters':
        return null;
      case 'snapshot-port':
        return this.claim(f.family, f.port);
      case 'snapshot-channel':
        return this.binding(f.binding);
    }
    if (!this.take(now)) return { rule: 'control-rate', detail: `more than ${this.limits.controlPerSecond} control frames per second from the relay` };
    switch (f.kind) {
      case 'open-port':
        return this.claim(f.family, f.port);
      case 'close-port':
        this.held.delete(portKey(f.family, f.port));
        return null;
      case 'channel-bound':
      case 'channel-refreshed':
        return this.binding(f.binding);
      default:
        return null;
    }
  }

  private datagram(family: Family, port: number, to: TransportAddress): Verdict {
    const key = portKey(family, port);
    if (this.listenPorts.has(key)) return null;
    if (!this.held.has(key)) {
      return this.inRange(port) ? 'drop' : { rule: 'port-not-held', detail: `datagram from port ${port}, neither the listen port nor an allocation port` };
    }
    return this.peer(to.address);
  }

  private claim(family: Family, port: number): Verdict {
    if (!this.inRange(port)) return { rule: 'port-range', detail: `allocation port ${port} outside ${this.limits.portRange.min}-${this.limits.portRange.max}` };
    this.held.add(portKey(family, port));
    return null;
  }

  private binding(b: ChannelBinding): Verdict {
    for (const port of [b.allocationPort, b.allocationPorts.v4, b.allocationPorts.v6]) {
      if (port !== undefined && !this.inRange(port)) {
        return { rule: 'port-range', detail: `binding on port ${port} outside ${this.limits.portRange.min}-${this.limits.portRange.max}` };
      }
    }
    return this.peer(b.peer.address);
  }

  private peer(address: string): Verdict {
    let ok = this.peerAllowed.get(address);
    if (ok === undefined) {
      if (this.peerAllowed.size >= POLICY_CACHE) this.peerAllowed.clear();
      ok = this.limits.peerPolicy.check(address).allowed;
      this.peerAllowed.set(address, ok);
    }
    return ok ? null : { rule: 'peer-policy', detail: `peer ${address.slice(0, 64)} is denied by the peer policy` };
  }

  private inRange(port: number): boolean {
    return port >= this.limits.portRange.min && port <= this.limits.portRange.max;
  }

  /** One token of the control budget. */
  private take(now: number): boolean {
    const { controlPerSecond: rate } = this.limits;
    this.tokens = Math.min(rate * 2, this.tokens + ((now - this.last) * rate) / 1000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
