// Names and texts of kernel errno values, from one source: Node's own table
// (libuv's names, the ones node reports socket errors with, and its texts),
// then os.constants for the Linux codes libuv does not list, then the few
// choices of our own below. Texts read as strerror(3) does (as ip, bpftool
// and libbpf print them). Accepts an errno either sign (libbpf returns them
// negated).
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

const NAMES = new Map<number, string>();
const TEXTS = new Map<number, string>();
for (const [code, [name, text]] of getSystemErrorMap()) {
  NAMES.set(-code, name);
  // libuv writes them in lower case ("no such device"); messages here start a sentence.
  TEXTS.set(-code, text.charAt(0).toUpperCase() + text.slice(1));
}
for (const [name, value] of Object.entries(constants.errno)) if (!NAMES.has(value)) NAMES.set(value, name);
// Aliases share a number; keep the name the kernel sources use.
NAMES.set(constants.errno.EOPNOTSUPP, 'EOPNOTSUPP');
NAMES.set(constants.errno.EAGAIN, 'EAGAIN');
// Where libuv words a code its own way ("resource busy or locked"), strerror's text.
const STRERROR: Readonly<Record<string, string>> = {
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  EALREADY: 'Operation already in progress',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  EFAULT: 'Bad address',
  EHOSTUNREACH: 'No route to host',
  EILSEQ: 'Invalid or incomplete multibyte or wide character',
  EIO: 'Input/output error',
  EISCONN: 'Transport endpoint is already connected',
  EISDIR: 'Is a directory',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  ENFILE: 'Too many open files in system',
  ENOMEM: 'Cannot allocate memory',
  ENOTCONN: 'Transport endpoint is not connected',
  EOPNOTSUPP: 'Operation not supported',
  ERANGE: 'Numerical result out of range',
  ESPIPE: 'Illegal seek',
  ETXTBSY: 'Text file busy',
  EXDEV: 'Invalid cross-device link',
};
for (const [name, text] of Object.entries(STRERROR)) TEXTS.set(constants.errno[name as keyof typeof constants.errno], text);
// Kernel-internal code that leaks out of some BPF commands (no libc knows it).
const ENOTSUPP = 524;
NAMES.set(ENOTSUPP, 'ENOTSUPP');
TEXTS.set(ENOTSUPP, 'Operation not supported');

/** "EPERM" for 1 or -1; undefined for a code no table knows. */
export function errnoName(errno: number): string | undefined {
  return NAMES.get(Math.abs(errno));
}

/** "Operation not permitted" for 1 or -1; undefined for a code without a text. */
export function errnoMessage(errno: number): string | undefined {
  return TEXTS.get(Math.abs(errno));
}

/** The errno as a socket error code in stats keys ("EHOSTUNREACH"; "errno135" when unnamed). */
export function errnoCode(errno: number): string {
  return errnoName(errno) ?? `errno${Math.abs(errno)}`;
}
