// Target "server": the sans-IO TurnServer driven by sequences, each a fresh
// server (random limits, port range, families, rate limits) and a few
// clients (static and REST credentials) that allocate, permit, bind, send,
// relay ChannelData both ways, refresh, let time run out, have their port
// opens succeed or fail, lose ports, retransmit and send junk. Requests carry
// valid integrity (right key, fresh nonce) most of the time, so the handlers
// are reached; some are mutated before they are signed (attribute lists,
// values), some after (bytes), some carry wrong keys or stale nonces.
// Sequences start from a committed script (corpus/server/*.json), mutated
// and interleaved with random steps, or from random steps alone. Every
// server call counts as one input; server-oracle.ts checks each step.
import { createCredentialChain, createRestCredentials, createStaticCredentials, issueNonce, longTermKey, mintRestCredential } from '../../../src/relay/auth/index.ts';
import { createPeerPolicy, createRateLimiter, type PeerPolicy } from '../../../src/relay/policy/index.ts';
import { TurnServer, type TurnServerOptions } from '../../../src/relay/server/index.ts';
import type { Family, LocalEndpoint, Output, TransportAddress } from '../../../src/relay/server/types.ts';
import { METHOD, decodeMessage, encodeMessage, type StunAttributes } from '../../../src/relay/stun/index.ts';
import { readHexCorpus, readJsonCorpus } from '../engine/corpus.ts';
import { mutateBytes } from '../engine/mutate.ts';
import type { Rng } from '../engine/rng.ts';
import { joinMessage, mutateAttributes, sign, splitMessage } from '../engine/stun-bytes.ts';
import { randomAttributes } from '../engine/stun-values.ts';
import { Tally, hex, type Findings, type FuzzTarget, type TargetRun } from '../engine/target.ts';
import { ServerOracle, type StepInput } from './server-oracle.ts';

export const REALM = 'fuzz.turnpike';
export const LISTEN = 3478;
export const RELAY = { v4: '192.0.2.10', v6: '2001:db8::10' } as const;
const T0 = 1_700_000_000_000;
const NONCE_SECRET = 'fuzz-nonce-secret';
const NONCE_TTL = 3600;
const REST_SECRET = 'fuzz-rest-secret';
const USERS = { alice: 'alice-pw', bob: 'bob-pw' } as const;

/** Peers: permitted ones first, then what the policy must refuse (private, loopback, mapped, metadata, the relay itself). */
export const PEERS: readonly TransportAddress[] = [
  { family: 4, address: '203.0.113.5', port: 6000 },
  { family: 4, address: '203.0.113.5', port: 6001 },
  { family: 4, address: '203.0.113.9', port: 7000 },
  { family: 6, address: '2001:db8:2::5', port: 6000 },
  { family: 6, address: '2001:db8:2::9', port: 7000 },
  { family: 4, address: '10.0.0.1', port: 1 },
  { family: 4, address: '127.0.0.1', port: 80 },
  { family: 6, address: '::1', port: 80 },
  { family: 6, address: '::ffff:203.0.113.5', port: 6000 },
  { family: 4, address: '169.254.169.254', port: 80 },
  { family: 4, address: RELAY.v4, port: 50001 },
  { family: 6, address: RELAY.v6, port: LISTEN },
  { family: 6, address: 'fe80::1', port: 5 },
];
const ALLOWED_PEERS = 5;
const CLIENT_ADDRESSES: readonly TransportAddress[] = [
  { family: 4, address: '198.51.100.1', port: 40001 },
  { family: 4, address: '198.51.100.1', port: 40002 },
  { family: 4, address: '198.51.100.2', port: 40001 },
  { family: 6, address: '2001:db8:1::1', port: 40001 },
  { family: 6, address: '2001:db8:1::2', port: 5000 },
];
const CHANNELS = [0x4000, 0x4001, 0x4002, 0x4fff, 0x5000, 0x7fff, 0x3fff, 0x8000];

