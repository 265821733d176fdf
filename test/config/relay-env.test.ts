// The relay's environment holds its own settings and nothing else: no Sentry,
// PostHog or OTLP values, none of the launcher's variables, and what it holds
// reads back to the same settings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.ts';
import { loadConfig } from '../../src/config/load.ts';
import { RELAY_FIELDS, relayEnvironment, type RelayField } from '../../src/config/relay-env.ts';
import type { ServerConfig } from '../../src/relay/build.ts';

const launcherEnv = {
  TURNPIKE_SENTRY_DSN: 'https://sentry-key@o1.ingest.sentry.io/2',
  TURNPIKE_POSTHOG_KEY: 'phc_posthog_key',
  TURNPIKE_POSTHOG_SECRET_KEY: 'phx_posthog_secret',
  TURNPIKE_POSTHOG_HOST: 'https://eu.posthog.com',
  OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317',
  TURNPIKE_USERS: 'alice:pw1,bob:pw2',
  TURNPIKE_PORT_RANGE: '50000-50100',
  TURNPIKE_ALLOWED_PEERS: '10.0.0.0/8,fd00::/8',
  TURNPIKE_LOG: 'info,server=debug',
  TURNPIKE_ADMIN: '127.0.0.1:9999',
  TURNPIKE_INTERFACE: 'eth0',
};

test('only the relay\'s own settings, none of the telemetry secrets, and they read back the same', () => {
  const { config } = loadConfig({ argv: [], env: launcherEnv });
  const env = relayEnvironment({ ...config, relayTransport: 'sidecar', stateDir: '/var/lib/tp', lifelineFd: 3 });
  const text = JSON.stringify(env);
  for (const secret of ['sentry-key', 'phc_posthog_key', 'phx_posthog_secret', 'posthog.com', 'collector', 'eth0', '9999']) {
    assert.ok(!text.includes(secret), `${secret} leaked into the relay's environment`);
  }
  assert.ok(Object.keys(env).every((k) => k.startsWith('TURNPIKE_')), Object.keys(env).join(','));
  assert.equal(env.TURNPIKE_USERS, 'alice:pw1,bob:pw2');
  assert.equal(env.TURNPIKE_PORT_RANGE, '50000-50100');
  assert.equal(env.TURNPIKE_RELAY_TRANSPORT, 'sidecar');
  assert.equal(env.TURNPIKE_LIFELINE_FD, '3');
  const back = loadConfig({ argv: [], env }).config;
  for (const f of RELAY_FIELDS) assert.deepEqual(back[f], f === 'relayTransport' ? 'sidecar' : f === 'stateDir' ? '/var/lib/tp' : f === 'lifelineFd' ? 3 : config[f], f);
});

test('a value the environment syntax would split is a configuration error, not a silently different relay', () => {
  const config = configSchema.parse({ users: [{ username: 'alice', password: 'with,comma' }] });
  assert.throws(() => relayEnvironment(config), /cannot hand the relay its settings:\n  users \(config\)/);
});

// Every setting the relay's TURN server is built from reaches it under the
// launcher: one left out here silently runs with its default under `npm start`
// (as TURNPIKE_ALLOW_RELAYED_PEERS and the per-allocation limits once did).
// A compile-time check (the suite's typecheck), plus the value that travels.
type NotHandedToRelay = Exclude<keyof ServerConfig, RelayField>;
const everyServerSettingTravels: [NotHandedToRelay] extends [never] ? true : NotHandedToRelay = true;

test('the relay gets every setting its server is built from: relayed peers, limits, rates, listen addresses', () => {
  assert.equal(everyServerSettingTravels, true);
  const env = {
    TURNPIKE_ALLOW_RELAYED_PEERS: 'true',
    TURNPIKE_MAX_PERMISSIONS_PER_ALLOCATION: '7',
    TURNPIKE_MAX_CHANNELS_PER_USER: '9',
    TURNPIKE_AUTH_RATE: '11',
    TURNPIKE_LISTEN_ADDRESSES: '192.0.2.7',
    TURNPIKE_SESSION_LOG_RATE: '3',
    TURNPIKE_USERS: 'alice:pw1',
  };
  const { config } = loadConfig({ argv: [], env });
  const back = loadConfig({ argv: [], env: relayEnvironment(config) }).config;
  assert.equal(back.allowRelayedPeers, true);
  assert.equal(back.maxPermissionsPerAllocation, 7);
  assert.equal(back.maxChannelsPerUser, 9);
  assert.equal(back.authRatePerSecond, 11);
  assert.deepEqual(back.listenAddresses, ['192.0.2.7']);
  assert.equal(back.sessionLogRate, 3);
});
