import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inheritedStreamSockets, streamSocketEntry, systemdStreamSockets } from '../../../src/relay/transport/stream-sockets.ts';
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

test('sockets from systemd (sd_listen_fds): fds from 3 named tcp/tls or by their socket unit; the variables removed; another pid\'s ignored', () => {
  const env: NodeJS.ProcessEnv = { LISTEN_PID: '42', LISTEN_FDS: '4', LISTEN_FDNAMES: 'tcp:tcp:tls:turnpike-relay-tls.socket', OTHER: 'kept' };
  assert.deepEqual(systemdStreamSockets(env, 42), [
    { transport: 'tcp', address: '', port: 0, fd: 3 },
    { transport: 'tcp', address: '', port: 0, fd: 4 },
    { transport: 'tls', address: '', port: 0, fd: 5 },
    { transport: 'tls', address: '', port: 0, fd: 6 },
  ]);
  assert.deepEqual(env, { OTHER: 'kept' });
  const other: NodeJS.ProcessEnv = { LISTEN_PID: '41', LISTEN_FDS: '1', LISTEN_FDNAMES: 'tcp' };
  assert.deepEqual(systemdStreamSockets(other, 42), []);
  assert.deepEqual(other, {});
  assert.deepEqual(systemdStreamSockets({}, 42), []);
});

test('sockets from systemd: a name that is neither tcp nor tls, a missing name or a bad count is a clear error', () => {
  const run = (names: string | undefined, fds = '1') => () => systemdStreamSockets({ LISTEN_PID: '7', LISTEN_FDS: fds, ...(names !== undefined ? { LISTEN_FDNAMES: names } : {}) }, 7);
  assert.throws(run('http'), /socket 3 is named "http": expected tcp or tls/);
  assert.throws(run(undefined), /LISTEN_FDNAMES names 0 sockets, LISTEN_FDS=1/);
  assert.throws(run('tcp', 'x'), /LISTEN_FDS=x/);
  assert.throws(run('tcp:tcp', '1'), /names 2 sockets/);
});
