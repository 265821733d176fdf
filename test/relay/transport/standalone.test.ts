// The standalone transport on loopback with real UDP sockets: the real
// TurnServer answers a Binding request through it; socket errors are counted
// and never fatal; a failed allocation-port bind is reported, not thrown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { decodeMessage, encodeMessage, newTransactionId, METHOD } from '../../../src/relay/stun/index.ts';
import { TurnServer } from '../../../src/relay/server/server.ts';
import { buildServerOptions } from '../../../src/relay/build.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { Driver, type SansIoServer } from '../../../src/relay/transport/driver.ts';
import { StandaloneTransport } from '../../../src/relay/transport/standalone.ts';
import type { Family, LocalEndpoint, Output, TransportAddress } from '../../../src/relay/server/types.ts';
import { freePort } from '../../interop/harness.ts';

async function client(type: 'udp4' | 'udp6', address: string): Promise<Socket> {
  const s = createSocket({ type, ipv6Only: type === 'udp6' });
  s.bind(0, address);
  await once(s, 'listening');
  return s;
}

function nextMessage(s: Socket, ms = 2000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no datagram within ' + ms + ' ms')), ms);
    s.once('message', (m) => {
      clearTimeout(t);
      resolve(m);
    });
  });
}

async function startReal(listenAddresses: string[]) {
  const listenPort = await freePort();
  const config = configSchema.parse({ listenPort, listenAddresses, users: 'u:p', portRange: '10000-10100' });
  const server = new TurnServer(buildServerOptions(config, { relayAddresses: { v4: '127.0.0.1', v6: '::1' } }));
  const transport = new StandaloneTransport({ listenPort, listenAddresses });
  const driver = new Driver(server, transport);
  transport.attach(driver);
  await transport.listenAll();
  return { listenPort, transport, close: async () => (driver.close(), await transport.close()) };
}

for (const [family, host] of [[4, '127.0.0.1'], [6, '::1']] as const) {
  test(`Binding request over IPv${family} loopback gets a success with XOR-MAPPED-ADDRESS`, async () => {
    const relay = await startReal(['127.0.0.1', '::1']);
    const c = await client(family === 4 ? 'udp4' : 'udp6', host);
    try {
      const tid = newTransactionId();
      const req = encodeMessage({ method: METHOD.BINDING, cls: 'request', transactionId: tid, attributes: {} }, { fingerprint: true });
      const reply = nextMessage(c);
      c.send(req, relay.listenPort, host);
      const d = decodeMessage(new Uint8Array(await reply));
      assert.equal(d.kind, 'message');
      if (d.kind !== 'message') return;
      assert.equal(d.message.cls, 'success');
      assert.deepEqual([...d.message.transactionId], [...tid]);
      assert.deepEqual(d.message.attributes.xorMappedAddress, { family, address: host, port: c.address().port });
      assert.equal(relay.transport.stats().received.packets, 1);
      assert.equal(relay.transport.stats().sent.packets, 1);
    } finally {
      c.close();
      await relay.close();
    }
  });
}

/** A stand-in server that scripts outputs, to drive the transport's error paths. */
class ScriptedServer implements SansIoServer {
  readonly queue: Output[] = [];
  readonly opened: { token: number; ok: boolean }[] = [];
  onDatagram: (data: Uint8Array, local: LocalEndpoint, remote: TransportAddress) => void = () => {};
  handleDatagram(data: Uint8Array, local: LocalEndpoint, remote: TransportAddress): void {
    this.onDatagram(data, local, remote);
  }
  portOpened(token: number, ok: boolean): void {
    this.opened.push({ token, ok });
  }
  handleTimeout(): void {}
  nextDeadline(): number | undefined {
    return undefined;
  }
  pollOutput(): Output | undefined {
    return this.queue.shift();
  }
}

