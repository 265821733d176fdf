import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  FrameType,
  MAX_BODY_BYTES,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  decodeFrame,
  encodeFrame,
  frameSize,
  isDroppable,
  type Frame,
  type FrameKind,
} from '../../src/link/protocol.ts';
import { FrameReader } from '../../src/link/reader.ts';
import { samples } from './samples.ts';

function normalize(f: Frame): unknown {
  const o: Record<string, unknown> = { ...f };
  if ('data' in f) o.data = Array.from(f.data);
  return JSON.parse(JSON.stringify(o));
}

test('every frame type round-trips', () => {
  const covered = new Set<FrameKind>(samples.map((s) => s.kind));
  assert.deepEqual([...covered].sort(), (Object.keys(FrameType) as FrameKind[]).sort(), 'a sample per frame type');
  for (const f of samples) {
    const buf = encodeFrame(f);
    assert.equal(buf.length, frameSize(f));
    assert.equal(buf.readUInt32BE(0), buf.length - 4, `${f.kind}: length prefix`);
    assert.equal(buf[4], FrameType[f.kind]);
    const r = decodeFrame(buf, 4, buf.length);
    assert.ok(r.ok, `${f.kind}: ${!r.ok && r.reason}`);
    assert.deepEqual(normalize(r.frame), normalize(f));
  }
});

test('the frame table has the type bytes of the spec, and packets, logs and counters are the droppable kinds', () => {
  assert.deepEqual({ ...FrameType }, {
    hello: 0x01, reject: 0x02, 'packet-in': 0x10, 'packet-out': 0x11, 'open-port': 0x20, 'port-opened': 0x21, 'close-port': 0x22,
    'channel-bound': 0x30, 'channel-refreshed': 0x31, 'channel-unbound': 0x32, 'channel-ack': 0x33,
    'snapshot-begin': 0x40, 'snapshot-port': 0x41, 'snapshot-channel': 0x42, 'snapshot-end': 0x43, 'snapshot-ack': 0x44,
    ping: 0x50, pong: 0x51, log: 0x60, counters: 0x61, 'log-filter': 0x62, drain: 0x63, state: 0x70,
  });
  const droppable = (Object.keys(FrameType) as FrameKind[]).filter(isDroppable);
  assert.deepEqual(droppable.sort(), ['counters', 'log', 'packet-in', 'packet-out']);
});

test('the samples encode to the version-3 bytes, byte for byte', () => {
  // A change here is a wire change: bump PROTOCOL_VERSION (2: HELLO carries the relayed addresses; 3: STATE).
  assert.equal(PROTOCOL_VERSION, 3);
  const h = createHash('sha256');
  for (const f of samples) h.update(encodeFrame(f));
  assert.equal(h.digest('hex'), '00c66548b6f07696fb05e9f4304b1263cd68e268f1a1aae0c6f171e683b22f9b');
});

test('HELLO: a version-1 one (no relayed addresses) still decodes, so the version check can name both versions', () => {
  const v1 = Buffer.concat([Buffer.from([0, 0, 0, 0, 0x01]), Buffer.from('54504c4b000102000000070173', 'hex')]);
  v1.writeUInt32BE(v1.length - 4, 0);
  const r = decodeFrame(v1, 4, v1.length);
  assert.ok(r.ok);
  assert.deepEqual(r.frame, { kind: 'hello', version: 1, role: 'relay', pid: 7, software: 's' });
});

test('HELLO: byte layout of the sidecar\'s, with its relayed addresses', () => {
  const buf = encodeFrame({ kind: 'hello', version: 2, role: 'sidecar', pid: 5, software: 'x', relayAddresses: { v4: '1.2.3.4' } });
  const str8 = (s: string) => Buffer.from([s.length]).toString('hex') + Buffer.from(s).toString('hex');
  assert.equal(buf.toString('hex'), '00000017' + '01' + '54504c4b' + '0002' + '01' + '00000005' + str8('x') + str8('1.2.3.4') + str8(''));
});

test('HELLO: a relayed address that is not an address of its family is malformed', () => {
  for (const relayAddresses of [{ v4: '2001:db8::1' }, { v6: '203.0.113.1' }, { v4: 'not-an-ip' }]) {
    const buf = encodeFrame({ kind: 'hello', version: PROTOCOL_VERSION, role: 'sidecar', pid: 1, software: 's', relayAddresses });
    const r = decodeFrame(buf, 4, buf.length);
    assert.equal(r.ok, false, JSON.stringify(relayAddresses));
    assert.match(!r.ok ? r.reason : '', /malformed hello frame: relayed IPv[46] address/);
  }
});

test('payloads decode as views of the input, not copies', () => {
  const f = samples[4]!;
  const buf = encodeFrame(f);
  const r = decodeFrame(buf, 4, buf.length);
  assert.ok(r.ok && r.frame.kind === 'packet-in');
  buf[buf.length - 1] = 99;
  assert.equal((r.frame as { data: Uint8Array }).data[2], 99);
});

