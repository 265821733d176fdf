// node:dgram plumbing shared by the two owners of UDP sockets: the relay's
// standalone transport and the sidecar. Both bind the same way (exclusive,
// IPv6 sockets v6-only, raised buffers), resolve destinations the same way
// and hand the TURN server the same view of a remote address.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Family, TransportAddress } from '../shared/endpoint.ts';


/**
 * node:dgram resolves every destination with dns.lookup, which answers an IP
 * literal on the next tick: a tick per datagram sent. Destinations here are IP
 * literals, so answer those at once and leave names to dns.lookup.
 */
export function literalLookup(hostname: string, options: LookupOneOptions | number, cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  const family = isIP(hostname);
  if (family !== 0) return cb(null, hostname, family);
  dnsLookup(hostname, typeof options === 'number' ? { family: options } : options, cb);
}

/**
 * The remote address as the server should see it. Sockets here are IPv6-only,
 * so an IPv4-mapped source (::ffff:a.b.c.d) on one can only be a spoofed IPv6
 * datagram: it stays an IPv6 address, never becomes the IPv4 client it names
 * (which would let it act on, or reflect towards, IPv4 state).
 */
export function remoteOf(rinfo: Pick<RemoteInfo, 'address' | 'family' | 'port'>): TransportAddress {
  return { family: rinfo.family === 'IPv4' ? 4 : 6, address: rinfo.address, port: rinfo.port };
}

/** Closes a socket that may already be closed (or never bound); `done` runs either way. */
export function closeQuietly(s: Socket, done?: () => void): void {
  try {
    s.close(done);
  } catch {
    done?.();
  }
}

/** Binds one UDP socket exclusively and asks for `bufferBytes` of SO_RCVBUF/SO_SNDBUF; rejects (socket closed) when it cannot bind. */
export function bindUdp(family: Family, address: string, port: number, bufferBytes: number, log?: Logger): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: family === 4 ? 'udp4' : 'udp6', ipv6Only: family === 6, reuseAddr: false, lookup: literalLookup });
    const onError = (e: Error) => {
      closeQuietly(socket);
      reject(e);
    };
    socket.once('error', onError);
    socket.bind({ port, address, exclusive: true }, () => {
      socket.off('error', onError);
      try {
        socket.setRecvBufferSize(bufferBytes);
        socket.setSendBufferSize(bufferBytes);
      } catch (e) {
        // The kernel clamps to net.core.[rw]mem_max rather than failing; an error here is cosmetic.
        log?.debug({ err: (e as Error).message }, 'could not raise socket buffers');
      }
      resolve(socket);
    });
  });
}

/**
 * With several listen sockets in one family, replies leave from the one the
 * client used. Bounded: a scan from many sources only costs a fallback to the
 * first socket.
 */
export class ReplyRoutes {
  private readonly via = new Map<string, Socket>();

  remember(remote: TransportAddress, socket: Socket): void {
    if (this.via.size >= 65536) this.via.clear();
    this.via.set(`${remote.address}|${remote.port}`, socket);
  }

  get(to: TransportAddress): Socket | undefined {
    return this.via.get(`${to.address}|${to.port}`);
  }

  clear(): void {
    this.via.clear();
  }
}
