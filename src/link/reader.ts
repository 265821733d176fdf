// Splits a byte stream into frames. Complete frames inside a chunk are decoded
// in place (payloads are views of the chunk); only a frame cut by a chunk
// boundary is copied, once, into a buffer of its exact size.
import { LENGTH_BYTES, MAX_BODY_BYTES, decodeFrame, type Frame } from './protocol.ts';

export interface FrameReaderHandlers {
  onFrame(frame: Frame, wireBytes: number): void;
  /** Called once; the reader ignores all later input. */
  onError(reason: string): void;
}

export class FrameReader {
  private head = Buffer.alloc(LENGTH_BYTES);
  private headFill = 0;
  private partial: Buffer | null = null;
  private partialFill = 0;
  private failed = false;
  private stopped = false;

  constructor(private readonly h: FrameReaderHandlers) {}

  /** Stops delivering frames (e.g. the connection closed from a frame handler). */
  stop(): void {
    this.stopped = true;
  }

  get dead(): boolean {
    return this.failed || this.stopped;
  }

  push(chunk: Buffer): void {
    let off = 0;
    const len = chunk.length;
    // Finish a frame that an earlier chunk started.
    if (this.headFill > 0 || this.partial) {
      if (!this.partial) {
        const take = Math.min(LENGTH_BYTES - this.headFill, len);
        chunk.copy(this.head, this.headFill, 0, take);
        this.headFill += take;
        off = take;
        if (this.headFill < LENGTH_BYTES) return;
        const bodyLen = this.head.readUInt32BE(0);
        if (!this.checkLength(bodyLen)) return;
        this.partial = Buffer.allocUnsafe(LENGTH_BYTES + bodyLen);
        this.head.copy(this.partial, 0);
        this.partialFill = LENGTH_BYTES;
        this.headFill = 0;
      }
      const p = this.partial;
      const take = Math.min(p.length - this.partialFill, len - off);
      chunk.copy(p, this.partialFill, off, off + take);
      this.partialFill += take;
      off += take;
      if (this.partialFill < p.length) return;
      this.partial = null;
      this.partialFill = 0;
      if (!this.deliver(p, LENGTH_BYTES, p.length)) return;
    }
    while (!this.dead && len - off >= LENGTH_BYTES) {
      const bodyLen = chunk.readUInt32BE(off);
      if (!this.checkLength(bodyLen)) return;
      const end = off + LENGTH_BYTES + bodyLen;
      if (end > len) break;
      if (!this.deliver(chunk, off + LENGTH_BYTES, end)) return;
      off = end;
    }
    if (this.dead || off === len) return;
    // Keep the cut frame's start.
    if (len - off < LENGTH_BYTES) {
      chunk.copy(this.head, 0, off, len);
      this.headFill = len - off;
      return;
    }
    const bodyLen = chunk.readUInt32BE(off);
    this.partial = Buffer.allocUnsafe(LENGTH_BYTES + bodyLen);
    chunk.copy(this.partial, 0, off, len);
    this.partialFill = len - off;
  }

  /** Bytes held for an incomplete frame. */
  get buffered(): number {
    return this.headFill + this.partialFill;
  }

  private checkLength(bodyLen: number): boolean {
    if (bodyLen >= 1 && bodyLen <= 1 + MAX_BODY_BYTES) return true;
    this.fail(bodyLen === 0 ? 'empty frame (length 0)' : `oversize frame: length ${bodyLen} exceeds ${1 + MAX_BODY_BYTES}`);
    return false;
  }

  private deliver(buf: Buffer, typeOff: number, end: number): boolean {
    const r = decodeFrame(buf, typeOff, end);
    if (!r.ok) {
      this.fail(r.reason);
      return false;
    }
    this.h.onFrame(r.frame, end - typeOff + LENGTH_BYTES);
    return !this.dead;
  }

  private fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.partial = null;
    this.headFill = 0;
    this.h.onError(reason);
  }
}
