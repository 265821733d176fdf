// Routes libbpf's own messages (verifier logs, pin reuse, warnings) to pino
// instead of stderr. libbpf_set_print is process-global, so one callback is
// registered for the process and forwards to the logger of the latest load.
// The va_list is formatted with libc vsnprintf (x86_64 passes va_list as a
// pointer, which is what the callback receives).
import koffi from 'koffi';
import type { Logger } from 'pino';
import { libbpf } from './libbpf.ts';
import { VaListTag } from './structs.ts';

const LEVELS = ['warn', 'info', 'debug'] as const; // LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG

let target: Logger | undefined;
let installed = false;
const buf = Buffer.alloc(4096);
// Long messages (the verifier log) end with the reason: keep head and tail.
const MAX_MESSAGE = 64 * 1024;
const VA_LIST_SIZE = koffi.sizeof(VaListTag); // va_list is VaListTag[1], copyable like va_copy
let apCopy: bigint | undefined;

export function routeLibbpfLogs(log: Logger): void {
  target = log;
  if (installed || process.arch !== 'x64') return;
  const lib = libbpf();
  const cb = koffi.register((level: number, fmt: bigint, ap: bigint): number => {
    const log = target;
    const name = LEVELS[level] ?? 'debug';
    if (!log || !log.isLevelEnabled(name)) return 0;
    // Format from a copy of the va_list first, so a message longer than the
    // buffer can be formatted again from the original at its full length.
    apCopy ??= koffi.alloc('uint8_t', VA_LIST_SIZE) as bigint;
    koffi.encode(apCopy, 'uint8_t', koffi.decode(ap, 'uint8_t', VA_LIST_SIZE) as Uint8Array, VA_LIST_SIZE);
    const n = lib.vsnprintf(buf, buf.length, fmt, apCopy);
    if (n <= 0) return 0;
    let text: string;
    if (n < buf.length) text = buf.toString('utf8', 0, n);
    else {
      const big = Buffer.alloc(n + 1);
      lib.vsnprintf(big, big.length, fmt, ap);
      text = n <= MAX_MESSAGE
        ? big.toString('utf8', 0, n)
        : `${big.toString('utf8', 0, 2048)}\n... (${n - MAX_MESSAGE} bytes left out) ...\n${big.toString('utf8', n - (MAX_MESSAGE - 2048), n)}`;
    }
    text = text.trimEnd();
    if (text) log[name]({ source: 'libbpf' }, text);
    return 0;
  }, koffi.pointer(lib.protos.print));
  lib.setPrint(cb);
  installed = true;
}
