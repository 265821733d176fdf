// The fd under a node:dgram socket, found through public interfaces only.
// node keeps the fd on a private handle; but the kernel names a bound socket
// by its address, which dgram's address() reports. So, once per socket, probe
// this process's fds with getsockname(2) for the UDP socket bound there.
//
// That socket is the only one when it was bound without SO_REUSEADDR and
// SO_REUSEPORT: the kernel then refuses the address to any other socket (and
// a socket with either flag cannot share it). When the match has either
// flag, another fd could be bound there too, so none is used (-1: callers
// keep plain node:dgram for that socket).
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { addressToBytes } from '../shared/ip.ts';
import { AF_INET, AF_INET6, IPPROTO_UDP, SOL_SOCKET, SO_PROTOCOL, SO_REUSEADDR, SO_REUSEPORT, libc, type Libc } from './native.ts';

const fds = new WeakMap<Socket, number>();
/** Which socket each fd found belongs to; a closed socket's number may come back under a new one. */
const owners = new Map<number, Socket>();

/** The fd under a bound node:dgram socket, or -1 (closed, unbound, possibly shared, or no libc here). */
export function fdOf(socket: Socket): number {
  const fd = fds.get(socket);
  return fd !== undefined ? fd : lookUp(socket);
}

/**
 * Stops answering with a socket's fd. Call it when closing the socket: the
 * fd is closed at once, and its number can be reused before dgram's 'close'
 * event (which forgets it too).
 */
export function forgetFd(socket: Socket): void {
  const fd = fds.get(socket);
  if (fd === undefined) return;
  fds.delete(socket);
  if (owners.get(fd) === socket) owners.delete(fd);
}

function lookUp(socket: Socket): number {
  let local: AddressInfo;
  try {
    local = socket.address();
  } catch {
    return -1; // Not bound yet, or closed: nothing to remember.
  }
  let fd = -1;
  try {
    fd = findFd(libc(), local);
  } catch {
    // No libc binding here: -1 for good.
  }
  const previous = owners.get(fd);
  if (previous) forgetFd(previous);
  if (fd >= 0) owners.set(fd, socket);
  fds.set(socket, fd);
  socket.once('close', () => forgetFd(socket));
  return fd;
}

function findFd(c: Libc, local: AddressInfo): number {
  const want = addressToBytes(local.address);
  if (!want) return -1;
  const L = c.layout;
  const family = local.family === 'IPv4' ? AF_INET : AF_INET6;
  const at = family === AF_INET ? L.sinAddr : L.sin6Addr;
  const sa = new Uint8Array(L.sockaddr);
  const view = new DataView(sa.buffer);
  const len = new Uint32Array(1);
  const boundThere = (fd: number): boolean => {
    len[0] = sa.length;
    if (c.getsockname(fd, sa, len) !== 0) return false; // not open, or not a socket
    if (view.getUint16(L.family, true) !== family || view.getUint16(L.port, false) !== local.port) return false;
    for (let k = 0; k < want.length; k++) if (sa[at + k] !== want[k]) return false;
    return option(c, fd, SO_PROTOCOL) === IPPROTO_UDP; // a TCP socket may hold the same address
  };
  // The socket's fd was the lowest free one when it was made, and sockets
  // already found are skipped: the first pass usually ends after a few
  // probes. Found fds are probed last, in case one's socket closed unseen.
  for (const known of [false, true]) {
    for (let fd = 0; inFdTable(fd); fd++) {
      if (owners.has(fd) !== known || !boundThere(fd)) continue;
      return option(c, fd, SO_REUSEADDR) === 0 && option(c, fd, SO_REUSEPORT) === 0 ? fd : -1;
    }
  }
  return -1;
}

/** An int socket option; -1 when it cannot be read. */
function option(c: Libc, fd: number, name: number): number {
  const value = new Int32Array(1);
  const len = new Uint32Array([4]);
  return c.getsockopt(fd, SOL_SOCKET, name, value, len) === 0 ? value[0]! : -1;
}

let fdTable = 0;

/**
 * Whether `fd` is below the size of this process's fd table, which every
 * open fd is. The table only grows, and reading its size costs tens of
 * microseconds: it is read again only when a probe reaches the size last read.
 */
function inFdTable(fd: number): boolean {
  if (fd < fdTable) return true;
  const m = /^FDSize:\s*(\d+)/m.exec(readFileSync('/proc/self/status', 'latin1'));
  fdTable = m ? Number(m[1]) : 0;
  return fd < fdTable;
}