/** One step of a script: what corpus/server/*.json holds and the random generator produces. */
export type Step =
  | { op: 'allocate'; client: number; family?: 4 | 6 | 'dual' | 'unsupported'; even?: boolean; reserve?: boolean; lifetime?: number; token?: boolean }
  | { op: 'refresh'; client: number; lifetime?: number }
  | { op: 'permission'; client: number; peers: number[] }
  | { op: 'bind'; client: number; channel: number; peer: number }
  | { op: 'binding'; client: number }
  | { op: 'channel-data'; client: number; channel?: number; size: number }
  | { op: 'send'; client: number; peer: number; size: number }
  | { op: 'peer-data'; peer: number; client: number; size: number }
  | { op: 'time'; ms: number }
  | { op: 'ports'; ok?: boolean }
  | { op: 'port-lost'; client: number }
  | { op: 'retransmit'; client: number }
  | { op: 'junk'; client: number };

export interface Script {
  readonly comment?: string;
  readonly steps: readonly Step[];
}

interface Client {
  readonly address: TransportAddress;
  readonly local: LocalEndpoint;
  readonly username: string;
  readonly key: Uint8Array;
}

type AuthMode = 'valid' | 'none' | 'wrong-key' | 'bad-nonce' | 'stale-nonce' | 'wrong-realm';

// -- random steps ------------------------------------------------------------------------

/** What the generator may know of the state, to aim most steps where they go deep. */
interface View {
  /** Open-port answers outstanding. */
  readonly tokens: number;
  /** Indexes of the clients with an allocation. */
  readonly allocated: readonly number[];
  /** How many clients the sequence has. */
  readonly clients: number;
  /** The relayed families of client i's allocation, and the peer addresses it has permissions for. */
  families(i: number): Family[];
  permitted(i: number): string[];
}

const NO_VIEW: View = { tokens: 1, allocated: [], clients: 8, families: () => [], permitted: () => [] };

function randomStep(rng: Rng, view: View): Step {
  if (view.tokens > 0 && rng.chance(0.5)) return { op: 'ports', ...(rng.chance(0.1) ? { ok: false } : {}) };
  const idle = Array.from({ length: view.clients }, (_, i) => i).filter((i) => !view.allocated.includes(i));
  // Allocate from clients without an allocation, everything else mostly from clients with one.
  const client = rng.chance(0.85) && view.allocated.length > 0 ? rng.pick(view.allocated) : rng.int(8);
  const newcomer = rng.chance(0.85) && idle.length > 0 ? rng.pick(idle) : rng.int(8);
  // Peers the allocation can reach (its families), permitted ones for data, now and then any.
  const fitting = PEERS.flatMap((p, i) => (i < ALLOWED_PEERS && view.families(client).includes(p.family) ? [i] : []));
  const permitted = PEERS.flatMap((p, i) => (view.permitted(client).includes(p.address) ? [i] : []));
  const peer = () => (rng.chance(0.75) && fitting.length > 0 ? rng.pick(fitting) : rng.chance(0.7) ? rng.int(ALLOWED_PEERS) : rng.int(PEERS.length));
  const dataPeer = () => (rng.chance(0.75) && permitted.length > 0 ? rng.pick(permitted) : peer());
  // Now and then a payload at the size limits (MAX_DATAGRAM, less the Data indication's or ChannelData's overhead).
  const size = () => (rng.chance(0.01) ? rng.pick([65507 - 52, 65507 - 51, 65507 - 4, 65507 - 3, 65508]) : rng.int(120));
  const allocate = (): Step => ({
    op: 'allocate',
    client: newcomer,
    ...(rng.chance(0.3) ? { family: rng.pick([4, 6, 'dual', 'dual', 'unsupported'] as const) } : {}),
    ...(rng.chance(0.05) ? { even: true, reserve: rng.chance(0.5) } : {}),
    ...(rng.chance(0.2) ? { lifetime: rng.pick([0, 30, 600, 3600, 86400]) } : {}),
    ...(rng.chance(0.05) ? { token: true } : {}),
  });
  return rng.weighted<() => Step>([
    [view.allocated.length === 0 ? 30 : 8, allocate],
    [5, () => ({ op: 'refresh', client, ...(rng.chance(0.7) ? { lifetime: rng.pick([0, 0, 1, 600, 3600, 0xffffffff]) } : {}) })],
    [10, () => ({ op: 'permission', client, peers: Array.from({ length: rng.chance(0.02) ? 200 : rng.range(1, 3) }, peer) })],
    [10, () => ({ op: 'bind', client, channel: rng.pick(CHANNELS), peer: peer() })],
    [2, () => ({ op: 'binding', client })],
    [15, () => ({ op: 'channel-data', client, ...(rng.chance(0.3) ? { channel: rng.pick(CHANNELS) } : {}), size: size() })],
    [8, () => ({ op: 'send', client, peer: dataPeer(), size: size() })],
    [15, () => ({ op: 'peer-data', client, peer: rng.chance(0.9) ? dataPeer() : rng.int(PEERS.length), size: size() })],
    [8, () => ({ op: 'time', ms: rng.weighted([[12, rng.int(2000)], [3, rng.range(10_000, 120_000)], [1, rng.pick([299_999, 300_000, 300_001, 600_000, 3_600_000])], [2, -1]]) })],
    [3, () => ({ op: 'retransmit', client })],
    [6, () => ({ op: 'junk', client })],
    [1, () => ({ op: 'port-lost', client })],
    [1, () => ({ op: 'ports', ok: rng.chance(0.5) })],
  ])();
}

