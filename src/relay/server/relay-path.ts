// The per-packet path through this process, and its counters. Client data
// (Send indication, RFC 8656 §10.2; ChannelData, §12.5) leaves from the
// allocation's port in the peer's family, to a permitted peer only; peer
// data arriving on an allocation port goes back to the client as ChannelData
// when a channel is bound to that peer (§12.6), else as a Data indication
// (§11.3). Whatever does not qualify is dropped and counted by the caller's
// drop(). Hot: header fields read in place, no result objects, no string keys.
import type { RelayDropReason } from '../../shared/reasons.ts';
import { METHOD, allocTransient, encodeMessage, type StunMessage } from '../stun/index.ts';
import { CHANNEL_DATA_DROP, channelDataHeader, encodeChannelDataAny } from './channel-data.ts';
import type { RandomSource } from './port-pool.ts';
import type { PeerPolicy } from '../policy/index.ts';
import type { Allocation, RelayState } from './state.ts';
import type { Family, LocalEndpoint, Output, ServerStats, TransportAddress } from './types.ts';
import type { ClientTransport } from '../../shared/endpoint.ts';
import type { Relayed } from '../../shared/stats.ts';

/** Largest UDP payload we will emit or accept (IPv4 limit). */
export const MAX_DATAGRAM = 65507;

type ByFamily = { ipv4: Relayed; ipv6: Relayed };

const relayedZero = (): Relayed => ({ toPeer: { packets: 0, bytes: 0 }, toClient: { packets: 0, bytes: 0 } });
const relayedCopy = (r: Relayed): Relayed => ({ toPeer: { ...r.toPeer }, toClient: { ...r.toClient } });
const byFamilyZero = (): ByFamily => ({ ipv4: relayedZero(), ipv6: relayedZero() });
const byFamilyCopy = (r: ByFamily): ByFamily => ({ ipv4: relayedCopy(r.ipv4), ipv6: relayedCopy(r.ipv6) });

function addInto(into: Relayed, r: Relayed): void {
  into.toPeer.packets += r.toPeer.packets;
  into.toPeer.bytes += r.toPeer.bytes;
  into.toClient.packets += r.toClient.packets;
  into.toClient.bytes += r.toClient.bytes;
}

export interface RelayPathOptions {
  /** Highest channel number accepted (see options.ts). */
  readonly maxChannel: number;
  /** Data indication transaction IDs. */
  readonly random: RandomSource;
  /** A permission is for an address, any port: the relay's own ports on it are refused per datagram. */
  readonly peerPolicy: Pick<PeerPolicy, 'isRelayItself'>;
}

export class RelayPath {
  readonly #state: RelayState;
  readonly #opts: RelayPathOptions;
  readonly #emit: (out: Output) => void;
  readonly #drop: (reason: RelayDropReason) => void;
  readonly #relayed = relayedZero();
  // The same, split by the client's transport and the family of the datagram
  // sent (the metrics' `transport` and `family` attributes); the per-family
  // totals are their sums.
  readonly #byTransport: Record<ClientTransport, ByFamily> = { udp: byFamilyZero(), tcp: byFamilyZero(), tls: byFamilyZero() };

  constructor(state: RelayState, opts: RelayPathOptions, emit: (out: Output) => void, drop: (reason: RelayDropReason) => void) {
    this.#state = state;
    this.#opts = opts;
    this.#emit = emit;
    this.#drop = drop;
  }

