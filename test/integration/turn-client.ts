// A small TURN client over a real UDP socket, built on the relay's own codec:
// Allocate (with the 401 nonce round), CreatePermission, ChannelBind, then
// ChannelData both ways. Used by integration fixtures that need a steady flow
// (coturn's uclient sends a fixed burst and cannot keep a flow going across a
// process restart) and by the userspace pps measurement.
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import {
  METHOD,
  decodeMessage,
  encodeMessage,
  longTermKey,
  newTransactionId,
  decodeChannelData,
  encodeChannelData,
  type StunAttributes,
  type StunMessage,
} from '../../src/relay/stun/index.ts';

export interface TurnClientOptions {
  server: string;
  port: number;
  username: string;
  password: string;
  /** Receive buffer for floods; default the OS default. */
  recvBufferSize?: number;
}

export class TurnFlowClient {
  readonly socket: Socket;
  private key: Uint8Array | undefined;
  private realm = '';
  private nonce = '';
  private readonly waiters = new Map<string, (m: StunMessage) => void>();
  /** Called for each ChannelData the relay delivers. */
  onChannelData: (channel: number, data: Uint8Array) => void = () => {};
  relayed: { address: string; port: number } | undefined;

  private constructor(private readonly opts: TurnClientOptions) {
    this.socket = createSocket({ type: isIP(opts.server) === 6 ? 'udp6' : 'udp4', recvBufferSize: opts.recvBufferSize });
    this.socket.on('message', (buf) => this.onMessage(new Uint8Array(buf.buffer, buf.byteOffset, buf.length)));
    this.socket.on('error', () => {});
  }

  static async connect(opts: TurnClientOptions): Promise<TurnFlowClient> {
    const c = new TurnFlowClient(opts);
    await new Promise<void>((r) => c.socket.bind(0, r));
    c.socket.connect(opts.port, opts.server);
    await new Promise<void>((r) => c.socket.once('connect', r));
    return c;
  }

  private onMessage(buf: Uint8Array): void {
    if (buf.length >= 4 && (buf[0]! & 0xc0) === 0x40) {
      const cd = decodeChannelData(buf);
      if (cd.kind === 'channel-data') this.onChannelData(cd.channel, cd.data);
      return;
    }
    const r = decodeMessage(buf);
    if (r.kind !== 'message') return;
    const id = Buffer.from(r.message.transactionId).toString('hex');
    const w = this.waiters.get(id);
    if (w) {
      this.waiters.delete(id);
      w(r.message);
    }
  }

  /** One request with retransmissions; resolves with the answer. */
  private async transact(method: number, attributes: StunAttributes, auth: boolean): Promise<StunMessage> {
    const transactionId = newTransactionId();
    const attrs: StunAttributes = auth ? { ...attributes, username: this.opts.username, realm: this.realm, nonce: this.nonce } : attributes;
    const bytes = encodeMessage(
      { method, cls: 'request', transactionId, attributes: attrs },
      auth ? { key: this.key!, integrity: 'sha1', fingerprint: true } : { fingerprint: true },
    );
    const id = Buffer.from(transactionId).toString('hex');
    return new Promise<StunMessage>((resolve, reject) => {
      let tries = 0;
      const send = () => {
        if (++tries > 7) {
          this.waiters.delete(id);
          reject(new Error(`no answer to method 0x${method.toString(16)} from ${this.opts.server}:${this.opts.port}`));
          return;
        }
        this.socket.send(bytes);
        timer = setTimeout(send, 250 * tries);
      };
      let timer: NodeJS.Timeout;
      this.waiters.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      send();
    });
  }

  /** Authenticated request, retrying once on 401/438 with the server's nonce. */
  private async request(method: number, attributes: StunAttributes): Promise<StunMessage> {
    for (let i = 0; i < 3; i++) {
      const m = await this.transact(method, attributes, this.key !== undefined);
      const code = m.attributes.errorCode?.code;
      if (m.cls === 'success') return m;
      if ((code === 401 || code === 438) && m.attributes.nonce) {
        this.nonce = m.attributes.nonce;
        this.realm = m.attributes.realm ?? this.realm;
        this.key = longTermKey(this.opts.username, this.realm, this.opts.password);
        continue;
      }
      throw new Error(`request 0x${method.toString(16)} failed: ${code} ${m.attributes.errorCode?.reason ?? ''}`);
    }
    throw new Error(`request 0x${method.toString(16)}: authentication did not converge`);
  }

  async binding(): Promise<{ address: string; port: number }> {
    const m = await this.transact(METHOD.BINDING, {}, false);
    const a = m.attributes.xorMappedAddress;
    if (m.cls !== 'success' || !a) throw new Error('binding failed');
    return { address: a.address, port: a.port };
  }

  async allocate(family: 4 | 6 = isIP(this.opts.server) === 6 ? 6 : 4): Promise<{ address: string; port: number }> {
    const m = await this.request(METHOD.ALLOCATE, { requestedTransport: 17, ...(family === 6 ? { requestedAddressFamily: 6 } : {}) });
    const r = m.attributes.xorRelayedAddress?.[0];
    if (!r) throw new Error('allocate success without XOR-RELAYED-ADDRESS');
    this.relayed = { address: r.address, port: r.port };
    return this.relayed;
  }

  async bindChannel(channel: number, peer: { address: string; port: number }): Promise<void> {
    const family = isIP(peer.address) === 6 ? 6 : 4;
    await this.request(METHOD.CREATE_PERMISSION, { xorPeerAddress: [{ family, address: peer.address, port: 0 }] });
    await this.request(METHOD.CHANNEL_BIND, { channelNumber: channel, xorPeerAddress: [{ family, address: peer.address, port: peer.port }] });
  }

  sendChannelData(channel: number, data: Uint8Array): void {
    this.socket.send(encodeChannelData(channel, data));
  }

  close(): void {
    this.socket.close();
  }
}
