import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameWriter, type ByteSink } from '../../src/link/writer.ts';
import { FrameReader } from '../../src/link/reader.ts';
import type { Frame } from '../../src/link/protocol.ts';

/** Keeps a copy of every byte handed over, and the views themselves (to see which buffers they live in). */
function recordingSink() {
  const views: Buffer[] = [];
  const copies: Buffer[] = [];
  const sink: ByteSink = {
    write(chunk) {
      views.push(chunk);
      copies.push(Buffer.from(chunk));
      return true;
    },
    cork() {},
    uncork() {},
    writableLength: 0,
  };
  return { sink, views, copies };
}

const packet = (i: number): Frame => ({
  kind: 'packet-out',
  from: { family: 4, port: 50000 },
  to: { family: 4, address: '198.51.100.7', port: 40000 + i },
  data: Buffer.alloc(100, i & 0xff),
});

test('one frame per flush reuses the chunk: bytes handed out stay intact and frames arrive in order', () => {
  const { sink, views, copies } = recordingSink();
  const w = new FrameWriter(sink, { schedule: () => {}, chunkBytes: 4096 });
  const n = 500;
  for (let i = 0; i < n; i++) {
    assert.equal(w.write(packet(i)), true);
    w.flush();
  }
  // Bytes handed to the socket earlier were never overwritten by later frames.
  views.forEach((v, i) => assert.deepEqual(Buffer.from(v), copies[i], `chunk ${i} unchanged`));
  // ~120 B frames in 4 KiB chunks: a new chunk only when one is full, not one per flush.
  const buffers = new Set(views.map((v) => v.buffer));
  assert.ok(buffers.size <= Math.ceil((n * 130) / 4096) + 1, `${buffers.size} chunks allocated for ${n} flushes`);
  const got: Frame[] = [];
  const r = new FrameReader({ onFrame: (f) => got.push(f), onError: (e) => assert.fail(e) });
  for (const c of copies) r.push(c);
  assert.equal(got.length, n);
  got.forEach((f, i) => {
    assert.equal(f.kind, 'packet-out');
    if (f.kind === 'packet-out') {
      assert.equal(f.to.port, 40000 + i);
      assert.deepEqual(Buffer.from(f.data), Buffer.alloc(100, i & 0xff));
    }
  });
});

test('frames queued across several flushes and a chunk boundary come out whole', () => {
  const { sink, copies } = recordingSink();
  const w = new FrameWriter(sink, { schedule: () => {}, chunkBytes: 300 });
  let k = 0;
  for (let round = 0; round < 20; round++) {
    for (let j = 0; j < (round % 4) + 1; j++) w.write(packet(k++));
    w.flush();
  }
  const got: Frame[] = [];
  const r = new FrameReader({ onFrame: (f) => got.push(f), onError: (e) => assert.fail(e) });
  r.push(Buffer.concat(copies));
  assert.equal(got.length, k);
  got.forEach((f, i) => assert.equal(f.kind === 'packet-out' && f.to.port, 40000 + i));
});