/** A committed script, mutated at the step level and interleaved with random steps. */
function mutateScript(rng: Rng, steps: readonly Step[]): Step[] {
  const out: Step[] = [];
  for (const s of steps) {
    if (rng.chance(0.1)) out.push(randomStep(rng, NO_VIEW));
    if (rng.chance(0.05)) continue;
    out.push(rng.chance(0.05) ? { ...s, client: rng.int(8) } as Step : s);
    if (rng.chance(0.03)) out.push(s);
  }
  return out;
}

// -- one sequence ------------------------------------------------------------------------

interface LogEntry {
  readonly what: string;
  readonly data?: Uint8Array;
  /** What the server answered (set once the step ran). */
  outs?: readonly Output[];
}

/** One output in a few words, for a finding's step list. */
function describeOutput(o: Output): string {
  switch (o.kind) {
    case 'open-port': return `open-port ${o.family}/${o.port} token ${o.token}`;
    case 'close-port': return `close-port ${o.family}/${o.port}`;
    case 'event': return 'binding' in o.event ? `${o.event.type} 0x${o.event.binding.channel.toString(16)} ${o.event.binding.peer.address}:${o.event.binding.peer.port}` : `${o.event.type} ${o.event.family}/${o.event.port}`;
    case 'send': {
      const r = decodeMessage(o.data);
      const what = r.kind === 'message' ? `${r.message.method}/${r.message.cls}${r.message.attributes.errorCode ? ` ${r.message.attributes.errorCode.code}` : ''}` : `${o.data.length} bytes`;
      return `send ${o.from.family}/${o.from.port} -> ${o.to.address}:${o.to.port} ${what}`;
    }
  }
}

class Sequence {
  readonly server: TurnServer;
  readonly oracle: ServerOracle;
  readonly clients: Client[];
  readonly #policy: PeerPolicy;
  readonly #lastRequest = new Map<number, Uint8Array>();
  readonly #reservationTokens: Uint8Array[] = [];
  readonly #log: LogEntry[] = [];
  readonly #config: string;
  now = T0;
  inputs = 0;

