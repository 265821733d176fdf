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
