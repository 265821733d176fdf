// Batched UDP I/O under the sidecar's sockets: sendmmsg for the datagrams of
// one turn, recvmmsg to drain a socket after libuv hands over one datagram.
// Order, addresses (as node:dgram formats them) and per-errno error counts
// must be what plain node:dgram gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { SocketAddress } from 'node:net';
import fc from 'fast-check';
import { constants as osConstants } from 'node:os';
import { RecvDrainer, SendBatcher, arenaBytes, dgramIPv6Text, openRecvDrainer, openSendBatcher } from '../../src/net/mmsg.ts';
import { libc, type SendMmsg } from '../../src/net/native.ts';
import { fdOf, forgetFd } from '../../src/net/socket-fd.ts';
import { literalLookup } from '../../src/net/udp.ts';
import { addressToBytes } from '../../src/shared/ip.ts';
import { UdpSockets } from '../../src/sidecar/sockets.ts';

const supported = process.platform === 'linux' && process.arch === 'x64';
const skip = supported ? false : 'batched UDP I/O is x86_64 Linux only';

const settle = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
};

async function bound(type: 'udp4' | 'udp6', address: string): Promise<Socket> {
  // A burst of a few hundred datagrams overflows the default receive buffer.
  const s = createSocket({ type, ipv6Only: type === 'udp6', recvBufferSize: 1 << 20 });
  s.bind(0, address);
  await once(s, 'listening');
  return s;
}

const words = fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 });

const bytesOf = (w: readonly number[]) => new Uint8Array(w.flatMap((x) => [x >> 8, x & 0xff]));

test('IPv6 addresses are formatted exactly as libuv (node:dgram) formats them, and parse back', () => {
  fc.assert(
    fc.property(words, (w) => {
      const s = dgramIPv6Text(bytesOf(w));
      assert.equal(s, new SocketAddress({ address: s, family: 'ipv6' }).address);
      assert.deepEqual(addressToBytes(s), bytesOf(w));
    }),
    { numRuns: 2000 },
  );
  for (const w of [[0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304], [0, 0, 0, 0, 0, 0, 0x0102, 0x0304], [0, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 2], [1, 0, 0, 1, 0, 0, 0, 1]]) {
    const hex = w.map((x) => x.toString(16)).join(':');
    assert.equal(dgramIPv6Text(bytesOf(w)), new SocketAddress({ address: hex, family: 'ipv6' }).address);
  }
  assert.equal(addressToBytes('1::2::3'), undefined);
  assert.equal(addressToBytes('1:2:3:4:5:6:7:8:9'), undefined);
  assert.equal(addressToBytes('g::1'), undefined);
});

/** The fd node's handle holds, read here (in the test only) through its private state. */
function handleFd(x: Socket): number {
  const state = Object.getOwnPropertySymbols(x).find((k) => k.description === 'state symbol')!;
  return (x as unknown as Record<symbol, { handle: { fd: number } }>)[state]!.handle.fd;
}

test('the fd of a bound dgram socket is found through public interfaces only, and is -1 once closed', { skip }, async () => {
  const s = await bound('udp4', '127.0.0.1');
  const s6 = await bound('udp6', '::1');
  const unbound = createSocket('udp4');
  try {
    assert.ok(fdOf(s) > 2);
    assert.equal(fdOf(s), handleFd(s));
    assert.equal(fdOf(s6), handleFd(s6));
    assert.equal(fdOf(unbound), -1);
  } finally {
    unbound.close();
    s6.close();
  }
  await new Promise<void>((r) => s.close(() => r()));
  assert.equal(fdOf(s), -1);
});

