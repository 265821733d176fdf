// Cuts a TURN client's byte stream (TCP or TLS) into messages: RFC 8489
// §6.2.2 and RFC 8656 §12.5. A stream carries STUN messages (20-byte header,
// length at bytes 2-3, magic cookie at 4-7, length a multiple of 4) and
// ChannelData (4-byte header, length at bytes 2-3, padded to a multiple of 4
// over streams; the padding is not part of the message). Pure and sans-IO:
// bytes in, messages out. It never holds more than one message in progress,
// and never more than `maxFrame` bytes: a larger declared length, or bytes
// that are neither, end the stream (there is no resynchronising a stream).
//
// Memory handed out is never written again (messages are views of the
// caller's chunk or of a fresh copy), so the server may keep them.

export type FrameError = 'garbage' | 'oversize';

export interface FramerResult {
  readonly frames: Uint8Array[];
  /** Set when the stream is unusable: close the connection (the frames before it are valid). */
  readonly error?: FrameError;
}

const STUN_HEADER = 20;
const CHANNEL_HEADER = 4;
const MAGIC = [0x21, 0x12, 0xa4, 0x42] as const;

type Size = { readonly message: number; readonly consumed: number } | FrameError | undefined;

/** The message at `at`: its length and the bytes it takes on the stream; undefined while too few bytes have arrived to tell. */
export function frameAt(buf: Uint8Array, at: number): Size {
  const left = buf.length - at;
  if (left < 1) return undefined;
  const top = buf[at]! >> 6;
  if (top === 1) {
    if (left < CHANNEL_HEADER) return undefined;
    const message = CHANNEL_HEADER + ((buf[at + 2]! << 8) | buf[at + 3]!);
    return { message, consumed: (message + 3) & ~3 };
  }
  if (top !== 0) return 'garbage';
  // Check the cookie as soon as its bytes are here: a non-TURN client is caught early.
  for (let i = 4; i < 8 && i < left; i++) if (buf[at + i] !== MAGIC[i - 4]) return 'garbage';
  if (left < 8) return undefined;
  const length = (buf[at + 2]! << 8) | buf[at + 3]!;
  if (length % 4 !== 0) return 'garbage';
  return { message: STUN_HEADER + length, consumed: STUN_HEADER + length };
}

const EMPTY = new Uint8Array(0);

export class StreamFramer {
  #pending: Uint8Array = EMPTY;
  #failed: FrameError | undefined;

  /** `maxFrame`: the largest message (with padding) a connection may send, i.e. its read buffer. */
  constructor(private readonly maxFrame: number) {}

  /** Bytes of an unfinished message held. */
  get buffered(): number {
    return this.#pending.length;
  }

  push(chunk: Uint8Array): FramerResult {
    if (this.#failed !== undefined) return { frames: [], error: this.#failed };
    const buf = this.#pending.length === 0 ? chunk : concat(this.#pending, chunk);
    const frames: Uint8Array[] = [];
    let at = 0;
    for (;;) {
      const size = frameAt(buf, at);
      if (size === undefined) break;
      if (typeof size === 'string') return this.#fail(frames, size);
      if (size.consumed > this.maxFrame) return this.#fail(frames, 'oversize');
      if (buf.length - at < size.consumed) break;
      frames.push(buf.subarray(at, at + size.message));
      at += size.consumed;
    }
    // Keep the tail as a copy: the chunk's memory stays the frames' alone.
    this.#pending = at === buf.length ? EMPTY : Uint8Array.prototype.slice.call(buf, at);
    return { frames };
  }

  #fail(frames: Uint8Array[], error: FrameError): FramerResult {
    this.#failed = error;
    this.#pending = EMPTY;
    return { frames, error };
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

const ZEROS = new Uint8Array(3);

/** A message as it goes onto a stream: ChannelData padded to a multiple of 4 (STUN messages already are). */
export function padForStream(data: Uint8Array): Uint8Array {
  const pad = (4 - (data.length % 4)) % 4;
  if (pad === 0) return data;
  return concat(data, ZEROS.subarray(0, pad));
}
