// libc through koffi, loaded once per process for every module that calls it
// (batched UDP I/O, rtnetlink, the launcher's listening sockets, SO_PEERCRED,
// the BPF loader's helpers). Each caller declares only the functions it uses;
// koffi and libc.so.6 are required on first use, so the relay, which never
// calls them, never loads koffi.
import { createRequire } from 'node:module';

export type Koffi = typeof import('koffi');

let koffiModule: Koffi | undefined;
let lib: ReturnType<Koffi['load']> | undefined;

export function koffi(): Koffi {
  return (koffiModule ??= createRequire(import.meta.url)('koffi') as Koffi);
}

/** A libc function from its C declaration, e.g. `int close(int fd)`. */
export function libcFunction<F>(declaration: string): F {
  lib ??= koffi().load('libc.so.6');
  return lib.func(declaration) as F;
}

/** errno after the last libc call made through koffi on this thread. */
export const errno = (): number => koffi().errno();
