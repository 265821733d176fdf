// What the stateful-server fuzzer checks after every step. The oracle keeps
// only what the server's own outputs announce (ports opened and closed,
// channels bound and unbound, the answers it sent) plus the permissions its
// success answers granted, and holds every output of a step against it:
// - 'send' from the listen port goes to the step's own source (an answer to
//   it), or to the client of the allocation a permitted peer's datagram came
//   in on, or to an Allocate settled by a port result or a timeout;
// - 'send' from an allocation port goes, for that allocation's client, to a
//   peer with a permission on it, never to the relay itself;
// - userspace relays ChannelData exactly when the kernel holds the binding
//   (both directions), and peer data exactly when the peer is permitted;
// - open-port never hands out a port that is open or being opened, inside
//   the range and never the listen port; close-port closes only those;
// - channel events are consistent (bound once, refreshed or unbound only when
//   bound), name an existing allocation, its port of the peer's family and a
//   permitted peer, and come before the answer that depends on them;
// - after the step, the events agree with snapshot() and stats(), and the
//   server's internal-error guard never caught anything.
import { isDeepStrictEqual } from 'node:util';
import { METHOD, classify, decodeMessage, verifyIntegrity, type StunMessage } from '../../../src/relay/stun/index.ts';
import { channelDataHeader } from '../../../src/relay/server/channel-data.ts';
import { MAX_DATAGRAM, type TurnServer } from '../../../src/relay/server/index.ts';
import type { ChannelBinding, DataPlaneEvent, Family, LocalEndpoint, Output, TransportAddress } from '../../../src/relay/server/types.ts';
import type { PeerPolicy } from '../../../src/relay/policy/index.ts';
import { portKey } from '../../../src/shared/endpoint.ts';

export const PERMISSION_MS = 300_000;

/** What a step fed the server. */
export type StepInput =
  | { readonly kind: 'datagram'; readonly local: LocalEndpoint; readonly remote: TransportAddress; readonly data: Uint8Array; readonly now: number }
  | { readonly kind: 'port-result'; readonly token: number; readonly ok: boolean; readonly now: number }
  | { readonly kind: 'timeout'; readonly now: number }
  | { readonly kind: 'port-lost'; readonly family: Family; readonly port: number; readonly now: number };

interface ModelAllocation {
  readonly key: string;
  readonly client: TransportAddress;
  readonly local: LocalEndpoint;
  readonly ports: Partial<Record<Family, number>>;
  /** Peer IP -> expiry (ms). */
  readonly permissions: Map<string, number>;
}

interface PendingOpen {
  readonly token: number;
  readonly family: Family;
  readonly port: number;
  /** The Allocate's 5-tuple, its client and listen endpoint. */
  readonly allocate: string;
  readonly client: TransportAddress;
  readonly local: LocalEndpoint;
}

const tupleKey = (local: LocalEndpoint, client: TransportAddress) => `${local.family}/${local.port}|${client.address}|${client.port}`;
const sameAddress = (a: TransportAddress, b: TransportAddress) => a.family === b.family && a.address === b.address && a.port === b.port;
const sameLocal = (a: LocalEndpoint, b: LocalEndpoint) => a.family === b.family && a.port === b.port;
const bindingKey = (client: TransportAddress, channel: number) => `${client.family}|${client.address}|${client.port}#${channel}`;
const bytesEqual = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

export interface OracleOptions {
  readonly listenPort: number;
  readonly portRange: { readonly min: number; readonly max: number };
  readonly relayAddresses: { readonly v4?: string; readonly v6?: string };
  readonly maxChannel: number;
  readonly policy: PeerPolicy;
  /** The long-term key of a username, to verify the integrity of answers to its requests. */
  readonly keyOf: (username: string) => Uint8Array | undefined;
}

export class ServerOracle {
  readonly #o: OracleOptions;
  readonly #server: TurnServer;
  readonly #allocations = new Map<string, ModelAllocation>();
  readonly #byPort = new Map<number, ModelAllocation>();
  readonly #opening = new Map<number, PendingOpen>(); // by portKey
  readonly #tokens = new Map<number, PendingOpen>();
  readonly #kernel = new Map<string, ChannelBinding>();
  /** Ports whose allocation just closed them; close-port must follow. */
  readonly #closing = new Set<number>();

