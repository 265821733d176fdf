// The configuration layers (defaults < file < environment < command line)
// through the one schema: every setting has its field, every field its
// variable and flag, and a bad value names the field, its source and why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, ENV_NAMES, loadConfig } from '../../src/config/load.ts';
import { configSchema } from '../../src/config/schema.ts';

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => loadConfig({ argv, env });

/** The ConfigError's issues, for assert.throws. */
const issues = (expected: { field: string; source: string; reason: RegExp }[]) => (e: unknown) => {
  assert.ok(e instanceof ConfigError, String(e));
  assert.equal(e.issues.length, expected.length, e.message);
  expected.forEach((x, i) => {
    assert.equal(e.issues[i]!.field, x.field);
    assert.equal(e.issues[i]!.source, x.source);
    assert.match(e.issues[i]!.reason, x.reason);
    assert.ok(e.message.includes(`${x.field} (${x.source})`), e.message);
  });
  return true;
};

test('every field has an environment variable, except the flag override family', () => {
  const fields = Object.keys(configSchema.shape).sort();
  assert.deepEqual(Object.keys(ENV_NAMES).sort(), fields.filter((f) => f !== 'flagOverrides'));
});

test('defaults < file < environment < flag, each value with its source', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tpconfig-'));
  try {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ $schema: 'x', realm: 'file', software: 'file', maxAllocations: 7 }));
    const l = load(['--config', file, '--realm=flag'], { TURNPIKE_REALM: 'env', TURNPIKE_SOFTWARE: 'env' });
    assert.deepEqual([l.config.realm, l.config.software, l.config.maxAllocations, l.config.listenPort], ['flag', 'env', 7, 3478]);
    assert.equal(l.configFile, file);
    assert.equal(l.sources.realm, 'flag --realm');
    assert.equal(l.sources.software, 'environment TURNPIKE_SOFTWARE');
    assert.equal(l.sources.maxAllocations, `config file ${file}`);
    assert.equal(load([], { TURNPIKE_CONFIG: file }).config.maxAllocations, 7);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('internal settings come from their variables and flags', () => {
  const { config } = load(['--resync-grace-ms', '500'], {
    TURNPIKE_RELAY_TRANSPORT: 'sidecar',
    TURNPIKE_RELAY_GID: '65534',
    TURNPIKE_BPF_OBJECT: '/tmp/debug.o',
    TURNPIKE_BATCHED_IO: 'off',
    TURNPIKE_SENTRY_FLUSH_MS: '200',
  });
  assert.deepEqual(
    [config.relayTransport, config.resyncGraceMs, config.relayGid, config.bpfObject, config.batchedIo, config.sentryFlushMs],
    ['sidecar', 500, 65534, '/tmp/debug.o', 'off', 200],
  );
  const bare = load([]).config;
  assert.deepEqual([bare.relayTransport, bare.resyncGraceMs, bare.batchedIo, bare.sentryFlushMs], ['standalone', 15_000, 'auto', undefined]);
  assert.throws(
    () => load([], { TURNPIKE_SENTRY_FLUSH_MS: 'soon' }),
    issues([{ field: 'sentryFlushMs', source: 'environment TURNPIKE_SENTRY_FLUSH_MS', reason: /number/ }]),
  );
});

test('OTLP endpoint: the metrics variable over the general one, a flag over both; bare HOST:PORT is http', () => {
  assert.equal(load([]).config.otlpEndpoint, undefined);
  const general = load([], { OTEL_EXPORTER_OTLP_ENDPOINT: '127.0.0.1:4317' });
  assert.equal(general.config.otlpEndpoint, 'http://127.0.0.1:4317');
  assert.equal(general.sources.otlpEndpoint, 'environment OTEL_EXPORTER_OTLP_ENDPOINT');
  const both = load([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'a:1', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'https://b:2' });
  assert.equal(both.config.otlpEndpoint, 'https://b:2');
  assert.equal(both.sources.otlpEndpoint, 'environment OTEL_EXPORTER_OTLP_METRICS_ENDPOINT');
  assert.equal(load(['--otlp-endpoint', 'http://c:3'], { OTEL_EXPORTER_OTLP_ENDPOINT: 'a:1' }).config.otlpEndpoint, 'http://c:3');
  assert.equal(load([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'unix:///run/otlp.sock' }).config.otlpEndpoint, 'unix:///run/otlp.sock');
});

test('feature flag overrides: TURNPIKE_FLAG_<NAME> and _PAYLOAD, by name after the prefix', () => {
  const { config, sources } = load([], {
    TURNPIKE_FLAG_STREAM_LOGS: 'true',
    TURNPIKE_FLAG_STREAM_LOGS_PAYLOAD: 'debug,bpf=trace',
    TURNPIKE_FLAG_EMPTY: '',
    TURNPIKE_FLAG_lower: 'true',
  });
  assert.deepEqual(config.flagOverrides, { STREAM_LOGS: 'true', STREAM_LOGS_PAYLOAD: 'debug,bpf=trace' });
  assert.equal(sources.flagOverrides, 'environment TURNPIKE_FLAG_*');
  assert.equal(load([]).config.flagOverrides, undefined);
  // Values stay text: telemetry/flags.ts warns about one that is not a boolean instead of stopping the pair.
  assert.deepEqual(load([], { TURNPIKE_FLAG_STREAM_LOGS: 'maybe' }).config.flagOverrides, { STREAM_LOGS: 'maybe' });
});

test('a bad value names the field, the layer it came from and why', () => {
  assert.throws(
    () => load(['--listen-port', '0'], { TURNPIKE_PORT_RANGE: '9-1' }),
    issues([
      { field: 'listenPort', source: 'flag --listen-port', reason: /1-65535/ },
      { field: 'portRange', source: 'environment TURNPIKE_PORT_RANGE', reason: /LOW must not be above HIGH/ },
    ]),
  );
  assert.throws(() => load(['--relay-transport', 'carrier-pigeon']), issues([{ field: 'relayTransport', source: 'flag --relay-transport', reason: /standalone or sidecar/ }]));
});
