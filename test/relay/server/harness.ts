// Script-style harness for the sans-IO TURN server: a deterministic server
// (seeded random, injected time), a small TURN client built on the codec,
// and exact output assertions that fail on a missing and on an extra output.
import assert from 'node:assert/strict';
import {
  METHOD,
  decodeMessage,
  encodeMessage,
  longTermKey,
  type StunAttributes,
  type StunMessage,
} from '../../../src/relay/stun/index.ts';
import { createStaticCredentials } from '../../../src/relay/auth/index.ts';
import { createPeerPolicy, createRateLimiter } from '../../../src/relay/policy/index.ts';
import { TurnServer, type TurnServerOptions } from '../../../src/relay/server/index.ts';
import type { DataPlaneEvent, Family, LocalEndpoint, Output, TransportAddress } from '../../../src/relay/server/types.ts';

export const REALM = 'turnpike.test';
export const LISTEN_PORT = 3478;
export const RELAY_V4 = '192.0.2.10';
export const RELAY_V6 = '2001:db8::10';
export const T0 = 1_700_000_000_000;
export const USERS = { alice: 'alice-pw', bob: 'bob-pw' } as const;

export const LISTEN4: LocalEndpoint = { family: 4, port: LISTEN_PORT };
export const LISTEN6: LocalEndpoint = { family: 6, port: LISTEN_PORT };

/** A small LCG: deterministic "random" bytes. */
export function seededRandom(seed = 42): (n: number) => Uint8Array {
  let x = seed >>> 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      out[i] = x >>> 24;
    }
    return out;
  };
}

export function addr(address: string, port: number): TransportAddress {
  return { family: address.includes(':') ? 6 : 4, address, port };
}

export type Matcher = (o: Output) => unknown;

/** Assert `outs` match `matchers` one for one, in order; returns each matcher's result. */
export function expectOutputs(outs: Output[], matchers: Matcher[]): unknown[] {
  const describe = (o: Output) =>
    o.kind === 'event' ? `event:${o.event.type}` : o.kind === 'send' ? `send(${o.from.port}->${o.to.address}:${o.to.port}, ${describeData(o.data)})` : `${o.kind}(${o.family}/${o.port})`;
  assert.equal(outs.length, matchers.length, `expected ${matchers.length} outputs, got ${outs.length}: [${outs.map(describe).join(', ')}]`);
  return outs.map((o, i) => matchers[i]!(o));
}

function describeData(d: Uint8Array): string {
  const r = decodeMessage(d);
  if (r.kind === 'message') {
    const code = r.message.attributes.errorCode?.code;
    return `${r.message.method}/${r.message.cls}${code ? ` ${code}` : ''}`;
  }
  return `${d.length} bytes`;
}

export function decodeOk(data: Uint8Array): StunMessage {
  const r = decodeMessage(data);
  assert.equal(r.kind, 'message', `not a STUN message: ${JSON.stringify(r)}`);
  return (r as { message: StunMessage }).message;
}

/** A STUN response to `to` from the listen port; checks class/method/code and returns the message. */
export function response(
  to: TransportAddress,
  method: number,
  code: number | 'success',
  check?: (m: StunMessage) => void,
  from: LocalEndpoint = to.family === 4 ? LISTEN4 : LISTEN6,
): Matcher {
  return (o) => {
    assert.equal(o.kind, 'send');
    if (o.kind !== 'send') return undefined;
    assert.deepEqual(o.from, from);
    assert.deepEqual(o.to, to);
    const m = decodeOk(o.data);
    assert.equal(m.method, method, 'method');
    if (code === 'success') {
      assert.equal(m.cls, 'success', `expected success, got ${m.attributes.errorCode?.code}`);
    } else {
      assert.equal(m.cls, 'error');
      assert.equal(m.attributes.errorCode?.code, code);
    }
    check?.(m);
    return m;
  };
}

export function event(type: DataPlaneEvent['type'], check?: (e: DataPlaneEvent) => void): Matcher {
  return (o) => {
    assert.equal(o.kind, 'event');
    if (o.kind !== 'event') return undefined;
    assert.equal(o.event.type, type);
    check?.(o.event);
    return o.event;
  };
}