  constructor(server: TurnServer, opts: OracleOptions) {
    this.#server = server;
    this.#o = opts;
  }

  /** Tokens of the open-ports still awaiting an answer. */
  tokens(): number[] {
    return [...this.#tokens.keys()];
  }

  /** Relayed ports of live allocations, and of ports being opened. */
  ports(): { family: Family; port: number }[] {
    return [...this.#byPort.keys(), ...this.#opening.keys()].map((k) => ({ family: (Math.floor(k / 65536) as Family), port: k % 65536 }));
  }

  /** The relayed port of `client`'s allocation in `family`, if it has one. */
  portOf(client: TransportAddress, family: Family): number | undefined {
    return this.#allocationOfClient(client)?.ports[family];
  }

  /** Peer addresses `client`'s allocation has a permission for. */
  permittedPeers(client: TransportAddress): string[] {
    return [...(this.#allocationOfClient(client)?.permissions.keys() ?? [])];
  }

  /** Channels the kernel would relay for this client. */
  channelsOf(client: TransportAddress): number[] {
    return [...this.#kernel.values()].filter((b) => sameAddress(b.client, client)).map((b) => b.channel);
  }

  /** Checks one step's outputs; returns what went wrong (empty when all held). */
  check(step: StepInput, outs: readonly Output[], internalErrorsBefore: number): string[] {
    const problems: string[] = [];
    const problem = (m: string) => problems.push(m);
    if (step.kind === 'timeout' || step.kind === 'port-lost') this.#expirePermissions(step.now);
    const settling = this.#settling(step);
    if (step.kind === 'port-result') {
      // An answered token is spent; a failed open frees its port without a close-port.
      const p = this.#tokens.get(step.token);
      this.#tokens.delete(step.token);
      if (p && !step.ok) this.#forgetOpen(p);
    }
    const request = step.kind === 'datagram' && step.local.port === this.#o.listenPort ? this.#decoded(step.data) : undefined;
    let answered = false;
    const sends: Extract<Output, { kind: 'send' }>[] = [];
    for (const o of outs) {
      switch (o.kind) {
        case 'open-port':
          this.#openPort(step, o, settling, problem);
          break;
        case 'close-port': {
          const k = portKey(o.family, o.port);
          const pending = this.#opening.get(k);
          if (pending) this.#forgetOpen(pending);
          else if (!this.#closing.delete(k)) problem(`close-port ${o.family}/${o.port}: not open nor being opened`);
          break;
        }
        case 'event':
          if (answered && (step.kind === 'port-result' || request?.cls === 'request')) problem(`event ${o.event.type} after the answer`);
          this.#event(o.event, problem);
          break;
        case 'send':
          if (o.from.port === this.#o.listenPort) answered = true;
          sends.push(o);
          break;
      }
    }
    for (const s of sends) this.#checkSend(step, s, request, settling, problem);
    if (step.kind === 'datagram') this.#checkRelayed(step, request, sends, problem);
    if (this.#closing.size > 0) problem(`ports closed by an allocation but no close-port: ${[...this.#closing].join(',')}`);
    this.#closing.clear();
    this.#checkState(internalErrorsBefore, problem);
    return problems;
  }

  // -- outputs -------------------------------------------------------------------------

  #decoded(data: Uint8Array): StunMessage | undefined {
    if (classify(data) !== 'stun') return undefined;
    const r = decodeMessage(data);
    return r.kind === 'message' ? r.message : undefined;
  }

  /** The Allocates this step may settle (answer, retry, fail): by 5-tuple. */
  #settling(step: StepInput): Map<string, PendingOpen> {
    const out = new Map<string, PendingOpen>();
    if (step.kind === 'port-result') {
      const p = this.#tokens.get(step.token);
      if (p) out.set(p.allocate, p);
    } else if (step.kind === 'timeout') {
      for (const p of this.#opening.values()) out.set(p.allocate, p);
    }
    return out;
  }

  #openPort(step: StepInput, o: Extract<Output, { kind: 'open-port' }>, settling: Map<string, PendingOpen>, problem: (m: string) => void): void {
    const k = portKey(o.family, o.port);
    if (o.port < this.#o.portRange.min || o.port > this.#o.portRange.max || o.port === this.#o.listenPort) problem(`open-port ${o.port} outside the range or the listen port`);
    if (this.#byPort.has(k) || this.#opening.has(k)) problem(`open-port ${o.family}/${o.port}: the port is already ${this.#byPort.has(k) ? 'an allocation\'s' : 'being opened'}`);
    if (this.#tokens.has(o.token)) problem(`open-port token ${o.token} already in flight`);
    let owner: Omit<PendingOpen, 'token' | 'family' | 'port'> | undefined;
    if (step.kind === 'datagram') owner = { allocate: tupleKey(step.local, step.remote), client: step.remote, local: step.local };
    else if (step.kind === 'port-result') owner = settling.values().next().value;
    if (!owner) return problem(`open-port in a ${step.kind} step with no Allocate to own it`);
    const p: PendingOpen = { allocate: owner.allocate, client: owner.client, local: owner.local, token: o.token, family: o.family, port: o.port };
    this.#opening.set(k, p);
    this.#tokens.set(o.token, p);
  }

  #forgetOpen(p: PendingOpen): void {
    this.#opening.delete(portKey(p.family, p.port));
    this.#tokens.delete(p.token);
  }

  #event(e: DataPlaneEvent, problem: (m: string) => void): void {
    switch (e.type) {
      case 'allocation-port-opened': {
        const k = portKey(e.family, e.port);
        const p = this.#opening.get(k);
        if (!p || !sameAddress(p.client, e.client)) return problem(`allocation-port-opened ${e.family}/${e.port} for ${e.client.address}: no such port being opened for it`);
        this.#forgetOpen(p);
        let a = this.#allocations.get(p.allocate);
        if (!a) this.#allocations.set(p.allocate, (a = { key: p.allocate, client: p.client, local: p.local, ports: {}, permissions: new Map() }));
        if (a.ports[e.family] !== undefined) problem(`allocation ${a.key} got a second ${e.family} port`);
        a.ports[e.family] = e.port;
        this.#byPort.set(k, a);
        return;
      }
      case 'allocation-port-closed': {
        const k = portKey(e.family, e.port);
        const a = this.#byPort.get(k);
        if (!a || !sameAddress(a.client, e.client)) return problem(`allocation-port-closed ${e.family}/${e.port}: not an allocation port of ${e.client.address}`);
        this.#byPort.delete(k);
        delete a.ports[e.family];
        this.#closing.add(k);
        if (a.ports[4] === undefined && a.ports[6] === undefined) {
          this.#allocations.delete(a.key);
          for (const b of this.#kernel.values()) if (sameAddress(b.client, a.client)) problem(`allocation of ${a.client.address}:${a.client.port} closed with channel 0x${b.channel.toString(16)} still bound`);
        }
        return;
      }
      case 'channel-bound':
      case 'channel-refreshed':
      case 'channel-unbound': {
        const b = e.binding;
        const k = bindingKey(b.client, b.channel);
        const held = this.#kernel.get(k);
        if (e.type === 'channel-bound' ? held !== undefined : held === undefined) return problem(`${e.type} for channel 0x${b.channel.toString(16)} of ${b.client.address}:${b.client.port}, ${held ? 'already' : 'not'} bound`);
        if (held && !sameAddress(held.peer, b.peer)) problem(`${e.type} moves channel 0x${b.channel.toString(16)} to another peer`);
        if (e.type === 'channel-unbound') return void this.#kernel.delete(k);
        const a = this.#allocationOfClient(b.client);
        if (!a) return problem(`${e.type}: no allocation for client ${b.client.address}:${b.client.port}`);
        if (a.ports[b.peer.family] !== b.allocationPort) problem(`${e.type}: allocation port ${b.allocationPort} is not the allocation's ${b.peer.family} port`);
        if (!this.#o.policy.check(b.peer.address, b.peer.port).allowed) problem(`${e.type}: peer ${b.peer.address}:${b.peer.port} is refused by the peer policy`);
        if (b.channel < 0x4000 || b.channel > this.#o.maxChannel) problem(`${e.type}: channel 0x${b.channel.toString(16)} out of range`);
        this.#kernel.set(k, b);
        return;
      }
    }
  }

  #allocationOfClient(client: TransportAddress): ModelAllocation | undefined {
    for (const a of this.#allocations.values()) if (sameAddress(a.client, client)) return a;
    return undefined;
  }

  #checkSend(step: StepInput, s: Extract<Output, { kind: 'send' }>, request: StunMessage | undefined, settling: Map<string, PendingOpen>, problem: (m: string) => void): void {
    const to = `${s.to.address}:${s.to.port}`;
    if (s.data.length > MAX_DATAGRAM) problem(`send of ${s.data.length} bytes to ${to}`);
    if (s.from.port !== this.#o.listenPort) return this.#checkToPeer(step, s, problem);
    if (step.kind === 'datagram' && step.local.port === this.#o.listenPort) {
      if (!sameAddress(s.to, step.remote) || !sameLocal(s.from, step.local)) return problem(`a client datagram answered to ${to}, not its source`);
      return this.#checkAnswer(step.data, s.data, step.local, s.to, request, step.now, problem);
    }
    if (step.kind === 'datagram') {
      // Peer data in, to the client of the allocation it arrived at.
      const a = this.#byPort.get(portKey(step.local.family, step.local.port));
      if (!a || !sameAddress(a.client, s.to) || !sameLocal(a.local, s.from)) return problem(`peer data relayed to ${to}, not the allocation's client`);
      return;
    }
    const settled = [...settling.values()].find((p) => sameAddress(p.client, s.to) && sameLocal(p.local, s.from));
    if (!settled) return problem(`${step.kind} step sent to ${to}, which has no Allocate it settled`);
    const r = decodeMessage(s.data);
    if (r.kind !== 'message' || r.message.method !== METHOD.ALLOCATE || (r.message.cls !== 'success' && r.message.cls !== 'error')) return problem(`${step.kind} step sent something other than an Allocate answer to ${to}`);
    const a = this.#allocations.get(settled.allocate);
    if (r.message.cls === 'error') {
      if (r.message.attributes.errorCode?.code !== 508) problem(`Allocate refused with ${r.message.attributes.errorCode?.code}, not 508`);
      if (a) problem('Allocate refused although the allocation exists');
      return;
    }
    if (!a) return problem('Allocate success without an allocation');
    this.#checkRelayedAddresses(a, r.message, problem);
  }

  /** An answer to a client's own datagram: a response to its request, with its transaction, protected with its key when it is. */
  #checkAnswer(input: Uint8Array, out: Uint8Array, local: LocalEndpoint, client: TransportAddress, request: StunMessage | undefined, now: number, problem: (m: string) => void): void {
    const r = decodeMessage(out);
    if (r.kind !== 'message') return problem(`answer does not decode: ${JSON.stringify(r)}`);
    const m = r.message;
    if (m.cls !== 'success' && m.cls !== 'error') return problem(`answer of class ${m.cls}`);
    if (!bytesEqual(m.transactionId, input.subarray(8, 20))) return problem('answer with another transaction id');
    const type = (input[0]! << 8) | input[1]!;
    if ((type & 0x0110) !== 0) problem('answered a datagram that is not a request');
    if (m.method !== ((type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2))) problem('answer for another method');
    if (!m.hasFingerprint) problem('answer without FINGERPRINT');
    const key = request?.attributes.username === undefined ? undefined : this.#o.keyOf(request.attributes.username);
    if (m.integrity && (!key || verifyIntegrity(m, key).result !== 'ok')) problem('answer integrity does not verify with the key of the request\'s user');
    if (m.cls !== 'success' || !request) return;
    const a = this.#allocations.get(tupleKey(local, client));
    switch (request.method) {
      case METHOD.CREATE_PERMISSION:
      case METHOD.CHANNEL_BIND: {
        if (!a) return problem(`${request.method === METHOD.CHANNEL_BIND ? 'ChannelBind' : 'CreatePermission'} success without an allocation`);
        const peers = request.method === METHOD.CHANNEL_BIND ? (request.attributes.xorPeerAddress ?? []).slice(0, 1) : (request.attributes.xorPeerAddress ?? []);
        for (const p of peers) {
          if (!this.#o.policy.check(p.address, p.port).allowed) problem(`permission granted to ${p.address}:${p.port}, which the policy refuses`);
          if (a.ports[p.family] === undefined) problem(`permission granted to a ${p.family} peer on an allocation without that family`);
          a.permissions.set(p.address, now + PERMISSION_MS);
        }
        if (request.method === METHOD.CHANNEL_BIND) {
          const ch = request.attributes.channelNumber;
          const b = ch === undefined ? undefined : this.#kernel.get(bindingKey(a.client, ch));
          if (!b || !sameAddress(b.peer, peers[0]!)) problem(`ChannelBind success but channel ${ch} is not bound to its peer in the kernel`);
        }
        return;
      }
      case METHOD.ALLOCATE:
        if (!a) return problem('Allocate success without an allocation');
        return this.#checkRelayedAddresses(a, m, problem);
      case METHOD.REFRESH:
        if (request.attributes.lifetime === 0 && a) problem('Refresh to 0 answered with success but the allocation is still there');
        if (request.attributes.lifetime !== 0 && !a) problem('Refresh success without an allocation');
        return;
    }
  }

  #checkRelayedAddresses(a: ModelAllocation, m: StunMessage, problem: (msg: string) => void): void {
    const relayed = m.attributes.xorRelayedAddress ?? [];
    const want = ([4, 6] as const).filter((f) => a.ports[f] !== undefined);
    const ok = relayed.length === want.length && relayed.every((r) => a.ports[r.family] === r.port && r.address === this.#o.relayAddresses[r.family === 4 ? 'v4' : 'v6']);
    if (!ok) problem(`Allocate success names ${JSON.stringify(relayed)}, the allocation has ${JSON.stringify(a.ports)}`);
  }

  /** Relayed to a peer: from the allocation of the client that sent it, to a permitted peer, never the relay itself. */
  #checkToPeer(step: StepInput, s: Extract<Output, { kind: 'send' }>, problem: (m: string) => void): void {
    const to = `${s.to.address}:${s.to.port}`;
    if (step.kind !== 'datagram' || step.local.port !== this.#o.listenPort) return problem(`a ${step.kind} step sent to peer ${to}`);
    const a = this.#allocations.get(tupleKey(step.local, step.remote));
    if (!a) return problem(`sent to peer ${to} for a client with no allocation`);
    if (a.ports[s.to.family] !== s.from.port || s.from.family !== s.to.family) return problem(`sent to peer ${to} from ${s.from.family}/${s.from.port}, not the allocation's port of that family`);
    if (!a.permissions.has(s.to.address)) problem(`sent to peer ${to} without a permission`);
    if (this.#o.policy.isRelayItself(s.to.address, s.to.port)) problem(`sent to the relay itself (${to})`);
  }

  /** Userspace relays exactly what the kernel (bindings) and the permissions say it must. */
  #checkRelayed(step: Extract<StepInput, { kind: 'datagram' }>, request: StunMessage | undefined, sends: readonly Extract<Output, { kind: 'send' }>[], problem: (m: string) => void): void {
    if (step.data.length > MAX_DATAGRAM) {
      if (sends.length > 0) problem('an oversize datagram was relayed');
      return;
    }
    if (step.local.port !== this.#o.listenPort) return this.#checkFromPeer(step, sends, problem);
    const a = this.#allocations.get(tupleKey(step.local, step.remote));
    const kind = classify(step.data);
    if (kind === 'channel-data') {
      const channel = channelDataHeader(step.data, this.#o.maxChannel);
      const b = channel < 0 || !a ? undefined : this.#kernel.get(bindingKey(a.client, channel));
      if (!b) {
        if (sends.length > 0) problem(`ChannelData on channel ${channel} relayed without a kernel binding`);
        return;
      }
      const payload = step.data.subarray(4, 4 + ((step.data[2]! << 8) | step.data[3]!));
      if (sends.length !== 1 || !sameAddress(sends[0]!.to, b.peer) || !bytesEqual(sends[0]!.data, payload)) problem(`ChannelData on bound channel 0x${channel.toString(16)} not relayed (exactly, once) to ${b.peer.address}:${b.peer.port}`);
      return;
    }
    if (request?.cls !== 'indication' || request.method !== METHOD.SEND) return;
    const peer = request.attributes.xorPeerAddress?.[0];
    const data = request.attributes.data;
    const relays = sends.filter((s) => s.from.port !== this.#o.listenPort);
    const due = a !== undefined && peer !== undefined && data !== undefined && a.ports[peer.family] !== undefined && a.permissions.has(peer.address) && !this.#o.policy.isRelayItself(peer.address, peer.port);
    if (!due) {
      if (relays.length > 0) problem('a Send indication relayed that must not be');
      return;
    }
    if (relays.length !== 1 || !sameAddress(relays[0]!.to, peer) || !bytesEqual(relays[0]!.data, data)) problem(`a Send indication to permitted ${peer.address}:${peer.port} not relayed (exactly, once)`);
  }

  /** Peer data: as ChannelData when the kernel holds the peer's binding, else a Data indication when permitted, else nothing. */
  #checkFromPeer(step: Extract<StepInput, { kind: 'datagram' }>, sends: readonly Extract<Output, { kind: 'send' }>[], problem: (m: string) => void): void {
    const a = this.#byPort.get(portKey(step.local.family, step.local.port));
    const permitted = a !== undefined && step.remote.family === step.local.family && a.permissions.has(step.remote.address);
    if (!permitted) {
      if (sends.length > 0) problem(`peer data from ${step.remote.address}:${step.remote.port} relayed without a permission`);
      return;
    }
    const b = [...this.#kernel.values()].find((x) => sameAddress(x.client, a.client) && sameAddress(x.peer, step.remote));
    const limit = b ? MAX_DATAGRAM - 4 : MAX_DATAGRAM - 52;
    if (step.data.length > limit) {
      if (sends.length > 0) problem('oversize peer data relayed');
      return;
    }
    if (sends.length !== 1) return problem(`peer data from permitted ${step.remote.address}:${step.remote.port}: ${sends.length} sends`);
    const out = sends[0]!.data;
    if (b) {
      if ((out[0]! << 8 | out[1]!) !== b.channel || !bytesEqual(out.subarray(4), step.data) || (out[2]! << 8 | out[3]!) !== step.data.length) problem(`peer data not relayed as ChannelData on 0x${b.channel.toString(16)}`);
      return;
    }
    const r = decodeMessage(out);
    const m = r.kind === 'message' ? r.message : undefined;
    if (!m || m.method !== METHOD.DATA || m.cls !== 'indication' || !isDeepStrictEqual(m.attributes.xorPeerAddress, [step.remote]) || !m.attributes.data || !bytesEqual(m.attributes.data, step.data)) {
      problem('peer data not relayed as a Data indication naming the peer');
    }
  }

  // -- state -------------------------------------------------------------------------

  #expirePermissions(now: number): void {
    for (const a of this.#allocations.values()) for (const [ip, at] of a.permissions) if (at <= now) a.permissions.delete(ip);
  }

  #checkState(internalErrorsBefore: number, problem: (m: string) => void): void {
    const stats = this.#server.stats();
    if ((stats.dropped['internal-error'] ?? 0) !== internalErrorsBefore) problem('the server caught an exception (internal-error)');
    const snapshot = this.#server.snapshot();
    const ports = snapshot.flatMap((e) => (e.type === 'allocation-port-opened' ? [`${e.family}/${e.port}/${e.client.address}:${e.client.port}`] : [])).sort();
    const model = [...this.#byPort.entries()].map(([k, a]) => `${Math.floor(k / 65536)}/${k % 65536}/${a.client.address}:${a.client.port}`).sort();
    if (!isDeepStrictEqual(ports, model)) problem(`snapshot ports ${ports.join(' ')} != announced ${model.join(' ')}`);
    const channels = snapshot.flatMap((e) => (e.type === 'channel-bound' ? [e.binding] : []));
    if (channels.length !== this.#kernel.size || channels.some((b) => !isDeepStrictEqual(this.#kernel.get(bindingKey(b.client, b.channel)), b))) problem('snapshot channels differ from the announced ones');
    if (stats.channels !== this.#kernel.size) problem(`stats.channels ${stats.channels} != ${this.#kernel.size} announced`);
    if (stats.allocations !== this.#allocations.size) problem(`stats.allocations ${stats.allocations} != ${this.#allocations.size} announced`);
    for (const b of this.#kernel.values()) {
      const a = this.#allocationOfClient(b.client);
      if (!a?.permissions.has(b.peer.address)) problem(`kernel binds channel 0x${b.channel.toString(16)} to ${b.peer.address}, which has no permission`);
    }
    const deadline = this.#server.nextDeadline();
    if (deadline !== undefined && !Number.isFinite(deadline)) problem(`nextDeadline ${deadline}`);
  }
}
