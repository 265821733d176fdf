// libc's socket calls for batched UDP I/O, bound through koffi, and the
// kernel structs they take, declared once: every size and offset the send
// and receive paths write into their arenas comes from these declarations
// (koffi.sizeof/offsetof), none from literals.
//
// x86_64 Linux only: the arenas hold 64-bit little-endian pointers, written
// with DataView. Loaded lazily and once, so a machine without koffi's native
// module still runs plain node:dgram.
import { errno, koffi as koffiModule, libcFunction } from './libc.ts';

export const AF_INET = 2;
export const AF_INET6 = 10;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_REUSEPORT = 15;
export const SO_PROTOCOL = 38;
/** SO_MEMINFO (4.12+): the socket's sk_meminfo counters as u32[SK_MEMINFO_VARS] (linux/sock_diag.h). */
export const SO_MEMINFO = 55;
export const SK_MEMINFO_VARS = 9;
/** Index of sk_drops: datagrams the kernel dropped at this socket (receive buffer full, bad checksum, filter). */
export const SK_MEMINFO_DROPS = 8;
export const IPPROTO_UDP = 17;
/** UDP_SEGMENT (linux/udp.h): the socket option and cmsg type of UDP GSO, at level SOL_UDP. */
export const SOL_UDP = 17;
export const UDP_SEGMENT = 103;

/** Byte offsets and sizes in the structs, as koffi lays them out for this platform. */
export interface MmsgLayout {
  /** struct mmsghdr and its fields (those of its msghdr included). */
  mmsghdr: number;
  msgName: number;
  msgNamelen: number;
  msgIov: number;
  msgIovlen: number;
  msgControl: number;
  msgControllen: number;
  msgFlags: number;
  msgLen: number;
  /** struct iovec, for a message gathered from several datagrams' memory. */
  iovec: number;
  /** One cmsg carrying a uint16 (UDP_SEGMENT): its CMSG_SPACE, CMSG_LEN and field offsets. */
  cmsgSpaceU16: number;
  cmsgLenU16: number;
  cmsgLen: number;
  cmsgLevel: number;
  cmsgType: number;
  cmsgData: number;
  /** One datagram's struct iovec and address side by side (`struct datagram_meta`). */
  meta: number;
  iovBase: number;
  iovLen: number;
  addr: number;
  /** Room for either address (the union), and each one's length (msg_namelen). */
  sockaddr: number;
  sockaddrIn: number;
  sockaddrIn6: number;
  /** Offsets inside the address; family and port lead both sockaddr_in and sockaddr_in6. */
  family: number;
  port: number;
  sinAddr: number;
  sin6Addr: number;
}

type Fd = number;
export type SendMmsg = (fd: Fd, vec: bigint, vlen: number, flags: number) => number;
export type RecvMmsg = (fd: Fd, vec: bigint, vlen: number, flags: number, timeout: null) => number;
/** `len` is in/out: the room in `addr`, then the address's length. */
export type GetSockName = (fd: Fd, addr: Uint8Array, len: Uint32Array) => number;
export type GetSockOpt = (fd: Fd, level: number, name: number, value: Int32Array, len: Uint32Array) => number;

export interface Libc {
  layout: MmsgLayout;
  sendmmsg: SendMmsg;
  recvmmsg: RecvMmsg;
  getsockname: GetSockName;
  getsockopt: GetSockOpt;
  errno(): number;
  /** Zeroed native memory (the kernel reads it by address), freed with `free`. */
  alloc(bytes: number): { base: bigint; buffer: ArrayBuffer; free: () => void };
}

/** Why batched I/O cannot run here, or undefined when it can. */
export function platformReason(): string | undefined {
  return process.platform === 'linux' && process.arch === 'x64' ? undefined : `${process.platform}/${process.arch} is not x86_64 Linux`;
}

let loaded: Libc | Error | undefined;

/** The bound calls and layouts (loaded on first use); throws why they are unavailable. */
export function libc(): Libc {
  if (loaded === undefined) {
    const unsupported = platformReason();
    try {
      loaded = unsupported ? new Error(unsupported) : load();
    } catch (e) {
      loaded = e as Error;
    }
  }
  if (loaded instanceof Error) throw loaded;
  return loaded;
}

