import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inheritedStreamSockets, streamSocketEntry } from '../../../src/relay/transport/stream-sockets.ts';
import { configSchema } from '../../../src/config/schema.ts';

test('stream socket entries read back as written, IPv6 in brackets', () => {
  const sockets = [
    { transport: 'tcp', address: '0.0.0.0', port: 3478, fd: 4 },
    { transport: 'tls', address: '::', port: 443, fd: 5 },
    { transport: 'tcp', address: '2001:db8::1', port: 3478, fd: 6 },
  ] as const;
  const entries = sockets.map(streamSocketEntry);
  assert.deepEqual(entries, ['tcp:0.0.0.0:3478=4', 'tls:[::]:443=5', 'tcp:[2001:db8::1]:3478=6']);
  const parsed = configSchema.parse({ streamFds: entries.join(',') });
  assert.deepEqual(inheritedStreamSockets(parsed.streamFds!), sockets);
});

test('the schema refuses a malformed entry', () => {
  for (const bad of ['udp:0.0.0.0:3478=4', 'tcp:::3478=4', 'tcp:0.0.0.0:3478', 'tls:[::]:443=x']) {
    assert.equal(configSchema.safeParse({ streamFds: bad }).success, false, bad);
  }
});
