// Listening TCP sockets made with libc's calls, for a process that hands them
// to another (the launcher, which is root, to the relay, which has no network
// of its own). node:net would do the listening, but a node:net server also
// accepts: the launcher's event loop would race the relay for connections.
// A socket made here is only a number: nothing in this process polls it.
//
// The address layouts come from native.ts (sockaddr_in/_in6 declared once).
import { addressToBytes } from '../shared/ip.ts';
import { errnoCode, errnoMessage } from '../shared/errno.ts';
import type { Family } from '../shared/endpoint.ts';
import { AF_INET, AF_INET6, SOL_SOCKET, SO_REUSEADDR, libc } from './native.ts';
import { errno, libcFunction } from './libc.ts';

const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const BACKLOG = 511;

interface Calls {
  socket(domain: number, type: number, protocol: number): number;
  setsockopt(fd: number, level: number, name: number, value: Int32Array, len: number): number;
  bind(fd: number, addr: Uint8Array, len: number): number;
  listen(fd: number, backlog: number): number;
  close(fd: number): number;
  errno(): number;
}

let calls: Calls | undefined;

function bound(): Calls {
  if (calls) return calls;
  calls = {
    socket: libcFunction<Calls['socket']>('int socket(int domain, int type, int protocol)'),
    setsockopt: libcFunction<Calls['setsockopt']>('int setsockopt(int fd, int level, int name, void *value, uint32_t len)'),
    bind: libcFunction<Calls['bind']>('int bind(int fd, void *addr, uint32_t len)'),
    listen: libcFunction<Calls['listen']>('int listen(int fd, int backlog)'),
    close: libcFunction<Calls['close']>('int close(int fd)'),
    errno,
  };
  return calls;
}

/** The bytes of a sockaddr_in or sockaddr_in6 for `address`:`port`. */
function sockaddr(family: Family, address: string, port: number): Uint8Array {
  const l = libc().layout;
  const ip = addressToBytes(address);
  if (!ip || ip.length !== (family === 4 ? 4 : 16)) throw new Error(`not an IPv${family} address: ${address}`);
  const out = new Uint8Array(family === 4 ? l.sockaddrIn : l.sockaddrIn6);
  const view = new DataView(out.buffer);
  view.setUint16(l.family, family === 4 ? AF_INET : AF_INET6, true); // host order (x86_64)
  view.setUint16(l.port, port, false); // network order
  out.set(ip, family === 4 ? l.sinAddr : l.sin6Addr);
  return out;
}

/**
 * A listening TCP socket on `address`:`port` (IPv6 sockets v6-only, so both
 * wildcards bind, as node:net does): its fd, close-on-exec (a child gets it
 * only where its stdio names it). Throws with the errno's name and text.
 */
export function listenTcp(family: Family, address: string, port: number): number {
  const c = bound();
  const fail = (op: string, fd?: number): never => {
    const errno = c.errno();
    if (fd !== undefined) c.close(fd);
    const e = new Error(`${op} ${family === 6 ? `[${address}]` : address}:${port}: ${errnoMessage(errno) ?? `errno ${errno}`}`) as NodeJS.ErrnoException;
    e.code = errnoCode(errno);
    throw e;
  };
  const addr = sockaddr(family, address, port);
  const fd = c.socket(family === 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail('socket');
  const one = new Int32Array([1]);
  if (c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4) < 0) fail('setsockopt SO_REUSEADDR', fd);
  if (family === 6 && c.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, one, 4) < 0) fail('setsockopt IPV6_V6ONLY', fd);
  if (c.bind(fd, addr, addr.length) < 0) fail('bind', fd);
  if (c.listen(fd, BACKLOG) < 0) fail('listen', fd);
  return fd;
}

/** Closes an fd listenTcp returned. */
export function closeFd(fd: number): void {
  bound().close(fd);
}
