// A state document over the link (STATE frames, protocol.ts): split into
// chunks on the way out, put back together on the way in. Both sides use it:
// the relay sends its document, the sidecar hands the one it holds back.
import type { LinkConnection } from './connection.ts';
import { MAX_STATE_CHUNK } from './protocol.ts';

/**
 * Sends `doc` as STATE frames of id `id`, waiting out backpressure; stops when the link closes.
 * Each chunk is handed to the socket at once: queued in one turn, a document
 * of a few thousand allocations would fill the writer's queue past its
 * limit, so the answers sent right after it (and relayed datagrams) would be
 * dropped, and past the control reserve the link would be torn down.
 */
export async function sendStateChunks(conn: LinkConnection, id: number, doc: Uint8Array): Promise<void> {
  let off = 0;
  do {
    while (conn.state === 'open' && conn.isBackpressured) await conn.waitWritable();
    const end = Math.min(doc.length, off + MAX_STATE_CHUNK);
    if (!conn.send({ kind: 'state', id, final: end === doc.length, data: doc.subarray(off, end) })) return;
    conn.flush();
    off = end;
  } while (off < doc.length);
}

export type Assembled = { done: false } | { done: true; doc: Buffer | undefined } | { done: true; tooLarge: number };

/** Collects the chunks of one document at a time; a chunk of another id starts over. */
export class StateAssembler {
  private id = -1;
  private parts: Buffer[] = [];
  private bytes = 0;
  private overflow = false;

  constructor(private readonly maxBytes = Infinity) {}

  add(id: number, final: boolean, data: Uint8Array): Assembled {
    if (id !== this.id) this.reset(id);
    this.bytes += data.length;
    if (this.bytes > this.maxBytes) this.overflow = true;
    // Copy: the frame's bytes are a view of the reader's buffer.
    else this.parts.push(Buffer.from(data));
    if (!final) return { done: false };
    const out: Assembled = this.overflow ? { done: true, tooLarge: this.bytes } : { done: true, doc: this.bytes === 0 ? undefined : Buffer.concat(this.parts, this.bytes) };
    this.reset(-1);
    return out;
  }

  reset(id = -1): void {
    this.id = id;
    this.parts = [];
    this.bytes = 0;
    this.overflow = false;
  }
}