test('a socket closed before its close event does not hide its fd number from the next socket', { skip }, async () => {
  const a = await bound('udp4', '127.0.0.1');
  assert.equal(fdOf(a), handleFd(a));
  // In one synchronous stretch (a literal address binds at once): the kernel hands a's number to b.
  a.close();
  const b = createSocket({ type: 'udp4', lookup: literalLookup });
  b.bind(0, '127.0.0.1');
  try {
    assert.equal(fdOf(b), handleFd(b));
    await once(a, 'close');
    assert.equal(fdOf(a), -1);
    assert.equal(fdOf(b), handleFd(b));
  } finally {
    b.close();
  }
  // forgetFd: what the sidecar calls as it closes a socket, before the fd number can come back.
  const c = await bound('udp4', '127.0.0.1');
  assert.equal(fdOf(c), handleFd(c));
  forgetFd(c);
  c.close();
  assert.equal(fdOf(c), -1);
});

test('a socket that may share its address (SO_REUSEADDR) gets no fd: it keeps plain node:dgram', { skip }, async () => {
  const a = createSocket({ type: 'udp4', reuseAddr: true });
  const b = createSocket({ type: 'udp4', reuseAddr: true });
  a.bind(0, '127.0.0.1');
  await once(a, 'listening');
  b.bind(a.address().port, '127.0.0.1');
  await once(b, 'listening');
  try {
    assert.equal(fdOf(a), -1);
    assert.equal(fdOf(b), -1);
  } finally {
    a.close();
    b.close();
  }
});

test('datagrams queued in one turn leave in order, per socket, from the right source (IPv4 and IPv6)', { skip }, async () => {
  const fallbacks: string[] = [];
  const errors: string[] = [];
  const b = openSendBatcher((_s, d) => fallbacks.push(Buffer.from(d).toString()), (_s, code) => errors.push(code));
  assert.ok(b instanceof SendBatcher);
  const a4 = await bound('udp4', '127.0.0.1');
  const c4 = await bound('udp4', '127.0.0.1');
  const a6 = await bound('udp6', '::1');
  const sink4 = await bound('udp4', '127.0.0.1');
  const sink6 = await bound('udp6', '::1');
  const got4: string[] = [];
  const got6: string[] = [];
  sink4.on('message', (m, r) => got4.push(`${r.port === a4.address().port ? 'a' : 'c'}:${m}`));
  sink6.on('message', (m, r) => got6.push(`${r.address}:${r.port === a6.address().port}:${m}`));
  try {
    // More than the arena holds in one turn: the early flush keeps order too.
    for (let i = 0; i < 300; i++) {
      assert.equal(b.enqueue(i % 3 ? a4 : c4, Buffer.from(`m${i}`), sink4.address().port, '127.0.0.1'), true);
      if (i % 10 === 0) assert.equal(b.enqueue(a6, Buffer.from(`v${i}`), sink6.address().port, '::1'), true);
    }
    // Too big for the arena, or not an IP literal: the caller sends it.
    assert.equal(b.enqueue(a4, Buffer.alloc(3000), sink4.address().port, '127.0.0.1'), false);
    assert.equal(b.enqueue(a4, Buffer.from('x'), sink4.address().port, 'localhost'), false);
    assert.equal(b.enqueue(a4, Buffer.from('x'), 0, '127.0.0.1'), false);
    await settle(() => got4.length >= 300 && got6.length >= 30);
    const expect = (src: 'a' | 'c') => [...Array(300).keys()].filter((i) => (i % 3 ? 'a' : 'c') === src).map((i) => `${src}:m${i}`);
    assert.deepEqual(got4.filter((g) => g.startsWith('a:')), expect('a'));
    assert.deepEqual(got4.filter((g) => g.startsWith('c:')), expect('c'));
    assert.deepEqual(got6, [...Array(30).keys()].map((k) => `::1:true:v${k * 10}`));
    assert.deepEqual(errors, []);
    assert.deepEqual(fallbacks, []);
  } finally {
    b.close();
    for (const s of [a4, c4, a6, sink4, sink6]) s.close();
  }
});

