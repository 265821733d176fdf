// Runs a loaded XDP program on one frame with BPF_PROG_TEST_RUN
// (bpf_prog_test_run_opts): the harness of the BPF tests and the XDP
// micro-benchmark. The kernel writes the output frame into a buffer of our
// own, with room for the program to grow the frame at head or tail.
import koffi from 'koffi';
import type { Logger } from 'pino';
import { XDP_ACTION_NAMES } from '../../src/sidecar/bpf/abi.ts';
import { BpfError } from '../../src/sidecar/bpf/errors.ts';
import { libbpf } from '../../src/sidecar/bpf/libbpf.ts';
import { slotKey } from '../../src/sidecar/bpf/maps.ts';
import { XdpRouter } from '../../src/sidecar/bpf/router.ts';
import { BpfTestRunOpts, sizedOpts, type TestRunOpts } from '../../src/sidecar/bpf/structs.ts';

/** Bytes beyond the input the program may add (encapsulation, trailers). */
const GROWTH = 4096;

export interface TestRunResult {
  action: number;
  actionName: string;
  data: Uint8Array;
  /** Average ns per run, as the kernel reports it. */
  durationNs: number;
}

/** Runs router's program `repeat` times (default 1) on frame; durationNs is the kernel's average. */
export function testRun(router: XdpRouter, frame: Uint8Array, { repeat = 1 }: { repeat?: number } = {}): TestRunResult {
  const progFd = router.programFd();
  const outCap = frame.length + GROWTH;
  // Stable memory: koffi copies typed arrays given as struct members, so the kernel's output would be lost.
  const inPtr = koffi.alloc('uint8_t', Math.max(frame.length, 1)) as bigint;
  const outPtr = koffi.alloc('uint8_t', outCap) as bigint;
  try {
    koffi.encode(inPtr, 'uint8_t', frame, frame.length);
    const run = sizedOpts<TestRunOpts>(BpfTestRunOpts, { data_in: inPtr, data_out: outPtr, data_size_in: frame.length, data_size_out: outCap, repeat });
    const err = libbpf().progTestRunOpts(progFd, run);
    if (err < 0) throw BpfError.fromErrno(`test run of ${router.programName} on a ${frame.length}-byte frame`, -err);
    const action = run.retval!;
    const data = koffi.decode(outPtr, 'uint8_t', run.data_size_out) as Uint8Array;
    return { action, actionName: XDP_ACTION_NAMES[action] ?? `action_${action}`, data, durationNs: run.duration! };
  } finally {
    koffi.free(inPtr);
    koffi.free(outPtr);
  }
}

let rawRun: ((progFd: number, opts: unknown) => number) | undefined;

/**
 * One frame's test run set up once and then repeated with nothing
 * allocated or converted per call (the options live in native memory; only
 * data_size_out is re-armed and duration read back). For timing single runs
 * (bench/xdp.bench.ts): testRun()'s per-call allocations, struct encoding
 * and output decoding churn the caches between runs, and the next run's
 * misses on that churn would be timed as the program's.
 */
export function preparedTestRun(
  router: Pick<XdpRouter, 'programFd' | 'programName'>,
  frame: Uint8Array,
): { run(): number; outcome(): { action: number; data: Uint8Array }; close(): void } {
  rawRun ??= koffi.load('libbpf.so.1').func('int bpf_prog_test_run_opts(int prog_fd, void *opts)') as (progFd: number, opts: unknown) => number;
  const progFd = router.programFd();
  const outCap = frame.length + GROWTH;
  const inPtr = koffi.alloc('uint8_t', Math.max(frame.length, 1));
  const outPtr = koffi.alloc('uint8_t', outCap);
  const opts = koffi.alloc(BpfTestRunOpts, 1);
  koffi.encode(inPtr, 'uint8_t', frame, frame.length);
  koffi.encode(opts, BpfTestRunOpts, sizedOpts<TestRunOpts>(BpfTestRunOpts, { data_in: inPtr, data_out: outPtr, data_size_in: frame.length, data_size_out: outCap, repeat: 1 }));
  const sizeOut = koffi.offsetof(BpfTestRunOpts, 'data_size_out');
  const duration = koffi.offsetof(BpfTestRunOpts, 'duration');
  const retval = koffi.offsetof(BpfTestRunOpts, 'retval');
  const run = rawRun;
  return {
    run(): number {
      koffi.encode(opts, sizeOut, 'uint32_t', outCap);
      const err = run(progFd, opts);
      if (err < 0) throw BpfError.fromErrno(`test run of ${router.programName} on a ${frame.length}-byte frame`, -err);
      return koffi.decode(opts, duration, 'uint32_t') as number;
    },
    /** The last run's action and output frame (allocates: not for timing loops). */
    outcome() {
      const size = koffi.decode(opts, sizeOut, 'uint32_t') as number;
      return { action: koffi.decode(opts, retval, 'uint32_t') as number, data: koffi.decode(outPtr, 'uint8_t', size) as Uint8Array };
    },
    close(): void {
      koffi.free(inPtr);
      koffi.free(outPtr);
      koffi.free(opts);
    },
  };
}

const REPLAY_OBJECT = new URL('../../bpf/xdp_replay.o', import.meta.url).pathname;
const REPLAY_VALUE_SIZE = 4 + 1536; // bpf/xdp_replay.c struct replay_frame

/**
 * bpf/xdp_replay.o loaded and aimed at target's program: each of its runs
 * puts the frame given to setFrame() back in place (head and bytes) and
 * tail-calls target, so testRun(replay, frame, { repeat: n }) runs target n
 * times on that frame in one syscall, warm. Close it before target.
 */
export function replayOf(target: XdpRouter, log: Logger): { router: XdpRouter; setFrame(frame: Uint8Array): void } {
  const router = XdpRouter.load({ objectPath: REPLAY_OBJECT, log });
  const update = (map: string, value: Uint8Array) => {
    const err = libbpf().mapUpdateElem(router.mapFd(map), slotKey(0), value, 0n);
    if (err < 0) throw BpfError.fromErrno(`update ${map} of xdp_replay.o`, -err);
  };
  try {
    update('replay_target', slotKey(target.programFd())); // a prog array's value: the program fd, 4 bytes host order
  } catch (err) {
    router.close();
    throw err;
  }
  return {
    router,
    setFrame(frame: Uint8Array): void {
      if (frame.length > REPLAY_VALUE_SIZE - 4) throw new RangeError(`a ${frame.length}-byte frame does not fit xdp_replay.o`);
      const v = new Uint8Array(REPLAY_VALUE_SIZE);
      new DataView(v.buffer).setUint32(0, frame.length, true);
      v.set(frame, 4);
      update('replay_frame', v);
    },
  };
}
