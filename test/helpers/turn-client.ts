// A small TURN client (RFC 8656 over UDP) for tests and benchmarks, built on
// the project's codec. One client = one UDP socket = one 5-tuple = at most one
// allocation. Long-term credentials: the first Allocate is sent without
// credentials, the 401 gives realm and nonce, and a 438 (stale nonce) is
// retried once with the new nonce. Requests are retransmitted on a fixed
// interval (tests run on veth/loopback, where loss only comes from overload).
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import {
  ERROR, METHOD, TRANSPORT_UDP,
  classify, decodeChannelData, decodeMessage, encodeChannelData, encodeMessage,
  longTermKey, newTransactionId, transactionIdKey,
  type StunAddress, type StunAttributes, type StunMessage,
} from '../../src/relay/stun/index.ts';


export interface TurnClientOptions {
  server: { address: string; port: number };
  username: string;
  password: string;
  /** Local address to bind (default: any of the server's family). */
  localAddress?: string;
  /** Local port to bind (default 0 = ephemeral). Benchmarks fix it so another program can reuse the 5-tuple. */
  localPort?: number;
  /** Resend an unanswered request after this many ms (default 500). */
  retransmitMs?: number;
  /** Give up on a request after this many ms (default 5000). */
  timeoutMs?: number;
  /** SO_RCVBUF to ask for (floods); default the OS default. */
  recvBufferSize?: number;
  /** connect() the socket to the server: sends name no destination, and other sources are filtered by the kernel (floods). */
  connect?: boolean;
}

export interface Allocation {
  relayed: StunAddress[];
  mapped?: StunAddress;
  lifetime: number;
}

/** A TURN error response, with its code (e.g. 403, 437, 486). */
export class TurnError extends Error {
  constructor(readonly method: number, readonly code: number, reason: string) {
    super(`TURN ${method.toString(16)} failed: ${code} ${reason}`);
    this.name = 'TurnError';
  }
}

export interface PeerData {
  /** Channel number for ChannelData, undefined for a Data indication. */
  channel?: number;
  peer?: StunAddress;
  data: Uint8Array;
}

interface Pending {
  resolve(m: StunMessage): void;
  reject(e: Error): void;
}

function familyOf(address: string): 4 | 6 {
  return isIP(address) === 6 ? 6 : 4;
}

export function toStunAddress(address: string, port: number): StunAddress {
  return { family: familyOf(address), address, port };
}

export class TurnClient {
  private readonly pending = new Map<string, Pending>();
  private realm?: string;
  private nonce?: string;
  private key?: Uint8Array;
  private dataHandler?: (d: PeerData) => void;
  /** Datagrams that were neither responses nor peer data (counted, not thrown). */
  dropped = 0;
  /** Requests sent again because no answer came within retransmitMs. */
  retransmits = 0;

  private constructor(private readonly sock: Socket, private readonly opts: TurnClientOptions) {
    sock.on('message', (buf) => this.onMessage(new Uint8Array(buf.buffer, buf.byteOffset, buf.length)));
    sock.on('error', () => { this.dropped++; });
  }