export function openPort(family: Family): Matcher {
  return (o) => {
    assert.equal(o.kind, 'open-port');
    if (o.kind !== 'open-port') return undefined;
    assert.equal(o.family, family);
    return o;
  };
}

export function closePort(family: Family, port?: number): Matcher {
  return (o) => {
    assert.equal(o.kind, 'close-port');
    if (o.kind !== 'close-port') return undefined;
    assert.equal(o.family, family);
    if (port !== undefined) assert.equal(o.port, port);
    return o;
  };
}

/** A raw datagram: `from` endpoint, `to` address and exact bytes. */
export function datagram(from: LocalEndpoint, to: TransportAddress, data: Uint8Array | ((d: Uint8Array) => void)): Matcher {
  return (o) => {
    assert.equal(o.kind, 'send');
    if (o.kind !== 'send') return undefined;
    assert.deepEqual(o.from, from);
    assert.deepEqual(o.to, to);
    if (typeof data === 'function') data(o.data);
    else assert.deepEqual(Buffer.from(o.data), Buffer.from(data));
    return o.data;
  };
}

export class Harness {
  readonly server: TurnServer;
  now = T0;
  readonly random = seededRandom();

  constructor(overrides: Partial<TurnServerOptions> = {}) {
    this.server = new TurnServer({
      realm: REALM,
      software: 'turnpike-test',
      listenPort: LISTEN_PORT,
      relayAddresses: { v4: RELAY_V4, v6: RELAY_V6 },
      portRange: { min: 50000, max: 50999 },
      credentials: createStaticCredentials(USERS),
      peerPolicy: createPeerPolicy(),
      nonce: { secret: 'nonce-secret', ttlSeconds: 100_000 },
      random: this.random,
      ...overrides,
    });
  }

  drain(): Output[] {
    const outs: Output[] = [];
    for (let o = this.server.pollOutput(); o !== undefined; o = this.server.pollOutput()) outs.push(o);
    return outs;
  }

  /** Feed a datagram and return every output it caused. */
  input(data: Uint8Array, local: LocalEndpoint, remote: TransportAddress): Output[] {
    this.server.handleDatagram(data, local, remote, this.now);
    return this.drain();
  }

  portOpened(token: number, ok: boolean): Output[] {
    this.server.portOpened(token, ok, this.now);
    return this.drain();
  }

  /** Move the clock and run timers. */
  advance(ms: number): Output[] {
    this.now += ms;
    this.server.handleTimeout(this.now);
    return this.drain();
  }

  client(address: TransportAddress, user: keyof typeof USERS | string = 'alice', password?: string): TurnClient {
    return new TurnClient(this, address, user, password ?? USERS[user as keyof typeof USERS] ?? 'none');
  }

  /** Fingerprint of the state other traffic must not change. */
  observe(): { snapshot: DataPlaneEvent[]; stats: ReturnType<TurnServer['stats']>; deadline: number | undefined } {
    return { snapshot: this.server.snapshot(), stats: this.server.stats(), deadline: this.server.nextDeadline() };
  }
}

let txCounter = 0;

export class TurnClient {
  nonce: string | undefined;
  readonly local: LocalEndpoint;
  readonly key: Uint8Array;

  constructor(
    readonly h: Harness,
    readonly address: TransportAddress,
    readonly username: string,
    password: string,
  ) {
    this.local = address.family === 4 ? LISTEN4 : LISTEN6;
    this.key = longTermKey(username, REALM, password);
  }

  static txid(): Uint8Array {
    const id = new Uint8Array(12);
    new DataView(id.buffer).setUint32(8, ++txCounter);
    id[0] = 0x7e;
    return id;
  }