test('byte layout of a packet-out frame is the documented one', () => {
  const buf = encodeFrame({ kind: 'packet-out', from: { family: 4, port: 0x0d96 }, to: { family: 4, address: '1.2.3.4', port: 0x1234 }, data: new Uint8Array([0xaa]) });
  assert.equal(buf.toString('hex'), '00000010' + '11' + '04' + '0d96' + '04' + '07' + Buffer.from('1.2.3.4').toString('hex') + '1234' + 'aa');
});

test('every truncation of every frame is rejected, never thrown', () => {
  for (const f of samples) {
    const buf = encodeFrame(f);
    // Frames whose last field is "rest" legitimately decode when cut inside it; the rest must not parse.
    for (let end = 5; end < buf.length; end++) {
      const r = decodeFrame(buf, 4, end);
      if (r.ok) assert.ok(['reject', 'packet-in', 'packet-out', 'port-opened', 'channel-ack', 'log', 'counters', 'log-filter', 'hello', 'state'].includes(f.kind), `${f.kind} cut at ${end} decoded`);
    }
  }
});

test('trailing bytes after a closed layout are rejected', () => {
  const buf = Buffer.concat([encodeFrame({ kind: 'open-port', token: 1, family: 4, port: 2 }), Buffer.from([0])]);
  const r = decodeFrame(buf, 4, buf.length);
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.reason : '', /trailing/);
});

test('unknown type, bad family and bad magic are reasons, not exceptions', () => {
  const bad = Buffer.from([0, 0, 0, 1, 0xee]);
  const r1 = decodeFrame(bad, 4, bad.length);
  assert.deepEqual(r1, { ok: false, reason: 'unknown frame type 0xee' });
  const b2 = encodeFrame({ kind: 'close-port', family: 4, port: 1 });
  b2[5] = 5;
  assert.match((decodeFrame(b2, 4, b2.length) as { reason: string }).reason, /bad address family 5/);
  const b3 = encodeFrame(samples[0]!);
  b3[5] = 0x48; // "HTTP"...
  assert.match((decodeFrame(b3, 4, b3.length) as { reason: string }).reason, /not a turnpike link endpoint/);
});

test('an oversize datagram cannot be encoded', () => {
  const f: Frame = { kind: 'packet-in', local: { family: 4, port: 1 }, remote: { family: 4, address: '1.1.1.1', port: 1 }, data: new Uint8Array(MAX_BODY_BYTES) };
  assert.ok(frameSize(f) > MAX_FRAME_BYTES);
  assert.throws(() => encodeFrame(f), /exceeds/);
});

function collect(chunks: Buffer[]) {
  const frames: Frame[] = [];
  const errors: string[] = [];
  const r = new FrameReader({ onFrame: (f) => frames.push(f), onError: (e) => errors.push(e) });
  for (const c of chunks) r.push(c);
  return { frames, errors, reader: r };
}

test('reader: a stream split at every byte boundary yields the same frames', () => {
  const stream = Buffer.concat(samples.slice(0, 12).map(encodeFrame));
  const whole = collect([stream]);
  assert.equal(whole.frames.length, 12);
  for (let cut = 1; cut < stream.length; cut += cut < 64 ? 1 : 997) {
    const { frames, errors } = collect([stream.subarray(0, cut), stream.subarray(cut)]);
    assert.deepEqual(errors, []);
    assert.deepEqual(frames.map(normalize), whole.frames.map(normalize), `cut at ${cut}`);
  }
  // byte by byte
  const bytes = collect([...stream.subarray(0, 400)].map((b) => Buffer.from([b])));
  assert.deepEqual(bytes.errors, []);
});

test('property: any chunking of any frame sequence decodes to the sequence', () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom(...samples), { minLength: 1, maxLength: 20 }),
      fc.array(fc.integer({ min: 1, max: 70000 }), { minLength: 1, maxLength: 10 }),
      (frames, cuts) => {
        const stream = Buffer.concat(frames.map(encodeFrame));
        const chunks: Buffer[] = [];
        let off = 0;
        for (const c of cuts) {
          if (off >= stream.length) break;
          chunks.push(stream.subarray(off, off + c));
          off += c;
        }
        if (off < stream.length) chunks.push(stream.subarray(off));
        const got = collect(chunks);
        assert.deepEqual(got.errors, []);
        assert.deepEqual(got.frames.map(normalize), frames.map(normalize));
      },
    ),
    { numRuns: 60, seed: 20251125 },
  );
});

test('reader: oversize and zero lengths stop the stream with a reason', () => {
  const over = Buffer.alloc(8);
  over.writeUInt32BE(MAX_BODY_BYTES + 2, 0);
  const a = collect([encodeFrame(samples[21]!), over, encodeFrame(samples[21]!)]);
  assert.equal(a.frames.length, 1);
  assert.equal(a.errors.length, 1);
  assert.match(a.errors[0]!, /oversize frame/);
  assert.ok(a.reader.dead);
  const b = collect([Buffer.from([0, 0]), Buffer.from([0, 0, 9])]);
  assert.deepEqual(b.errors, ['empty frame (length 0)']);
});

test('reader: fuzzed garbage never throws and reports at most one error', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 50 }), (bytes, step) => {
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += step) chunks.push(Buffer.from(bytes.subarray(i, i + step)));
      const got = collect(chunks);
      assert.ok(got.errors.length <= 1);
    }),
    { numRuns: 300, seed: 7 },
  );
});
