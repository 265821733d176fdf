// Routes libbpf's own messages (verifier logs, pin reuse, warnings) to pino
// instead of stderr. libbpf_set_print is process-global, so one callback is
// registered for the process and forwards to the logger of the latest load.
// The va_list is formatted with libc vsnprintf (x86_64 passes va_list as a
// pointer, which is what the callback receives).
import koffi from 'koffi';
import type { Logger } from 'pino';
import { libbpf } from './libbpf.ts';

const LEVELS = ['warn', 'info', 'debug'] as const; // LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG

let target: Logger | undefined;
let installed = false;
const buf = Buffer.alloc(4096);

export function routeLibbpfLogs(log: Logger): void {
  target = log;
  if (installed || process.arch !== 'x64') return;
  const lib = libbpf();
  const cb = koffi.register((level: number, fmt: bigint, ap: bigint): number => {
    const log = target;
    const name = LEVELS[level] ?? 'debug';
    if (!log || !log.isLevelEnabled(name)) return 0;
    const n = lib.vsnprintf(buf, buf.length, fmt, ap);
    if (n <= 0) return 0;
    const text = buf.toString('utf8', 0, Math.min(n, buf.length - 1)).trimEnd();
    if (text) log[name]({ source: 'libbpf' }, text);
    return 0;
  }, koffi.pointer(lib.protos.print));
  lib.setPrint(cb);
  installed = true;
}
