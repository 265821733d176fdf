import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { UdpSockets, type SocketKind } from '../../src/sidecar/sockets.ts';
import type { LocalEndpoint, TransportAddress } from '../../src/relay/server/types.ts';

interface Got {
  local: LocalEndpoint;
  remote: TransportAddress;
  data: string;
  kind: SocketKind;
}

function setup(listenAddresses = ['127.0.0.1', '::1']) {
  const got: Got[] = [];
  const waiters: (() => void)[] = [];
  const sockets = new UdpSockets({
    listenPort: 0,
    listenAddresses,
    onPacket: (local, remote, data, kind) => {
      got.push({ local, remote, data: data.toString(), kind });
      waiters.splice(0).forEach((w) => w());
    },
  });
  const next = async (n: number) => {
    while (got.length < n) await new Promise<void>((r) => waiters.push(r));
    return got[n - 1]!;
  };
  return { sockets, got, next };
}

async function udp(type: 'udp4' | 'udp6', address: string): Promise<Socket> {
  const s = createSocket(type);
  s.bind(0, address);
  await once(s, 'listening');
  return s;
}

async function freePort(type: 'udp4' | 'udp6', address: string): Promise<number> {
  const s = await udp(type, address);
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

test('listen sockets on IPv4 and IPv6 loopback: receive and answer from the listen port', async () => {
  const { sockets, next } = setup();
  await sockets.listenAll();
  try {
    const bound = sockets.boundAddresses();
    assert.deepEqual(bound.map((b) => b.family).sort(), [4, 6]);
    const v4 = bound.find((b) => b.family === 4)!;
    const v6 = bound.find((b) => b.family === 6)!;
    const c4 = await udp('udp4', '127.0.0.1');
    const c6 = await udp('udp6', '::1');
    c4.send('hello4', v4.port, '127.0.0.1');
    const g4 = await next(1);
    assert.deepEqual(g4.local, { family: 4, port: v4.port });
    assert.deepEqual(g4.remote, { family: 4, address: '127.0.0.1', port: c4.address().port });
    assert.equal(g4.data, 'hello4');
    assert.equal(g4.kind, 'listen');
    c6.send('hello6', v6.port, '::1');
    const g6 = await next(2);
    assert.deepEqual(g6.remote, { family: 6, address: '::1', port: c6.address().port });

    const reply = once(c6, 'message');
    assert.ok(sockets.send({ family: 6, port: v6.port }, g6.remote, Buffer.from('back6')));
    const [msg, rinfo] = (await reply) as [Buffer, { port: number }];
    assert.equal(msg.toString(), 'back6');
    assert.equal(rinfo.port, v6.port, 'the reply leaves from the listen port');

    const st = sockets.stats();
    assert.deepEqual(st.in.listen, { packets: 2, bytes: 12 });
    assert.deepEqual(st.out.listen, { packets: 1, bytes: 5 });
    assert.ok(st.buffers.recv > 0);
    c4.close();
    c6.close();
  } finally {
    await sockets.close();
  }
});

test('allocation ports open on request, carry traffic, and report the errno when taken', async () => {
  const { sockets, next } = setup(['127.0.0.1']);
  await sockets.listenAll();
  const holder = await udp('udp4', '127.0.0.1');
  try {
    const port = await freePort('udp4', '127.0.0.1');
    assert.deepEqual(await sockets.openPort(4, port), { ok: true, error: '' });
    assert.deepEqual(await sockets.openPort(4, port), { ok: true, error: '' }, 're-opening our own port is idempotent');
    assert.deepEqual(sockets.allocationPorts(), [{ family: 4, port }]);

    const taken = holder.address().port;
    assert.deepEqual(await sockets.openPort(4, taken), { ok: false, error: 'EADDRINUSE' });
    assert.equal(sockets.stats().errors['bind:EADDRINUSE'], 1);

    const peer = await udp('udp4', '127.0.0.1');
    peer.send('from-peer', port, '127.0.0.1');
    const g = await next(1);
    assert.deepEqual(g.local, { family: 4, port });
    assert.equal(g.kind, 'allocation');
    const reply = once(peer, 'message');
    sockets.send({ family: 4, port }, g.remote, Buffer.from('to-peer'));
    const [, rinfo] = (await reply) as [Buffer, { port: number }];
    assert.equal(rinfo.port, port);
    assert.deepEqual(sockets.stats().out.allocation, { packets: 1, bytes: 7 });

    assert.equal(sockets.closePort(4, port), true);
    assert.equal(sockets.closePort(4, port), false);
    assert.deepEqual(await sockets.openPort(4, port), { ok: true, error: '' });
    assert.equal(sockets.closeAllocationPorts(), 1);
    assert.equal(sockets.stats().allocationPorts, 0);
    peer.close();
  } finally {
    holder.close();
    await sockets.close();
  }
});

test('send errors are counted, never thrown', async () => {
  const { sockets } = setup(['127.0.0.1']);
  await sockets.listenAll();
  try {
    const lp = sockets.boundAddresses()[0]!.port;
    assert.equal(sockets.send({ family: 4, port: 1 }, { family: 4, address: '127.0.0.1', port: 9 }, Buffer.from('x')), false);
    assert.equal(sockets.stats().errors['send:no-socket'], 1);
    // Port 0 is refused synchronously by node:dgram.
    assert.equal(sockets.send({ family: 4, port: lp }, { family: 4, address: '127.0.0.1', port: 0 }, Buffer.from('x')), false);
    assert.equal(Object.entries(sockets.stats().errors).filter(([k]) => k.startsWith('send:')).length, 2);
  } finally {
    await sockets.close();
  }
});

test('a listen address that cannot bind fails listenAll and leaves nothing bound', async () => {
  const holder = await udp('udp4', '127.0.0.1');
  const port = holder.address().port;
  const sockets = new UdpSockets({ listenPort: port, listenAddresses: ['::1', '127.0.0.1'], onPacket: () => {} });
  await assert.rejects(sockets.listenAll(), /EADDRINUSE/);
  assert.deepEqual(sockets.boundAddresses(), []);
  holder.close();
});