  /** Encode a request; with `auth` adds USERNAME/REALM/NONCE and integrity. */
  build(
    method: number,
    attributes: StunAttributes,
    opts: { auth?: boolean; integrity?: 'sha1' | 'sha256' | 'both'; cls?: 'request' | 'indication'; transactionId?: Uint8Array; key?: Uint8Array } = {},
  ): Uint8Array {
    const auth = opts.auth ?? true;
    const attrs: StunAttributes = auth ? { ...attributes, username: this.username, realm: REALM, nonce: this.nonce ?? 'none' } : attributes;
    return encodeMessage(
      { method, cls: opts.cls ?? 'request', transactionId: opts.transactionId ?? TurnClient.txid(), attributes: attrs },
      auth ? { key: opts.key ?? this.key, integrity: opts.integrity ?? 'sha1', fingerprint: true } : { fingerprint: true },
    );
  }

  /** Send bytes from this client to the listen port. Learns NONCE from 401/438 answers. */
  send(data: Uint8Array): Output[] {
    const outs = this.h.input(data, this.local, this.address);
    for (const o of outs) {
      if (o.kind !== 'send') continue;
      const r = decodeMessage(o.data);
      if (r.kind === 'message' && r.message.attributes.nonce !== undefined) this.nonce = r.message.attributes.nonce;
    }
    return outs;
  }

  request(method: number, attributes: StunAttributes = {}, opts: Parameters<TurnClient['build']>[2] = {}): Output[] {
    return this.send(this.build(method, attributes, opts));
  }

  /** Get a nonce the way a real client does: an unauthenticated Allocate answered with 401. */
  challenge(): void {
    const outs = this.request(METHOD.ALLOCATE, { requestedTransport: 17 }, { auth: false });
    expectOutputs(outs, [response(this.address, METHOD.ALLOCATE, 401)]);
  }

  /**
   * Allocate and open its ports: returns the relayed ports by family and the
   * success message. `failFirst` fails that many open attempts first.
   */
  allocate(attributes: StunAttributes = {}): { ports: { v4?: number; v6?: number }; success: StunMessage } {
    if (this.nonce === undefined) this.challenge();
    const outs = this.request(METHOD.ALLOCATE, { requestedTransport: 17, ...attributes });
    const opens = outs.filter((o) => o.kind === 'open-port');
    assert.equal(opens.length, outs.length, `expected only open-port outputs: ${JSON.stringify(outs.map((o) => o.kind))}`);
    assert.ok(opens.length >= 1);
    const ports: { v4?: number; v6?: number } = {};
    let last: Output[] = [];
    opens.forEach((o, i) => {
      if (o.kind !== 'open-port') return;
      ports[o.family === 4 ? 'v4' : 'v6'] = o.port;
      last = this.h.portOpened(o.token, true);
      if (i < opens.length - 1) assert.deepEqual(last, [], 'no answer before every port is open');
    });
    const matchers: Matcher[] = opens.map((o) =>
      event('allocation-port-opened', (e) => {
        assert.ok(e.type === 'allocation-port-opened' && o.kind === 'open-port');
        assert.deepEqual(e.client, this.address);
        assert.equal(e.family, o.family);
        assert.equal(e.port, o.port);
      }),
    );
    const results = expectOutputs(last, [...matchers, response(this.address, METHOD.ALLOCATE, 'success')]);
    return { ports, success: results[results.length - 1] as StunMessage };
  }

  createPermission(...peers: TransportAddress[]): Output[] {
    return this.request(METHOD.CREATE_PERMISSION, { xorPeerAddress: peers });
  }

  channelBind(channel: number, peer: TransportAddress): Output[] {
    return this.request(METHOD.CHANNEL_BIND, { channelNumber: channel, xorPeerAddress: [peer] });
  }

  refresh(lifetime?: number, extra: StunAttributes = {}): Output[] {
    return this.request(METHOD.REFRESH, lifetime === undefined ? extra : { lifetime, ...extra });
  }

  sendIndication(peer: TransportAddress, data: Uint8Array): Output[] {
    return this.send(encodeMessage({ method: METHOD.SEND, cls: 'indication', transactionId: TurnClient.txid(), attributes: { xorPeerAddress: [peer], data } }));
  }
}