  constructor(readonly rng: Rng, readonly findings: Findings, readonly junk: readonly Uint8Array[]) {
    const relayAddresses = rng.weighted([[8, { v4: RELAY.v4, v6: RELAY.v6 }], [1, { v4: RELAY.v4 }], [1, { v6: RELAY.v6 }]] as const);
    const portRange = { min: 50000, max: 50000 + rng.pick([7, 63, 999]) };
    this.#policy = createPeerPolicy({ relay: { addresses: [RELAY.v4, RELAY.v6], ports: [{ min: LISTEN, max: LISTEN }, portRange] } });
    const rest = mintRestCredential(REST_SECRET, 'carol', rng.pick([60, 600, 86400]), T0);
    const limited = rng.chance(0.25);
    const opts: TurnServerOptions = {
      realm: REALM,
      software: 'turnpike-fuzz',
      listenPort: LISTEN,
      relayAddresses,
      portRange,
      credentials: createCredentialChain([createStaticCredentials(USERS), createRestCredentials(REST_SECRET)]),
      peerPolicy: this.#policy,
      nonce: { secret: NONCE_SECRET, ttlSeconds: NONCE_TTL },
      random: (n) => rng.bytes(n),
      maxChannel: rng.pick([0x4fff, 0x7fff]),
      ...(rng.chance(0.3) ? { defaultLifetime: 60, maxLifetime: 120 } : {}),
      ...(rng.chance(0.3) ? { maxAllocations: rng.range(1, 4) } : {}),
      ...(rng.chance(0.3) ? { maxAllocationsPerUser: rng.range(1, 3) } : {}),
      ...(rng.chance(0.3) ? { portOpenTimeout: 2000, portAttempts: rng.range(1, 3) } : {}),
      ...(limited ? { rateLimits: { unauthenticated: createRateLimiter({ perSecond: 20, burst: 40, maxEntries: 4 }), authenticated: createRateLimiter({ perSecond: 20, burst: 40, maxEntries: 4 }) } } : {}),
    };
    this.#config = JSON.stringify({ relayAddresses, portRange, maxChannel: opts.maxChannel, maxAllocations: opts.maxAllocations, maxAllocationsPerUser: opts.maxAllocationsPerUser, lifetimes: [opts.defaultLifetime, opts.maxLifetime], rateLimited: limited });
    this.server = new TurnServer(opts);
    const creds: [string, string][] = [['alice', USERS.alice], ['bob', USERS.bob], [rest.username, rest.password], ['mallory', 'guess']];
    const count = rng.range(1, CLIENT_ADDRESSES.length);
    const addresses = CLIENT_ADDRESSES.map((a) => [rng.u32(), a] as const).sort((x, y) => x[0] - y[0]).slice(0, count).map(([, a]) => a);
    this.clients = addresses.map((address) => {
      const [username, password] = rng.chance(0.95) ? rng.pick(creds.slice(0, 3)) : creds[3]!;
      return { address, local: { family: address.family, port: LISTEN }, username, key: longTermKey(username, REALM, password) };
    });
    const keys = new Map(creds.map(([user, password]) => [user, longTermKey(user, REALM, password)]));
    this.oracle = new ServerOracle(this.server, {
      listenPort: LISTEN,
      portRange,
      relayAddresses,
      maxChannel: opts.maxChannel!,
      policy: this.#policy,
      keyOf: (user) => keys.get(user),
    });
  }

