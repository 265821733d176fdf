// Start-up defaults: the generated REST secret in the state directory, the
// relayed-address choice per family, the transport choice, and minting a
// credential that the relay's own credential source accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../../src/config/schema.ts';
import { ensureCredentials, SECRET_FILE } from '../../../src/relay/defaults.ts';
import { chooseRelayAddress, probeDefaultRoute } from '../../../src/net/relay-address.ts';
import { buildCredentials } from '../../../src/relay/build.ts';
import { mintFromConfig, parseCliArgs } from '../../../src/cmd/credential.ts';
import { pickTransport } from '../../../src/cmd/relay.ts';

const withDir = (fn: (dir: string) => void) => {
  const dir = mkdtempSync(join(tmpdir(), 'tprelay-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

test('with no credentials configured, a REST secret is created 0600 in the state dir and reused', () => {
  withDir((dir) => {
    const config = configSchema.parse({});
    const hints: string[] = [];
    const first = ensureCredentials(config, join(dir, 'state'), undefined, (h) => hints.push(h));
    assert.equal(first.created, true);
    assert.ok(first.generatedSecret && first.generatedSecret.length >= 32);
    const file = join(dir, 'state', SECRET_FILE);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(readFileSync(file, 'utf8').trim(), first.generatedSecret);
    assert.match(hints[0]!, /turnutils_uclient/);
    assert.match(hints[0]!, /cmd\/credential/);

    const second = ensureCredentials(config, join(dir, 'state'), undefined, () => {});
    assert.equal(second.created, false);
    assert.equal(second.generatedSecret, first.generatedSecret);
  });
});

test('configured credentials (users, REST or Firezone secret) leave the state dir alone', () => {
  withDir((dir) => {
    for (const raw of [{ users: 'a:b' }, { restSecret: 'abcdefgh1' }, { firezoneSecret: 'abcdefgh1' }]) {
      const r = ensureCredentials(configSchema.parse(raw), dir, undefined, () => assert.fail('no hint expected'));
      assert.equal(r.generatedSecret, undefined);
    }
    assert.throws(() => statSync(join(dir, SECRET_FILE)), /ENOENT/);
  });
});

test('a truncated secret file is replaced, not accepted as a weak secret', () => {
  withDir((dir) => {
    writeFileSync(join(dir, SECRET_FILE), 'short\n', { mode: 0o644 });
    const r = ensureCredentials(configSchema.parse({}), dir, undefined, () => {});
    assert.equal(r.created, true);
    assert.notEqual(r.generatedSecret, 'short');
    assert.equal(statSync(join(dir, SECRET_FILE)).mode & 0o777, 0o600);
  });
});

test('a credential minted from the generated secret is accepted by the relay credential source', () => {
  withDir((dir) => {
    const config = configSchema.parse({ stateDir: dir });
    const now = Date.now();
    const m = mintFromConfig(config, { user: 'alice', ttlSeconds: 60, now }, dir);
    const secret = ensureCredentials(config, dir, undefined, () => {}).generatedSecret!;
    const creds = buildCredentials({ ...config, restSecret: secret });
    assert.equal(creds.passwordFor(m.username, now), m.password);
    assert.equal(creds.passwordFor(m.username, now + 61_000), undefined, 'expired');
  });
  assert.deepEqual(parseCliArgs(['--user', 'bob', '--ttl=60', '--listen-port', '4000']), { user: 'bob', ttl: 60, json: false, rest: ['--listen-port', '4000'] });
});

test('relayed address per family: configured > specific listen address > default route > interface > unavailable', async () => {
  const base = configSchema.parse({ listenAddresses: '0.0.0.0,::' });
  const ok = (address: string) => async () => ({ ok: true as const, address });
  const noRoute = async () => ({ ok: false as const, noRoute: true, error: 'ENETUNREACH' });
  const otherFailure = async () => ({ ok: false as const, noRoute: false, error: 'EPERM' });
  const iface = () => '198.51.100.9';

  assert.deepEqual(await chooseRelayAddress({ ...base, publicIpv4: '203.0.113.1' }, 4, ok('10.0.0.1')), { address: '203.0.113.1', source: 'configured' });
  assert.deepEqual(await chooseRelayAddress({ ...base, listenAddresses: ['10.1.1.1', '::'] }, 4, ok('10.0.0.1')), { address: '10.1.1.1', source: 'listen-address' });
  assert.deepEqual(await chooseRelayAddress(base, 4, ok('10.0.0.1')), { address: '10.0.0.1', source: 'default-route' });
  assert.equal((await chooseRelayAddress(base, 6, noRoute, iface)).source, 'unavailable');
  assert.deepEqual((await chooseRelayAddress(base, 4, otherFailure, iface)).address, '198.51.100.9');
  assert.equal((await chooseRelayAddress(base, 4, otherFailure, () => undefined)).address, undefined);
});

test('the route probe reads the source address without sending (loopback target)', async () => {
  assert.deepEqual(await probeDefaultRoute(4, '127.0.0.1'), { ok: true, address: '127.0.0.1' });
  const v4 = await probeDefaultRoute(4);
  if (v4.ok) assert.notEqual(v4.address, '0.0.0.0');
});

test('transport is chosen by --transport or TURNPIKE_RELAY_TRANSPORT, default standalone', () => {
  assert.deepEqual(pickTransport(['--listen-port', '1'], {}), { transport: 'standalone', argv: ['--listen-port', '1'] });
  assert.deepEqual(pickTransport(['--transport', 'sidecar', '--realm', 'x'], {}), { transport: 'sidecar', argv: ['--realm', 'x'] });
  assert.deepEqual(pickTransport(['--transport=standalone'], { TURNPIKE_RELAY_TRANSPORT: 'sidecar' }), { transport: 'standalone', argv: [] });
  assert.equal(pickTransport([], { TURNPIKE_RELAY_TRANSPORT: 'sidecar' }).transport, 'sidecar');
  assert.throws(() => pickTransport(['--transport', 'carrier-pigeon'], {}), /standalone or sidecar/);
});
