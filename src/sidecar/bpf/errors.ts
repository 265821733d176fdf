// Errors of the BPF loader: each says what failed and why, with the errno
// text and name ("load turn_router.o failed: Operation not permitted (EPERM)").
import { errnoMessage, errnoName as knownName } from '../../shared/errno.ts';

/** Positive errno of a negative libbpf return value or of koffi.errno(). */
export function errnoName(errno: number): string {
  return knownName(errno) ?? `errno ${Math.abs(errno)}`;
}

/** "Operation not permitted (EPERM)"; the name alone when there is no text. */
export function errnoText(errno: number): string {
  const name = errnoName(errno);
  const text = errnoMessage(errno);
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