  run(step: Step): void {
    const rng = this.rng;
    const c = this.clients[('client' in step ? step.client : 0) % this.clients.length]!;
    switch (step.op) {
      case 'allocate': {
        const a: StunAttributes = { requestedTransport: rng.chance(0.97) ? 17 : rng.int(256) };
        if (step.family === 'dual') a.additionalAddressFamily = 6;
        else if (step.family !== undefined) a.requestedAddressFamily = step.family;
        if (step.even) a.evenPort = { reserve: step.reserve === true };
        if (step.lifetime !== undefined) a.lifetime = step.lifetime;
        if (step.token) a.reservationToken = this.#reservationTokens.length > 0 && rng.chance(0.8) ? rng.pick(this.#reservationTokens) : rng.bytes(8);
        return this.#request(c, METHOD.ALLOCATE, a, step);
      }
      case 'refresh':
        return this.#request(c, METHOD.REFRESH, step.lifetime === undefined ? {} : { lifetime: step.lifetime }, step);
      case 'permission':
        return this.#request(c, METHOD.CREATE_PERMISSION, { xorPeerAddress: step.peers.map((i) => PEERS[i % PEERS.length]!) }, step);
      case 'bind':
        return this.#request(c, METHOD.CHANNEL_BIND, { channelNumber: step.channel, xorPeerAddress: [PEERS[step.peer % PEERS.length]!] }, step);
      case 'binding':
        return this.#datagram(c.local, c.address, encodeMessage({ method: METHOD.BINDING, cls: rng.chance(0.9) ? 'request' : 'indication', transactionId: rng.bytes(12), attributes: {} }, { fingerprint: rng.chance(0.5) }), step.op);
      case 'channel-data':
        return this.#datagram(c.local, c.address, this.#channelData(c, step.channel, step.size), step.op);
      case 'send': {
        const attributes: StunAttributes = { xorPeerAddress: [PEERS[step.peer % PEERS.length]!], data: rng.bytes(Math.min(step.size, 65_000)) };
        if (rng.chance(0.05)) delete attributes[rng.chance(0.5) ? 'xorPeerAddress' : 'data'];
        const msg = encodeMessage({ method: METHOD.SEND, cls: 'indication', transactionId: rng.bytes(12), attributes }, { fingerprint: rng.chance(0.5) });
        return this.#datagram(c.local, c.address, rng.chance(0.1) ? mutateBytes(rng, msg, { maxLength: msg.length + 32 }) : msg, step.op);
      }
      case 'peer-data': {
        const peer = PEERS[step.peer % PEERS.length]!;
        const family: Family = rng.chance(0.9) ? peer.family : peer.family === 4 ? 6 : 4;
        const port = this.oracle.portOf(c.address, family) ?? (rng.chance(0.5) ? rng.pick(this.oracle.ports())?.port : undefined) ?? rng.range(50000, 50010);
        const from = rng.chance(0.9) ? peer : { ...peer, port: rng.int(0x10000) };
        return this.#datagram({ family, port }, from, rng.bytes(step.size), step.op);
      }
      case 'time': {
        const deadline = this.server.nextDeadline();
        const ms = step.ms >= 0 ? step.ms : deadline === undefined ? 1000 : Math.max(0, deadline - this.now + rng.range(-1, 1));
        this.now += ms;
        this.#log.push({ what: `time +${ms} ms` });
        return this.#call({ kind: 'timeout', now: this.now }, () => this.server.handleTimeout(this.now));
      }
      case 'ports': {
        const tokens = this.oracle.tokens();
        if (tokens.length === 0 || step.ok === false && rng.chance(0.3)) {
          const token = rng.chance(0.5) ? rng.int(64) : rng.u32();
          return this.#portResult(token, step.ok ?? true);
        }
        for (const t of rng.chance(0.5) ? tokens : [rng.pick(tokens)]) this.#portResult(t, step.ok ?? rng.chance(0.92));
        return;
      }
      case 'port-lost': {
        const p = this.oracle.portOf(c.address, c.address.family) !== undefined && rng.chance(0.8)
          ? { family: c.address.family, port: this.oracle.portOf(c.address, c.address.family)! }
          : { family: rng.pick([4, 6] as const), port: rng.range(50000, 50010) };
        this.#log.push({ what: `port-lost ${p.family}/${p.port}` });
        return this.#call({ kind: 'port-lost', ...p, now: this.now }, () => this.server.portLost(p.family, p.port, this.now));
      }
      case 'retransmit': {
        const last = this.#lastRequest.get(this.clients.indexOf(c));
        return this.#datagram(c.local, c.address, last ?? rng.bytes(20), step.op);
      }
      case 'junk': {
        const from = rng.chance(0.8) ? c.address : { ...rng.pick(CLIENT_ADDRESSES), port: rng.int(0x10000) };
        const base = rng.pick(this.junk);
        const data = rng.chance(0.2) ? rng.bytes(rng.int(64)) : mutateBytes(rng, base, { maxLength: 1500, others: this.junk });
        return this.#datagram({ family: from.family, port: LISTEN }, from, data, step.op);
      }
    }
  }