function load(): Libc {
  const koffi = koffiModule();
  // Anonymous types: koffi's names are process-wide, and libbpf's binding declares its own.
  const iovec = koffi.struct({ iov_base: 'void *', iov_len: 'size_t' });
  const msghdr = koffi.struct({
    msg_name: 'void *',
    msg_namelen: 'uint32_t',
    msg_iov: 'void *',
    msg_iovlen: 'size_t',
    msg_control: 'void *',
    msg_controllen: 'size_t',
    msg_flags: 'int',
  });
  const mmsghdr = koffi.struct({ msg_hdr: msghdr, msg_len: 'unsigned int' });
  const cmsghdr = koffi.struct({ cmsg_len: 'size_t', cmsg_level: 'int', cmsg_type: 'int' });
  // CMSG_ALIGN (bits/socket.h): lengths round up to a size_t.
  const align = (n: number) => Math.ceil(n / koffi.sizeof('size_t')) * koffi.sizeof('size_t');
  const sockaddrIn = koffi.struct({ sin_family: 'uint16_t', sin_port: 'uint16_t', sin_addr: 'uint8_t[4]', sin_zero: 'uint8_t[8]' });
  const sockaddrIn6 = koffi.struct({
    sin6_family: 'uint16_t',
    sin6_port: 'uint16_t',
    sin6_flowinfo: 'uint32_t',
    sin6_addr: 'uint8_t[16]',
    sin6_scope_id: 'uint32_t',
  });
  const sockaddr = koffi.union({ in4: sockaddrIn, in6: sockaddrIn6 });
  const meta = koffi.struct({ iov: iovec, addr: sockaddr });
  const hdr = koffi.offsetof(mmsghdr, 'msg_hdr');
  const iov = koffi.offsetof(meta, 'iov');
  const layout: MmsgLayout = {
    mmsghdr: koffi.sizeof(mmsghdr),
    msgName: hdr + koffi.offsetof(msghdr, 'msg_name'),
    msgNamelen: hdr + koffi.offsetof(msghdr, 'msg_namelen'),
    msgIov: hdr + koffi.offsetof(msghdr, 'msg_iov'),
    msgIovlen: hdr + koffi.offsetof(msghdr, 'msg_iovlen'),
    msgControl: hdr + koffi.offsetof(msghdr, 'msg_control'),
    msgControllen: hdr + koffi.offsetof(msghdr, 'msg_controllen'),
    msgFlags: hdr + koffi.offsetof(msghdr, 'msg_flags'),
    msgLen: koffi.offsetof(mmsghdr, 'msg_len'),
    iovec: koffi.sizeof(iovec),
    cmsgSpaceU16: align(koffi.sizeof(cmsghdr)) + align(2),
    cmsgLenU16: align(koffi.sizeof(cmsghdr)) + 2,
    cmsgLen: koffi.offsetof(cmsghdr, 'cmsg_len'),
    cmsgLevel: koffi.offsetof(cmsghdr, 'cmsg_level'),
    cmsgType: koffi.offsetof(cmsghdr, 'cmsg_type'),
    cmsgData: align(koffi.sizeof(cmsghdr)),
    meta: koffi.sizeof(meta),
    iovBase: iov + koffi.offsetof(iovec, 'iov_base'),
    iovLen: iov + koffi.offsetof(iovec, 'iov_len'),
    addr: koffi.offsetof(meta, 'addr'),
    sockaddr: koffi.sizeof(sockaddr),
    sockaddrIn: koffi.sizeof(sockaddrIn),
    sockaddrIn6: koffi.sizeof(sockaddrIn6),
    family: koffi.offsetof(sockaddrIn6, 'sin6_family'),
    port: koffi.offsetof(sockaddrIn6, 'sin6_port'),
    sinAddr: koffi.offsetof(sockaddrIn, 'sin_addr'),
    sin6Addr: koffi.offsetof(sockaddrIn6, 'sin6_addr'),
  };
  return {
    layout: Object.freeze(layout),
    sendmmsg: libcFunction<SendMmsg>('int sendmmsg(int fd, void *vec, unsigned int vlen, int flags)'),
    recvmmsg: libcFunction<RecvMmsg>('int recvmmsg(int fd, void *vec, unsigned int vlen, int flags, void *timeout)'),
    getsockname: libcFunction<GetSockName>('int getsockname(int fd, void *addr, void *len)'),
    getsockopt: libcFunction<GetSockOpt>('int getsockopt(int fd, int level, int name, void *value, void *len)'),
    errno,
    alloc(bytes) {
      const base = koffi.alloc('uint8_t', bytes) as bigint;
      const buffer = koffi.view(base, bytes);
      new Uint8Array(buffer).fill(0);
      return { base, buffer, free: () => koffi.free(base) };
    },
  };
}
