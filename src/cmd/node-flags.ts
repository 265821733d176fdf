// Node flags the pair's processes run with, wherever they are started: the
// launcher adds them for its children; `npm start` and the image's CMD name
// them for the launcher, deploy/systemd's units and deploy/kubernetes'
// containers for each half (test/deploy/node-flags.test.ts checks them all).
//
// --no-memory-reducer: V8's memory reducer, seconds after a busy spell ends
// (a flood over, a burst of allocations done), runs up to three full
// mark-compacts to give memory back and shrinks the young generation. In the
// sidecar that was a 2-12 ms pause of the packet path each (measured at 10k
// pps on loopback), then a scavenge every ~100 ms instead of about every
// second. The heaps here are tens of MB: keeping them costs little.
// Not settable at run time (V8 freezes its flags once started) nor through
// NODE_OPTIONS, hence the command lines.
export const CHILD_NODE_FLAGS: readonly string[] = ['--no-memory-reducer'];

// The sidecar's alone, as it carries every datagram of the userspace path:
// --max-semi-space-size=1 (MB). With V8's default young generation (grown to
// 16 MB), at a steady 10k pps V8 started a mark-compact in the sidecar about
// every second with its old generation at 14 MB of a ~30 MB limit (its rule:
// mark once the old generation's headroom is no larger than the young
// generation; no leak, the heap holds nothing per datagram): 2-3 per 2 s
// window, 4-8 ms pauses plus incremental steps up to 6 ms, and round trips
// had a p99 of 5-12 ms on loopback (bench/userspace-path.bench.ts --rtt 10000
// --rate 1000). With 1 MB, none in the same windows, the longest pause ~1 ms;
// the price is scavenges more often: GC time under a flood 6 -> 12 ms/s and
// up to ~10 % of the peak pps. The relay keeps the default: its allocation
// state is long-lived, and a small young generation would only copy it more.
//
// --heap-growing-percent=100: the old generation may grow to twice what the
// last mark-compact left before the next. Without it V8 picked its smallest
// factor (x1.1) for the sidecar, and once it allocated less per datagram
// (SendBatcher, 153 -> 1 B per send) a mark-compact came back into 5 of 6
// RTT windows; with it, none in 12 (2026-12-02 15:19-15:22). A few MB more
// heap at most: the sidecar's old generation holds ~14 MB.
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--heap-growing-percent=100'];

/** `base` plus each of `flags` whose name (before any `=`) `base` does not set already: an operator's own value wins. */
export function withNodeFlags(base: readonly string[], flags: readonly string[]): string[] {
  const name = (f: string) => f.split('=')[0]!;
  const have = new Set(base.map(name));
  return [...base, ...flags.filter((f) => !have.has(name(f)))];
}