  /** A request from `c`, authenticated as `auth` says, maybe mutated before or after it is signed. */
  #request(c: Client, method: number, attrs: StunAttributes, step: Step): void {
    const rng = this.rng;
    const auth = rng.weighted<AuthMode>([[85, 'valid'], [4, 'none'], [4, 'wrong-key'], [3, 'bad-nonce'], [2, 'stale-nonce'], [2, 'wrong-realm']]);
    const attributes: StunAttributes = rng.chance(0.05) ? { ...randomAttributes(rng, 0.05), ...attrs } : { ...attrs };
    if (auth !== 'none') {
      const nonceAt = auth === 'stale-nonce' ? this.now - 2 * NONCE_TTL * 1000 : this.now;
      attributes.username = c.username;
      attributes.realm = auth === 'wrong-realm' ? 'elsewhere' : REALM;
      attributes.nonce = auth === 'bad-nonce' ? `${rng.u32().toString(36)}.${'A'.repeat(22)}` : issueNonce(NONCE_SECRET, c.address.address, nonceAt, NONCE_TTL);
    }
    let body = encodeMessage({ method: rng.chance(0.01) ? rng.int(0x1000) : method, cls: 'request', transactionId: rng.bytes(12), attributes });
    const mutation = rng.weighted([[80, 'none'], [12, 'signed'], [8, 'unsigned']] as const);
    if (mutation === 'signed') {
      // Damage the attributes, then sign: authentication passes and the handlers get the damage.
      const { header, attrs: list } = splitMessage(body);
      body = joinMessage(header, mutateAttributes(rng, list));
    }
    const key = auth === 'wrong-key' ? rng.bytes(16) : c.key;
    let data = sign(body, { ...(auth === 'none' ? {} : { key, integrity: rng.weighted([[8, 'sha1'], [1, 'sha256'], [1, 'both']] as const) }), fingerprint: rng.chance(0.9) });
    if (mutation === 'unsigned') data = mutateBytes(rng, data, { maxLength: data.length + 64 });
    this.#lastRequest.set(this.clients.indexOf(c), data);
    this.#datagram(c.local, c.address, data, `${step.op} (${auth}${mutation === 'none' ? '' : `, mutated ${mutation}`})`);
  }

  #channelData(c: Client, channel: number | undefined, size: number): Uint8Array {
    const rng = this.rng;
    const bound = this.oracle.channelsOf(c.address);
    const ch = channel ?? (bound.length > 0 && rng.chance(0.8) ? rng.pick(bound) : rng.pick(CHANNELS));
    const pad = rng.weighted([[8, 0], [2, rng.range(1, 3)], [1, rng.range(4, 8)]]);
    const out = new Uint8Array(4 + size + pad);
    const v = new DataView(out.buffer);
    v.setUint16(0, ch);
    v.setUint16(2, rng.chance(0.95) ? size : rng.int(0x10000));
    out.set(rng.bytes(size), 4);
    return out;
  }

  #datagram(local: LocalEndpoint, remote: TransportAddress, data: Uint8Array, what: string): void {
    this.#log.push({ what: `${what}: ${remote.address}:${remote.port} -> ${local.family}/${local.port}`, data });
    this.#call({ kind: 'datagram', local, remote, data, now: this.now }, () => this.server.handleDatagram(data, local, remote, this.now));
  }

  #portResult(token: number, ok: boolean): void {
    this.#log.push({ what: `port result token ${token} ${ok ? 'ok' : 'failed'}` });
    this.#call({ kind: 'port-result', token, ok, now: this.now }, () => this.server.portOpened(token, ok, this.now));
  }

  /** One server call: exceptions caught and counted, outputs drained and checked. */
  #call(input: StepInput, call: () => void): void {
    this.inputs++;
    const internal = this.server.stats().dropped['internal-error'] ?? 0;
    try {
      call();
    } catch (err) {
      this.findings.exception(err, () => this.describe());
    }
    const outs: Output[] = [];
    try {
      for (let o = this.server.pollOutput(); o !== undefined; o = this.server.pollOutput()) outs.push(o);
    } catch (err) {
      this.findings.exception(err, () => this.describe());
    }
    this.#log[this.#log.length - 1]!.outs = outs;
    this.#noteTokens(outs);
    for (const p of this.oracle.check(input, outs, internal)) this.findings.violation(`step ${this.#log.length}: ${p}`, () => this.describe());
  }

  /** Reservation tokens handed out, for later Allocates to redeem. */
  #noteTokens(outs: readonly Output[]): void {
    for (const o of outs) {
      if (o.kind !== 'send' || o.from.port !== LISTEN || o.data.length < 48) continue;
      const r = decodeMessage(o.data);
      if (r.kind === 'message' && r.message.attributes.reservationToken) this.#reservationTokens.push(r.message.attributes.reservationToken.slice());
    }
  }

  view(): View {
    const allocated = this.clients.flatMap((c, i) => (this.oracle.portOf(c.address, 4) ?? this.oracle.portOf(c.address, 6)) !== undefined ? [i] : []);
    const at = (i: number) => this.clients[i % this.clients.length]!.address;
    return {
      tokens: this.oracle.tokens().length,
      allocated,
      clients: this.clients.length,
      families: (i) => ([4, 6] as const).filter((f) => this.oracle.portOf(at(i), f) !== undefined),
      permitted: (i) => this.oracle.permittedPeers(at(i)),
    };
  }

  describe(): string {
    const clients = this.clients.map((c, i) => `${i}=${c.address.address}:${c.address.port}/${c.username}`).join(' ');
    const steps = this.#log
      .map((r, i) => `\n    ${i + 1}. ${r.what}${r.data ? ` ${hex(r.data.subarray(0, 512))}${r.data.length > 512 ? '...' : ''}` : ''}${(r.outs ?? []).map((o) => `\n         => ${describeOutput(o)}`).join('')}`)
      .join('');
    return `server ${this.#config}, clients ${clients}${steps}`;
  }
}