test('payloads that start inside their buffer, or go behind a ChannelData header, arrive byte for byte without touching their neighbours', { skip }, async () => {
  const b = openSendBatcher(() => assert.fail('no fallback'), (_s, code) => assert.fail(code), { gso: 'off' });
  assert.ok(b instanceof SendBatcher);
  const from = await bound('udp4', '127.0.0.1');
  const sink = await bound('udp4', '127.0.0.1');
  const got: Buffer[] = [];
  sink.on('message', (m) => got.push(m));
  const pattern = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));
  try {
    const full = pattern(2048, 1); // fills its slot to the last byte
    const chanIn = Buffer.concat([Buffer.from([0x40, 0x01, 0x03, 0xe8]), pattern(1000, 2)]); // ChannelData in, UDP out
    const udpIn = pattern(1000, 3); // UDP in, ChannelData out
    const cut = pattern(1200, 4); // a range that ends before the buffer does
    const port = sink.address().port;
    b.hold();
    assert.equal(b.enqueue(from, full, port, '127.0.0.1'), true);
    assert.equal(b.enqueue(from, chanIn, port, '127.0.0.1', -1, 4, chanIn.length), true);
    assert.equal(b.enqueue(from, udpIn, port, '127.0.0.1', 0x4002), true);
    assert.equal(b.enqueue(from, chanIn, port, '127.0.0.1', 0x4003, 4, chanIn.length), true);
    assert.equal(b.enqueue(from, cut, port, '127.0.0.1', 0x4004, 100, 1100), true);
    b.flush();
    await settle(() => got.length >= 5);
    const header = (ch: number, n: number) => Buffer.from([ch >> 8, ch & 0xff, n >> 8, n & 0xff]);
    assert.deepEqual(got, [
      full,
      chanIn.subarray(4),
      Buffer.concat([header(0x4002, 1000), udpIn]),
      Buffer.concat([header(0x4003, 1000), chanIn.subarray(4)]),
      Buffer.concat([header(0x4004, 1000), cut.subarray(100, 1100)]),
    ]);
  } finally {
    b.close();
    for (const x of [from, sink]) x.close();
  }
});

test('a kernel error costs only its datagram and is counted once per datagram, by errno', { skip }, async () => {
  const sockets = new UdpSockets({ listenPort: 0, listenAddresses: ['127.0.0.1'], onPacket: () => {}, batchedIo: 'auto' });
  await sockets.listenAll();
  const peer = await bound('udp4', '127.0.0.1');
  const got: string[] = [];
  peer.on('message', (m) => got.push(m.toString()));
  try {
    const from = { family: 4 as const, port: sockets.boundAddresses()[0]!.port };
    const to = { family: 4 as const, address: '127.0.0.1', port: peer.address().port };
    // Broadcast without SO_BROADCAST: the kernel refuses each one (EACCES), interleaved with good ones.
    const refused = { family: 4 as const, address: '255.255.255.255', port: 9 };
    for (let i = 0; i < 20; i++) {
      sockets.send(from, to, Buffer.from(`m${i}`));
      if (i % 4 === 0) sockets.send(from, refused, Buffer.from('x'));
    }
    await settle(() => got.length >= 20);
    assert.deepEqual(got, [...Array(20).keys()].map((i) => `m${i}`));
    assert.equal(sockets.stats().errors['send:EACCES'], 5);
    assert.equal(sockets.stats().out.listen.packets, 25);
  } finally {
    peer.close();
    await sockets.close();
  }
});

test('a drain after one datagram delivers the rest of the queue in order, with node:dgram addresses', { skip }, async () => {
  const d = openRecvDrainer();
  assert.ok(d instanceof RecvDrainer);
  for (const [type, host] of [['udp4', '127.0.0.1'], ['udp6', '::1']] as const) {
    const rx = await bound(type, host);
    const tx = await bound(type, host);
    const got: string[] = [];
    const seen: string[] = [];
    rx.on('message', (m, r) => {
      got.push(m.toString());
      seen.push(`${r.family}|${r.address}|${r.port}`);
      d.drain(fdOf(rx), (data, family, address, port) => {
        got.push(data.toString());
        seen.push(`${family}|${address}|${port}`);
      });
    });
    try {
      // Queue them all before the loop turns, so the first wake-up finds many.
      for (let i = 0; i < 150; i++) tx.send(`d${i}`, rx.address().port, host);
      await settle(() => got.length >= 150);
      assert.deepEqual(got, [...Array(150).keys()].map((i) => `d${i}`));
      assert.deepEqual(new Set(seen), new Set([`${type === 'udp4' ? 'IPv4' : 'IPv6'}|${host}|${tx.address().port}`]));
    } finally {
      rx.close();
      tx.close();
    }
  }
  assert.equal(d.drain(-1, () => assert.fail('nothing to read')), 0);
  d.close();
});