  counters(): Pick<ServerStats, 'relayed' | 'relayedByFamily'> {
    const relayedByFamily = byFamilyZero();
    for (const t of Object.values(this.#byTransport)) {
      addInto(relayedByFamily.ipv4, t.ipv4);
      addInto(relayedByFamily.ipv6, t.ipv6);
    }
    return { relayed: relayedCopy(this.#relayed), relayedByFamily };
  }

  /** Relayed for clients of `transport`, by the family of the datagram sent. */
  relayedBy(transport: ClientTransport): ByFamily {
    return byFamilyCopy(this.#byTransport[transport]);
  }

  // RFC 8656 §10.2
  sendIndication(msg: StunMessage, local: LocalEndpoint, client: TransportAddress): void {
    const allocation = this.#state.allocationOf(local, client);
    if (allocation === undefined) return this.#drop('no-allocation');
    const peer = msg.attributes.xorPeerAddress?.[0];
    const data = msg.attributes.data;
    if (peer === undefined || data === undefined) return this.#drop('malformed-send');
    if (this.#opts.peerPolicy.isRelayItself(peer.address, peer.port)) return this.#drop('relay-itself');
    this.#toPeer(allocation, peer, data);
  }

  // RFC 8656 §12.5
  channelDataFromClient(buf: Uint8Array, local: LocalEndpoint, client: TransportAddress): void {
    const channel = channelDataHeader(buf, this.#opts.maxChannel);
    if (channel < 0) return this.#drop(CHANNEL_DATA_DROP[-channel]!);
    const allocation = this.#state.allocationOf(local, client);
    if (allocation === undefined) return this.#drop('no-allocation');
    const bound = this.#state.activeChannel(allocation, channel);
    if (bound === undefined) return this.#drop('no-channel');
    this.#toPeer(allocation, bound.peer, buf, 4, 4 + ((buf[2]! << 8) | buf[3]!));
  }

  // RFC 8656 §11.3 (Data indication) and §12.6 (ChannelData)
  fromPeer(allocation: Allocation, data: Uint8Array, family: Family, peer: TransportAddress): void {
    if (peer.family !== family) return this.#drop('peer-family');
    if (!this.#state.hasPermission(allocation, peer.address)) return this.#drop('no-permission');
    const channel = this.#state.activeChannelToPeer(allocation, peer);
    let out: Uint8Array;
    if (channel !== undefined) {
      if (data.length > MAX_DATAGRAM - 4) return this.#drop('oversize');
      out = encodeChannelDataAny(channel.number, data);
    } else {
      // DATA + XOR-PEER-ADDRESS (+ header): 20 + 8 + 24 at most.
      if (data.length > MAX_DATAGRAM - 52) return this.#drop('oversize');
      out = encodeMessage({
        method: METHOD.DATA,
        cls: 'indication',
        transactionId: this.#opts.random(12).slice(0, 12),
        attributes: { xorPeerAddress: [peer], data },
      });
    }
    this.#relayed.toClient.packets++;
    this.#relayed.toClient.bytes += data.length;
    const t = this.#byTransport[allocation.local.transport ?? 'udp'];
    const byFamily = allocation.client.family === 4 ? t.ipv4.toClient : t.ipv6.toClient;
    byFamily.packets++;
    byFamily.bytes += data.length;
    this.#emit({ kind: 'send', from: allocation.local, to: allocation.client, data: out });
  }

  /** Relays data[start, end) to `peer` from the allocation's port in the peer's family. */
  #toPeer(allocation: Allocation, peer: TransportAddress, data: Uint8Array, start = 0, end = data.length): void {
    const from = allocation.relayEndpoints[peer.family];
    if (from === undefined) return this.#drop('peer-family');
    if (!this.#state.hasPermission(allocation, peer.address)) return this.#drop('no-permission');
    const n = end - start;
    this.#relayed.toPeer.packets++;
    this.#relayed.toPeer.bytes += n;
    const t = this.#byTransport[allocation.local.transport ?? 'udp'];
    const byFamily = peer.family === 4 ? t.ipv4.toPeer : t.ipv6.toPeer;
    byFamily.packets++;
    byFamily.bytes += n;
    // Copy: the input may be a view into a buffer the transport reuses.
    const out = allocTransient(n);
    out.set(start === 0 && end === data.length ? data : data.subarray(start, end));
    this.#emit({ kind: 'send', from, to: peer, data: out });
  }
}
