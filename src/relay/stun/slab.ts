// Short-lived byte buffers carved from 64 KiB slabs. `new Uint8Array(n)`
// costs ~0.8 us on Node 20 for packet-sized n (each gets its own off-heap
// backing store); a view into a shared slab costs ~50 ns. Every byte is
// handed out once and slabs start zeroed, so a result is zero-filled exactly
// like `new Uint8Array(n)`.
//
// For per-packet outputs only (ChannelData, relayed payloads): a result keeps
// its whole 64 KiB slab alive, so anything stored for long (an allocation's
// cached response) must not come from here. Large sizes get their own buffer.

const SLAB_BYTES = 64 * 1024;
/** Above this a buffer is allocated on its own (a slab would be used up by a few). */
const MAX_SLAB_ALLOC = 4096;

let slab = new ArrayBuffer(SLAB_BYTES);
let used = 0;

/** A zero-filled Uint8Array of `n` bytes, possibly sharing an ArrayBuffer with other recent results. */
export function allocTransient(n: number): Uint8Array {
  if (n > MAX_SLAB_ALLOC) return new Uint8Array(n);
  if (used + n > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    used = 0;
  }
  const view = new Uint8Array(slab, used, n);
  used = (used + n + 7) & ~7; // keep views 8-byte aligned
  return view;
}