test('UdpSockets with batched I/O off or on deliver and send the same', { skip }, async () => {
  for (const batchedIo of ['off', 'auto'] as const) {
    const seen: string[] = [];
    const sockets: UdpSockets = new UdpSockets({
      listenPort: 0,
      listenAddresses: ['127.0.0.1', '::1'],
      batchedIo,
      onPacket: (local, remote, data) => {
        seen.push(`${remote.family}|${remote.address}|${data}`);
        sockets.send(local, remote, data); // echo
      },
    });
    await sockets.listenAll();
    const [v4, v6] = sockets.boundAddresses();
    const c4 = await bound('udp4', '127.0.0.1');
    const c6 = await bound('udp6', '::1');
    const echoed: string[] = [];
    c4.on('message', (m) => echoed.push(`4:${m}`));
    c6.on('message', (m) => echoed.push(`6:${m}`));
    try {
      for (let i = 0; i < 50; i++) {
        c4.send(`a${i}`, v4!.port, '127.0.0.1');
        c6.send(`b${i}`, v6!.port, '::1');
      }
      await settle(() => echoed.length >= 100);
      assert.deepEqual(seen.filter((s) => s.startsWith('4|')), [...Array(50).keys()].map((i) => `4|127.0.0.1|a${i}`), batchedIo);
      assert.deepEqual(seen.filter((s) => s.startsWith('6|')), [...Array(50).keys()].map((i) => `6|::1|b${i}`), batchedIo);
      assert.deepEqual(echoed.filter((s) => s.startsWith('4:')), [...Array(50).keys()].map((i) => `4:a${i}`), batchedIo);
      assert.deepEqual(echoed.filter((s) => s.startsWith('6:')), [...Array(50).keys()].map((i) => `6:b${i}`), batchedIo);
      const st = sockets.stats();
      assert.equal(st.in.listen.packets, 100);
      assert.equal(st.out.listen.packets, 100);
      assert.deepEqual(st.errors, {});
    } finally {
      c4.close();
      c6.close();
      await sockets.close();
    }
  }
});

test('a consumer that refuses datagrams (backpressure) still sees each one libuv reads, in order', { skip }, async () => {
  const seen: string[] = [];
  const sockets = new UdpSockets({
    listenPort: 0,
    listenAddresses: ['127.0.0.1'],
    batchedIo: 'auto',
    onPacket: (_l, _r, data) => {
      seen.push(data.toString());
      return false;
    },
  });
  await sockets.listenAll();
  const c = await bound('udp4', '127.0.0.1');
  try {
    for (let i = 0; i < 100; i++) c.send(`r${i}`, sockets.boundAddresses()[0]!.port, '127.0.0.1');
    await settle(() => seen.length >= 100);
    assert.deepEqual(seen, [...Array(100).keys()].map((i) => `r${i}`));
    assert.equal(sockets.stats().in.listen.packets, 100);
  } finally {
    c.close();
    await sockets.close();
  }
});

/** 200 datagrams from one socket: 100-byte ones to rx1 with a shorter one every 30 and one above the GSO limit every 45, and every 5th to rx2. */
function gsoPattern(i: number): { to: 1 | 2; size: number } {
  if (i % 5 === 0) return { to: 2, size: 100 };
  return { to: 1, size: i % 45 === 44 ? 1200 : i % 30 === 29 ? 37 : 100 };
}

