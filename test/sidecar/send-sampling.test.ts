// The sidecar's sockets attach a completion callback to one send in
// SEND_CHECK_EVERY (node:dgram reports kernel send errors only through it);
// once an error is seen, every send carries it for a while. Datagrams are
// sent either way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { SEND_CHECK_EVERY, UdpSockets } from '../../src/sidecar/sockets.ts';

const settle = async (check: () => boolean) => {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
};

test('kernel send errors are sampled, then counted on every send while they last', async () => {
  // Plain dgram sends: batched sends (test/net/mmsg.test.ts) see every error.
  const sockets = new UdpSockets({ listenPort: 0, listenAddresses: ['127.0.0.1'], onPacket: () => {}, batchedIo: 'off' });
  await sockets.listenAll();
  const peer = createSocket('udp4');
  peer.bind(0, '127.0.0.1');
  await once(peer, 'listening');
  try {
    const from = { family: 4 as const, port: sockets.boundAddresses()[0]!.port };
    // Broadcast without SO_BROADCAST: the kernel refuses each send (EACCES).
    const refused = { family: 4 as const, address: '255.255.255.255', port: 9 };
    const eacces = () => sockets.stats().errors['send:EACCES'] ?? 0;
    for (let i = 0; i < SEND_CHECK_EVERY; i++) assert.equal(sockets.send(from, refused, Buffer.from('x')), true);
    await settle(() => eacces() >= 1);
    assert.equal(eacces(), 1, 'one sampled send saw the error');
    for (let i = 0; i < 10; i++) sockets.send(from, refused, Buffer.from('x'));
    await settle(() => eacces() >= 11);
    assert.equal(eacces(), 11, 'after an error every send is checked');
    // Good sends still go out, checked or not.
    const got: string[] = [];
    peer.on('message', (m) => got.push(m.toString()));
    const to = { family: 4 as const, address: '127.0.0.1', port: (peer.address() as { port: number }).port };
    for (let i = 0; i < 40; i++) sockets.send(from, to, Buffer.from(`m${i}`));
    await settle(() => got.length >= 40);
    assert.equal(got.length, 40);
    assert.equal(sockets.stats().out.listen.packets, SEND_CHECK_EVERY + 10 + 40);
  } finally {
    peer.close();
    await sockets.close();
  }
});
