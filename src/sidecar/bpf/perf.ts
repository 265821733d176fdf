// Reader of the tp_diag perf event array: libbpf's perf_buffer, polled on a
// koffi worker thread (perf_buffer__poll.async) so the event loop stays free.
// libbpf calls the sample/lost callbacks on that worker; koffi queues them to
// the JS thread while the worker waits, so the loop must never block on us.
import koffi from 'koffi';
import type { Logger } from 'pino';
import { decodeDiagEvent, type TpDiagEvent } from './abi.ts';
import { BpfError, errnoText } from './errors.ts';
import { libbpf } from './libbpf.ts';
import type { XdpRouter } from './router.ts';

export interface DiagnosticsOptions {
  /** Pages per CPU ring (power of two; default 8). */
  pages?: number;
  /** Poll timeout: how long close() may wait for the worker (default 100 ms). */
  pollMs?: number;
  onEvent(ev: TpDiagEvent, cpu: number): void;
  onLost?(cpu: number, count: bigint): void;
  log?: Logger;
}

export interface DiagnosticsReader {
  /** Stops polling and frees the buffer; resolves once the worker has returned. */
  close(): Promise<void>;
}

export function openDiagnostics(router: XdpRouter, opts: DiagnosticsOptions): DiagnosticsReader {
  const lib = libbpf();
  const pages = opts.pages ?? 8;
  if (!Number.isInteger(pages) || pages < 1 || (pages & (pages - 1)) !== 0) {
    throw new RangeError(`pages must be a power of two, got ${pages}`);
  }
  const pollMs = opts.pollMs ?? 100;
  const log = opts.log;

  const sample = koffi.register((_ctx: unknown, cpu: number, data: bigint, size: number) => {
    try {
      const ev = decodeDiagEvent(koffi.decode(data, 'uint8_t', size) as Uint8Array);
      if (ev) opts.onEvent(ev, cpu);
      else log?.warn({ cpu, size }, 'short tp_diag sample ignored');
    } catch (err) {
      log?.error({ err }, 'tp_diag handler threw');
    }
  }, koffi.pointer(lib.protos.perfSample));
  const lost = koffi.register((_ctx: unknown, cpu: number, count: number | bigint) => {
    try {
      opts.onLost?.(cpu, BigInt(count));
    } catch (err) {
      log?.error({ err }, 'tp_diag lost handler threw');
    }
  }, koffi.pointer(lib.protos.perfLost));

  const pb = lib.perfBufferNew(router.mapFd('tp_diag'), pages, sample, lost, null, null);
  if (!pb) {
    const errno = lib.errno();
    koffi.unregister(sample);
    koffi.unregister(lost);
    throw BpfError.fromErrno(`open perf buffer on tp_diag (${pages} pages per CPU)`, errno);
  }

  let closing = false;
  let finished: () => void = () => {};
  const done = new Promise<void>((resolve) => (finished = resolve));
  const free = () => {
    lib.perfBufferFree(pb);
    koffi.unregister(sample);
    koffi.unregister(lost);
    finished();
  };
  const poll = () => {
    if (closing) return free();
    lib.perfBufferPoll.async(pb, pollMs, (err, res) => {
      if (err) log?.error({ err }, 'perf_buffer__poll failed');
      // EINTR is a signal landing in epoll_wait: not an error.
      else if (res < 0 && -res !== 4) log?.warn({ error: errnoText(-res) }, 'perf_buffer__poll returned an error');
      poll();
    });
  };
  poll();

  return {
    close() {
      closing = true;
      return done;
    },
  };
}