async function startScripted() {
  const listenPort = await freePort();
  const server = new ScriptedServer();
  const transport = new StandaloneTransport({ listenPort, listenAddresses: ['127.0.0.1'] });
  const driver = new Driver(server, transport);
  transport.attach(driver);
  await transport.listenAll();
  return { listenPort, server, transport, driver, close: async () => (driver.close(), await transport.close()) };
}

test('a send error on one socket is counted and not fatal', async () => {
  const relay = await startScripted();
  const c = await client('udp4', '127.0.0.1');
  const from: LocalEndpoint = { family: 4, port: relay.listenPort };
  // Each datagram makes the server emit three sends: one the kernel refuses
  // (broadcast without SO_BROADCAST: EACCES), one Node refuses synchronously
  // (port 0), and the echo, which must still arrive.
  relay.server.onDatagram = (data, _local, remote) => {
    relay.server.queue.push(
      { kind: 'send', from, to: { family: 4, address: '255.255.255.255', port: 9 }, data },
      { kind: 'send', from, to: { family: 4, address: '127.0.0.1', port: 0 }, data },
      { kind: 'send', from, to: remote, data },
    );
  };
  try {
    for (const word of ['one', 'two']) {
      const reply = nextMessage(c);
      c.send(Buffer.from(word), relay.listenPort, '127.0.0.1');
      assert.equal((await reply).toString(), word);
    }
    // The asynchronous error callbacks may trail the echo slightly.
    for (let i = 0; i < 50 && (relay.transport.stats().errors['send:EACCES'] ?? 0) < 2; i++) await new Promise((r) => setTimeout(r, 10));
    const errors = relay.transport.stats().errors;
    assert.equal(errors['send:EACCES'], 2, JSON.stringify(errors));
    assert.equal(errors['send:ERR_SOCKET_BAD_PORT'], 2, JSON.stringify(errors));
  } finally {
    c.close();
    await relay.close();
  }
});

test('a send from a port the transport does not hold is dropped and counted', async () => {
  const relay = await startScripted();
  try {
    relay.transport.send({ family: 4, port: 1 }, { family: 4, address: '127.0.0.1', port: 9 }, new Uint8Array(4));
    assert.equal(relay.transport.stats().errors['no-socket'], 1);
  } finally {
    await relay.close();
  }
});

test('open-port binds an allocation socket, reports a bind failure as not ok, and close-port frees it', async () => {
  const relay = await startScripted();
  const port = await freePort(10000, 19999);
  const blocker = createSocket('udp4');
  try {
    relay.server.queue.push({ kind: 'open-port', token: 7, family: 4, port });
    relay.driver.kick();
    for (let i = 0; i < 100 && relay.server.opened.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(relay.server.opened, [{ token: 7, ok: true }]);
    assert.equal(relay.transport.stats().openPorts, 1);

    // Traffic to the allocation port reaches the server as arriving on that local port.
    const seen: LocalEndpoint[] = [];
    relay.server.onDatagram = (_d, local) => seen.push(local);
    const c = await client('udp4', '127.0.0.1');
    c.send(Buffer.from('x'), port, '127.0.0.1');
    for (let i = 0; i < 100 && seen.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
    c.close();
    assert.deepEqual(seen, [{ family: 4, port }]);

    relay.server.queue.push({ kind: 'close-port', family: 4, port });
    relay.driver.kick();
    assert.equal(relay.transport.stats().openPorts, 0);

    // Now hold the port elsewhere: the next open fails with ok=false.
    await new Promise<void>((r) => setTimeout(r, 20));
    blocker.bind({ port, address: '0.0.0.0', exclusive: true });
    await once(blocker, 'listening');
    relay.server.queue.push({ kind: 'open-port', token: 8, family: 4 as Family, port });
    relay.driver.kick();
    for (let i = 0; i < 100 && relay.server.opened.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(relay.server.opened[1], { token: 8, ok: false });
    assert.equal(relay.transport.stats().errors['bind:EADDRINUSE'], 1);
  } finally {
    blocker.close();
    await relay.close();
  }
});
