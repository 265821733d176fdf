// Who is on the other end of a Unix stream socket: SO_PEERCRED (the pid, uid
// and gid the kernel recorded at connect) through getsockopt(2) in libc via
// koffi, since Node does not expose it. The link admits only the relay's user
// this way: the socket file's group alone admits any process of that group.
import { errno, koffi, libcFunction } from '../net/libc.ts';
import type { Socket } from 'node:net';

export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

const SOL_SOCKET = 1;
/** 17 on x86_64 and arm64 (the generic asm value); other architectures number it differently. */
const SO_PEERCRED = 17;
const UCRED_BYTES = 12; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }: three 32-bit fields everywhere

type GetPeerCred = (fd: number, level: number, name: number, out: Partial<PeerCredentials>, len: number[]) => number;
let bound: { getsockopt: GetPeerCred; errno: () => number } | undefined;

function bind(): NonNullable<typeof bound> {
  if (bound) return bound;
  if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) {
    throw new Error(`SO_PEERCRED is not known on ${process.platform}/${process.arch}`);
  }
  koffi().struct('turnpike_ucred', { pid: 'int32', uid: 'uint32', gid: 'uint32' });
  const getsockopt = libcFunction<GetPeerCred>('int getsockopt(int fd, int level, int name, _Out_ turnpike_ucred *val, _Inout_ uint32_t *len)');
  bound = { getsockopt, errno };
  return bound;
}

/**
 * The fd under a connected net.Socket. Node has no public accessor; the
 * socket's libuv handle (`_handle`, a Pipe) carries it, and reading it here,
 * in this one place, keeps that dependence on Node's internals in sight.
 */
function fdOfStream(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/** The connecting process's credentials; throws when they cannot be read (the caller refuses the peer then). */
export function peerCredentials(socket: Socket): PeerCredentials {
  const fd = fdOfStream(socket);
  if (fd < 0) throw new Error('the socket has no file descriptor');
  const out: Partial<PeerCredentials> = {};
  const len = [UCRED_BYTES];
  const { getsockopt, errno } = bind();
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, out, len) !== 0) throw new Error(`getsockopt(SO_PEERCRED) failed: errno ${errno()}`);
  if (len[0] !== UCRED_BYTES) throw new Error(`getsockopt(SO_PEERCRED) returned ${len[0]} bytes`);
  return { pid: out.pid!, uid: out.uid!, gid: out.gid! };
}
