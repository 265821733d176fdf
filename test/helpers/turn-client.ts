// A small TURN client (RFC 8656 over UDP, or over TCP/TLS with openStream)
// for tests and benchmarks, built on the project's codec. One client = one
// socket or connection = one 5-tuple = at most one allocation. Long-term credentials: the first Allocate is sent without
// credentials, the 401 gives realm and nonce, and a 438 (stale nonce) is
// retried once with the new nonce. Requests are retransmitted on a fixed
// interval (tests run on veth/loopback, where loss only comes from overload).
import { createSocket } from 'node:dgram';
import { connect as tcpConnect, isIP, type Socket as TcpSocket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { StreamFramer, padForStream } from '../../src/relay/transport/stream-framer.ts';
import {
  ERROR, METHOD, TRANSPORT_UDP,
  classify, decodeChannelData, decodeMessage, encodeChannelData, encodeMessage,
  longTermKey, newTransactionId, transactionIdKey,
  type StunAddress, type StunAttributes, type StunMessage,
} from '../../src/relay/stun/index.ts';

/** Where a client-process fixture (a flow, the soak's driver) relays to: the TURN server, its credentials, the peer. Passed as JSON on argv. */
export interface RelayTarget {
  server: string;
  port: number;
  username: string;
  password: string;
  peer: string;
  peerPort: number;
}

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

/** What carries the client's messages: a UDP socket, or a TCP/TLS connection. */
interface Wire {
  send(buf: Uint8Array): void;
  close(): Promise<void>;
  local(): { address: string; port: number };
  /** Messages (UDP) or bytes (streams) queued but not yet handed to the kernel. */
  queued(): number;
}

export interface StreamOptions {
  /** TLS (turns:) with these trust settings; absent: plain TCP. */
  tls?: { ca?: string | Buffer; servername?: string };
  /** Largest message accepted from the server (default 65556). */
  maxFrame?: number;
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

  /** Set once a stream connection ends (closed by the server or broken). */
  ended = false;

  private constructor(private readonly wire: Wire, private readonly opts: TurnClientOptions) {}

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
    const client: TurnClient = new TurnClient(
      {
        send: (buf) => (opts.connect ? sock.send(buf) : sock.send(buf, opts.server.port, opts.server.address)),
        close: () => new Promise<void>((resolve) => {
          try {
            sock.close(() => resolve());
          } catch {
            resolve();
          }
        }),
        local: () => sock.address(),
        queued: () => sock.getSendQueueCount(),
      },
      opts,
    );
    sock.on('message', (buf) => client.onMessage(new Uint8Array(buf.buffer, buf.byteOffset, buf.length)));
    sock.on('error', () => { client.dropped++; });
    return client;
  }

  /**
   * A client over TCP, or TLS with `stream.tls` (RFC 8656 §3.1): one
   * connection, messages framed per RFC 8489 §6.2.2 (ChannelData padded to
   * 4 bytes). Requests are not retransmitted (the stream is reliable); set
   * timeoutMs for how long to wait for an answer.
   */
  static async openStream(opts: TurnClientOptions, stream: StreamOptions = {}): Promise<TurnClient> {
    const { address: host, port } = opts.server;
    const socket: TcpSocket = await new Promise((resolve, reject) => {
      const s: TcpSocket = stream.tls
        ? tlsConnect({ host, port, ca: stream.tls.ca, servername: stream.tls.servername ?? (isIP(host) ? undefined : host), ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) }, () => resolve(s))
        : tcpConnect({ host, port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) }, () => resolve(s));
      s.once('error', reject);
    });
    socket.setNoDelay(true);
    const framer = new StreamFramer(stream.maxFrame ?? 65556);
    const client: TurnClient = new TurnClient(
      {
        send: (buf) => void socket.write(padForStream(buf)),
        close: () => new Promise<void>((resolve) => {
          if (socket.destroyed) return resolve();
          socket.once('close', () => resolve());
          socket.end();
          setTimeout(() => socket.destroy(), 1000).unref();
        }),
        local: () => ({ address: socket.localAddress ?? '', port: socket.localPort ?? 0 }),
        queued: () => socket.writableLength,
      },
      { retransmitMs: 3_600_000, ...opts },
    );
    socket.on('data', (chunk: Buffer) => {
      const { frames, error } = framer.push(chunk);
      for (const f of frames) client.onMessage(f);
      if (error !== undefined) socket.destroy();
    });
    const end = () => {
      client.ended = true;
      for (const p of client.pending.values()) p.reject(new Error('connection closed'));
    };
    socket.on('error', () => { client.dropped++; });
    socket.on('close', end);
    return client;
  }

  get local(): { address: string; port: number } {
    return this.wire.local();
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
    await this.wire.close();
  }

  /** Datagrams node:dgram has queued but not yet handed to the kernel (streams: bytes not yet written). */
  sendQueueCount(): number {
    return this.wire.queued();
  }

  private rawSend(buf: Uint8Array): void {
    this.wire.send(buf);
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