export const serverTarget: FuzzTarget = {
  name: 'server',
  open(corpusDir): TargetRun {
    const scripts = readJsonCorpus<Script>(corpusDir);
    const junk = readHexCorpus(`${corpusDir}/datagrams`);
    let sequences = 0;
    // Answers and drops summed over every sequence: which paths the run reached.
    const answers = new Tally();
    const drops = new Tally();
    const relayed = { toPeer: 0, toClient: 0 };
    return {
      one(rng: Rng, findings: Findings): number {
        sequences++;
        const seq = new Sequence(rng, findings, junk);
        const steps = rng.chance(0.6) ? mutateScript(rng, rng.pick(scripts).steps) : [];
        const length = rng.range(10, 120);
        for (let i = 0; i < steps.length || i < length; i++) {
          seq.run(i < steps.length ? steps[i]! : randomStep(rng, seq.view()));
        }
        const stats = seq.server.stats();
        answers.addAll(stats.responses);
        drops.addAll(stats.dropped);
        relayed.toPeer += stats.relayed.toPeer.packets;
        relayed.toClient += stats.relayed.toClient.packets;
        return seq.inputs;
      },
      summary: () => [`sequences: ${sequences}; relayed to peers ${relayed.toPeer}, to clients ${relayed.toClient}`, `answers: ${answers}`, `drops: ${drops}`],
      close() {},
    };
  },
};