  static async open(opts: TurnClientOptions): Promise<TurnClient> {
    const fam = familyOf(opts.server.address);
    const sock = createSocket({ type: fam === 6 ? 'udp6' : 'udp4', reuseAddr: opts.localPort !== undefined && opts.localPort !== 0, recvBufferSize: opts.recvBufferSize });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ port: opts.localPort ?? 0, address: opts.localAddress ?? (fam === 6 ? '::' : '0.0.0.0') }, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    if (opts.connect) {
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.connect(opts.server.port, opts.server.address, () => {
          sock.off('error', reject);
          resolve();
        });
      });
    }
    return new TurnClient(sock, opts);
  }

  get local(): { address: string; port: number } {
    const a = this.sock.address();
    return { address: a.address, port: a.port };
  }

  /** Called for every ChannelData and Data indication from the server. */
  onData(handler: (d: PeerData) => void): void {
    this.dataHandler = handler;
  }

  /** Allocate a UDP relayed address; `family` asks for REQUESTED-ADDRESS-FAMILY. */
  async allocate(o: { lifetime?: number; family?: 4 | 6 } = {}): Promise<Allocation> {
    const attrs: StunAttributes = { requestedTransport: TRANSPORT_UDP };
    if (o.lifetime !== undefined) attrs.lifetime = o.lifetime;
    if (o.family !== undefined) attrs.requestedAddressFamily = o.family;
    const res = await this.authed(METHOD.ALLOCATE, attrs);
    return { relayed: res.attributes.xorRelayedAddress ?? [], mapped: res.attributes.xorMappedAddress, lifetime: res.attributes.lifetime ?? 0 };
  }

  async createPermission(peers: StunAddress[]): Promise<void> {
    await this.authed(METHOD.CREATE_PERMISSION, { xorPeerAddress: peers });
  }

  async channelBind(channel: number, peer: StunAddress): Promise<void> {
    await this.authed(METHOD.CHANNEL_BIND, { channelNumber: channel, xorPeerAddress: [peer] });
  }

  /** Refresh with `lifetime` seconds (0 deletes the allocation). */
  async refresh(lifetime: number): Promise<number> {
    const res = await this.authed(METHOD.REFRESH, { lifetime });
    return res.attributes.lifetime ?? 0;
  }

  sendChannelData(channel: number, data: Uint8Array): void {
    this.rawSend(encodeChannelData(channel, data));
  }

  sendIndication(peer: StunAddress, data: Uint8Array): void {
    this.rawSend(encodeMessage({ method: METHOD.SEND, cls: 'indication', transactionId: newTransactionId(), attributes: { xorPeerAddress: [peer], data } }));
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) p.reject(new Error('client closed'));
    this.pending.clear();
    await new Promise<void>((resolve) => {
      try {
        this.sock.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }

  /** Datagrams node:dgram has queued but not yet handed to the kernel. */
  sendQueueCount(): number {
    return this.sock.getSendQueueCount();
  }

  private rawSend(buf: Uint8Array): void {
    if (this.opts.connect) this.sock.send(buf);
    else this.sock.send(buf, this.opts.server.port, this.opts.server.address);
  }

  /** A request with long-term credentials: learns realm/nonce from a 401, renews a stale nonce once. */
  private async authed(method: number, attrs: StunAttributes): Promise<StunMessage> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const creds: StunAttributes = this.key ? { username: this.opts.username, realm: this.realm, nonce: this.nonce } : {};
      const res = await this.transact(method, { ...attrs, ...creds }, this.key);
      if (res.cls === 'success') return res;
      const code = res.attributes.errorCode?.code ?? 0;
      const fresh = (code === ERROR.UNAUTHENTICATED && !this.key) || code === ERROR.STALE_NONCE;
      if (fresh && res.attributes.nonce) {
        this.realm = res.attributes.realm ?? this.realm;
        this.nonce = res.attributes.nonce;
        this.key = longTermKey(this.opts.username, this.realm ?? '', this.opts.password);
        continue;
      }
      throw new TurnError(method, code, res.attributes.errorCode?.reason ?? '');
    }
    throw new TurnError(method, ERROR.UNAUTHENTICATED, 'authentication did not converge');
  }

  private transact(method: number, attributes: StunAttributes, key?: Uint8Array): Promise<StunMessage> {
    const transactionId = newTransactionId();
    const buf = encodeMessage({ method, cls: 'request', transactionId, attributes }, key ? { key, fingerprint: true } : { fingerprint: true });
    const id = transactionIdKey(transactionId);
    const every = this.opts.retransmitMs ?? 500;
    const limit = this.opts.timeoutMs ?? 5000;
    return new Promise<StunMessage>((resolve, reject) => {
      const started = Date.now();
      const timer = setInterval(() => {
        if (Date.now() - started >= limit) {
          done();
          reject(new Error(`TURN request ${method.toString(16)} timed out after ${limit} ms`));
        } else {
          this.retransmits++;
          this.rawSend(buf);
        }
      }, every);
      const done = () => {
        clearInterval(timer);
        this.pending.delete(id);
      };
      this.pending.set(id, {
        resolve: (m) => { done(); resolve(m); },
        reject: (e) => { done(); reject(e); },
      });
      this.rawSend(buf);
    });
  }

  private onMessage(buf: Uint8Array): void {
    const kind = classify(buf);
    if (kind === 'channel-data') {
      const cd = decodeChannelData(buf);
      if (cd.kind === 'channel-data') this.dataHandler?.({ channel: cd.channel, data: cd.data });
      else this.dropped++;
      return;
    }
    if (kind !== 'stun') {
      this.dropped++;
      return;
    }
    const r = decodeMessage(buf);
    if (r.kind !== 'message') {
      this.dropped++;
      return;
    }
    const m = r.message;
    if (m.cls === 'indication' && m.method === METHOD.DATA) {
      if (m.attributes.data) this.dataHandler?.({ peer: m.attributes.xorPeerAddress?.[0], data: m.attributes.data });
      return;
    }
    const p = this.pending.get(transactionIdKey(m.transactionId));
    if (p && (m.cls === 'success' || m.cls === 'error')) p.resolve(m);
    else this.dropped++;
  }
}
