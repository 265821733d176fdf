// A NETLINK_ROUTE socket through koffi (libc socket, bind, send, recv).
// Two uses, two sockets:
// - a listener joined to multicast groups, non-blocking, read on a timer
//   (receive() returns undefined when nothing waits), so the event loop
//   never blocks on it; ENOBUFS (the kernel dropped notifications because
//   the buffer was full) is reported so the owner can dump everything again;
// - a requester for dumps and requests, blocking with a receive timeout:
//   the kernel answers a request while handling its send, and produces the
//   next part of a dump while the previous one is read, so these reads do
//   not wait (the timeout only guards against a kernel that never answers).
// x86_64 Linux (the platform of the eBPF datapath).
import { constants } from 'node:os';
import { dumpInterrupted, dumpRequest, errorOf, splitMessages, type NlMessage } from './codec.ts';
import { AF_NETLINK, L, NETLINK_ROUTE, NLMSG } from './layout.ts';
import { errno, libcFunction } from '../libc.ts';

const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVTIMEO = 20;
const SO_RCVBUFFORCE = 33;
const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;
const { EAGAIN, EINTR, ENOBUFS } = constants.errno;

/** Room for one datagram: dump parts are at most 32 KiB, notifications far less. */
const RECEIVE_BUFFER = 256 * 1024;

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Uint8Array, len: number): number;
  send(fd: number, buf: Uint8Array, len: number, flags: number): number;
  recv(fd: number, buf: Uint8Array, len: number, flags: number): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array, len: number): number;
  close(fd: number): number;
  errno(): number;
}

let libc: Libc | undefined;
function bind(): Libc {
  if (libc) return libc;
  libc = {
    socket: libcFunction('int socket(int domain, int type, int protocol)'),
    bind: libcFunction('int bind(int fd, const void *addr, uint32_t len)'),
    send: libcFunction('long send(int fd, const void *buf, size_t len, int flags)'),
    recv: libcFunction('long recv(int fd, _Out_ void *buf, size_t len, int flags)'),
    setsockopt: libcFunction('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
    close: libcFunction('int close(int fd)'),
    errno,
  } as Libc;
  return libc;
}

export class NetlinkError extends Error {
  constructor(
    readonly op: string,
    readonly errno: number,
  ) {
    super(`rtnetlink ${op} failed: ${Object.entries(constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`}`);
  }
}

const int32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n, true);
  return b;
};

export interface OpenOptions {
  /** RTNLGRP_* numbers to join (listener); none for a requester. */
  groups?: readonly number[];
  /** Receive buffer wanted, bytes (SO_RCVBUFFORCE as root, else SO_RCVBUF within the system's limit). */
  receiveBuffer?: number;
}

export class RtnetlinkSocket {
  #fd: number;
  readonly #lib: Libc;
  readonly #buf = new Uint8Array(RECEIVE_BUFFER);
  readonly #listener: boolean;
  #seq = 1;

  private constructor(lib: Libc, fd: number, listener: boolean) {
    this.#lib = lib;
    this.#fd = fd;
    this.#listener = listener;
  }

  static open(opts: OpenOptions = {}): RtnetlinkSocket {
    const lib = bind();
    const listener = (opts.groups?.length ?? 0) > 0;
    const fd = lib.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | (listener ? SOCK_NONBLOCK : 0), NETLINK_ROUTE);
    if (fd < 0) throw new NetlinkError('socket', lib.errno());
    const s = new RtnetlinkSocket(lib, fd, listener);
    try {
      if (opts.receiveBuffer) s.#setReceiveBuffer(opts.receiveBuffer);
      if (!listener) {
        // struct timeval { long tv_sec; long tv_usec; }: one second.
        const tv = new Uint8Array(16);
        new DataView(tv.buffer).setBigInt64(0, 1n, true);
        if (lib.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length) < 0) throw new NetlinkError('setsockopt SO_RCVTIMEO', lib.errno());
      }
      const addr = new Uint8Array(L.sockaddrNl.size);
      const v = new DataView(addr.buffer);
      v.setUint16(L.sockaddrNl.family, AF_NETLINK, true);
      v.setUint32(L.sockaddrNl.groups, (opts.groups ?? []).reduce((m, g) => m | (1 << (g - 1)), 0) >>> 0, true);
      if (lib.bind(fd, addr, addr.length) < 0) throw new NetlinkError('bind', lib.errno());
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  #setReceiveBuffer(bytes: number): void {
    if (this.#lib.setsockopt(this.#fd, SOL_SOCKET, SO_RCVBUFFORCE, int32(bytes), 4) === 0) return;
    this.#lib.setsockopt(this.#fd, SOL_SOCKET, SO_RCVBUF, int32(bytes), 4);
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  nextSeq(): number {
    this.#seq = (this.#seq % 0x7fffffff) + 1;
    return this.#seq;
  }

  send(msg: Uint8Array): void {
    for (;;) {
      const n = this.#lib.send(this.#fd, msg, msg.length, 0);
      if (n >= 0) return;
      const e = this.#lib.errno();
      if (e !== EINTR) throw new NetlinkError('send', e);
    }
  }

  /**
   * One datagram's messages; undefined when none waits (listener) or the
   * receive timed out (requester). Throws NetlinkError ENOBUFS when the
   * kernel dropped messages for lack of room.
   */
  receive(): NlMessage[] | undefined {
    for (;;) {
      const n = this.#lib.recv(this.#fd, this.#buf, this.#buf.length, (this.#listener ? MSG_DONTWAIT : 0) | MSG_TRUNC);
      if (n >= 0) {
        if (n > this.#buf.length) throw new NetlinkError('receive (datagram larger than the buffer)', ENOBUFS);
        return splitMessages(this.#buf.slice(0, n));
      }
      const e = this.#lib.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) return undefined;
      throw new NetlinkError('receive', e);
    }
  }

  /** Every object of a kind (RTM.GET*), for one family or all; redone when a change interrupted it. */
  dump(type: number, family: number): NlMessage[] {
    for (let attempt = 0; ; attempt++) {
      const seq = this.nextSeq();
      this.send(dumpRequest(type, family, seq));
      const out: NlMessage[] = [];
      let interrupted = false;
      for (let done = false; !done; ) {
        const batch = this.receive();
        if (batch === undefined) throw new NetlinkError(`dump of type ${type} (no answer within 1 s)`, EAGAIN);
        for (const m of batch) {
          if (m.seq !== seq) continue;
          if (m.type === NLMSG.DONE) done = true;
          else if (m.type === NLMSG.ERROR) {
            const err = errorOf(m);
            if (err < 0) throw new NetlinkError(`dump of type ${type}`, -err);
            done = true;
          } else out.push(m);
          interrupted ||= dumpInterrupted(m);
        }
      }
      if (!interrupted || attempt >= 5) return out;
    }
  }

  /** Sends a request with NLM_F_ACK set and returns its error: 0, or a negative errno. */
  request(msg: Uint8Array, seq: number): number {
    this.send(msg);
    for (;;) {
      const batch = this.receive();
      if (batch === undefined) throw new NetlinkError('request (no answer within 1 s)', EAGAIN);
      const ack = batch.find((m) => m.seq === seq && m.type === NLMSG.ERROR);
      if (ack) return errorOf(ack);
    }
  }

  close(): void {
    if (this.#fd < 0) return;
    this.#lib.close(this.#fd);
    this.#fd = -1;
  }
}
