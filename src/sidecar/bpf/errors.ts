// Errors of the BPF loader: each says what failed and why, with the errno
// text and name ("load turn_router.o failed: Operation not permitted (EPERM)").
import { constants } from 'node:os';

const ERRNO_NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!ERRNO_NAMES.has(value)) ERRNO_NAMES.set(value, name);
}
// Aliases share a number; keep the name the kernel sources use.
ERRNO_NAMES.set(constants.errno.EOPNOTSUPP, 'EOPNOTSUPP');
ERRNO_NAMES.set(constants.errno.EAGAIN, 'EAGAIN');
// Kernel-internal code that leaks out of some BPF commands.
ERRNO_NAMES.set(524, 'ENOTSUPP');

// strerror texts for the codes BPF calls return; others fall back to the name.
const TEXTS: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EINTR: 'Interrupted system call',
  EIO: 'Input/output error',
  E2BIG: 'Argument list too long',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EINVAL: 'Invalid argument',
  ENOSPC: 'No space left on device',
  ERANGE: 'Numerical result out of range',
  ENOSYS: 'Function not implemented',
  EOPNOTSUPP: 'Operation not supported',
  ENOTSUPP: 'Operation not supported',
  ENXIO: 'No such device or address',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  ENOTCONN: 'Transport endpoint is not connected',
};

/** Positive errno of a negative libbpf return value or of koffi.errno(). */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(Math.abs(errno)) ?? `errno ${Math.abs(errno)}`;
}

/** "Operation not permitted (EPERM)". */
export function errnoText(errno: number): string {
  const name = errnoName(errno);
  const text = TEXTS[name];
  return text ? `${text} (${name})` : name;
}

export class BpfError extends Error {
  override readonly name = 'BpfError';
  /** Errno name (EPERM) or a loader code (ABI_MISMATCH, PIN_MISMATCH, NO_LIBBPF, NO_MAP). */
  readonly code: string;
  /** Positive errno when a libbpf or kernel call failed, else 0. */
  readonly errno: number;

  constructor(message: string, code: string, errno = 0) {
    super(message);
    this.code = code;
    this.errno = errno;
  }

  /** `${what} failed: ${errno text}${hint}`. */
  static fromErrno(what: string, errno: number, hint = ''): BpfError {
    const e = Math.abs(errno);
    return new BpfError(`${what} failed: ${errnoText(e)}${hint ? `: ${hint}` : ''}`, errnoName(e), e);
  }
}
