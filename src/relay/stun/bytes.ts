// A copy that is a copy for every Uint8Array: Buffer.prototype.slice returns
// a view, so writing into `buf.slice(...)` of a Node Buffer would change the
// datagram being decoded (and break its FINGERPRINT / integrity checks).
export function copyBytes(buf: Uint8Array, start: number, end: number): Uint8Array {
  return Uint8Array.prototype.slice.call(buf, start, end);
}