const gsoPayload = (i: number, size: number) => {
  const b = Buffer.alloc(size, i & 0xff);
  b.writeUInt16BE(i, 0);
  return b;
};

async function sendGsoPattern(b: SendBatcher, type: 'udp4' | 'udp6', host: string): Promise<void> {
  const tx = await bound(type, host);
  const rx = [await bound(type, host), await bound(type, host)];
  const got: string[][] = [[], []];
  rx.forEach((s, k) => s.on('message', (m, r) => got[k]!.push(`${m.readUInt16BE(0)}/${m.length}/${m.equals(gsoPayload(m.readUInt16BE(0), m.length))}/${r.port === tx.address().port}`)));
  try {
    for (let i = 0; i < 200; i++) {
      const { to, size } = gsoPattern(i);
      assert.equal(b.enqueue(tx, gsoPayload(i, size), rx[to - 1]!.address().port, host), true);
    }
    await settle(() => got[0]!.length + got[1]!.length >= 200);
    for (const to of [1, 2] as const) {
      const want = [...Array(200).keys()].filter((i) => gsoPattern(i).to === to).map((i) => `${i}/${gsoPattern(i).size}/true/true`);
      assert.deepEqual(got[to - 1], want, `${type} to rx${to}`);
    }
  } finally {
    for (const s of [tx, ...rx]) s.close();
  }
}

test('with UDP GSO, same-size datagrams to one destination leave as one send and arrive as the same datagrams, in order (IPv4 and IPv6)', { skip }, async () => {
  for (const [type, host] of [['udp4', '127.0.0.1'], ['udp6', '::1']] as const) {
    for (const gso of ['auto', 'off'] as const) {
      const errors: string[] = [];
      const b = openSendBatcher(() => assert.fail('no fallback'), (_s, code) => errors.push(code), { gso, gsoMaxSegment: 1000 });
      assert.ok(b instanceof SendBatcher);
      try {
        await sendGsoPattern(b, type, host);
        const st = b.stats();
        assert.equal(st.datagrams, 200);
        assert.deepEqual(errors, []);
        if (gso === 'off') assert.deepEqual([st.gso, st.messages], ['off', 200]);
        else {
          // rx2's 40 go as one; rx1's 160 are cut by the short ones (after 29, 59, ...), the big ones and the 64-segment limit.
          assert.equal(st.gso, 'on');
          assert.ok(st.messages <= 20, `${st.messages} messages`);
        }
      } finally {
        b.close();
      }
    }
  }
});

test('a GSO send the kernel refuses goes out one datagram at a time, and GSO stays off after EIO', { skip }, async () => {
  const c = libc();
  const arena = c.alloc(arenaBytes(c.layout));
  const view = new DataView(arena.buffer);
  let refused = 0;
  let fakeErrno = 0;
  // The first message of each call carries a UDP_SEGMENT cmsg when msg_controllen is set: refuse those as a device without checksum offload would.
  const sendmmsg: SendMmsg = (fd, vec, vlen, flags) => {
    if (view.getUint32(Number(vec - arena.base) + c.layout.msgControllen, true) !== 0) {
      refused++;
      fakeErrno = osConstants.errno.EIO;
      return -1;
    }
    fakeErrno = 0;
    return c.sendmmsg(fd, vec, vlen, flags);
  };
  const errors: string[] = [];
  const b = new SendBatcher(sendmmsg, () => fakeErrno || c.errno(), c.layout, arena, () => assert.fail('no fallback'), (_s, code) => errors.push(code), () => true, { gsoMaxSegment: 1000 });
  try {
    await sendGsoPattern(b, 'udp4', '127.0.0.1');
    assert.deepEqual(errors, []);
    assert.equal(refused, 1);
    assert.deepEqual(b.stats(), { gso: 'off', messages: 200, datagrams: 200, gsoRefused: 1 });
  } finally {
    b.close();
  }
});
