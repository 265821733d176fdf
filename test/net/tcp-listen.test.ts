// listenTcp: a listening socket this process does not accept on, served by
// whoever listens on its fd (as the relay does with the launcher's); bind
// errors carry their errno name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { closeFd, listenTcp } from '../../src/net/tcp-listen.ts';
import { platformReason } from '../../src/net/native.ts';

async function freeTcpPort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

test('a socket from listenTcp serves through node:net listen({ fd }); a second one on the port is EADDRINUSE', { skip: platformReason() }, async () => {
  const port = await freeTcpPort();
  const fd = listenTcp(4, '127.0.0.1', port);
  assert.throws(() => listenTcp(4, '127.0.0.1', port), (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE' && /127\.0\.0\.1:\d+/.test(e.message));
  const server = createServer((c) => c.end('hello'));
  await new Promise<void>((resolve) => server.listen({ fd }, resolve));
  assert.deepEqual(server.address(), { address: '127.0.0.1', family: 'IPv4', port });
  const client = connect(port, '127.0.0.1');
  let text = '';
  client.on('data', (d) => (text += d));
  await once(client, 'end');
  assert.equal(text, 'hello');
  await new Promise((r) => server.close(r));
});

test('IPv6 sockets are v6-only (both wildcards bind on one port)', { skip: platformReason() }, async () => {
  const port = await freeTcpPort();
  const v6 = listenTcp(6, '::', port);
  const v4 = listenTcp(4, '0.0.0.0', port);
  closeFd(v4);
  closeFd(v6);
});
