// Feature flags against an in-test PostHog speaking the real endpoints,
// driven by the real posthog-node client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { createLogHub } from '../../src/shared/logger.ts';
import { createFlags, type FlagsOptions } from '../../src/telemetry/flags.ts';
import { loadIdentity } from '../../src/telemetry/identity.ts';
import { startFakePostHog } from '../helpers/fake-posthog.ts';
import { sink } from './sink.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const ID = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
/** The overrides the configuration loader reads from these variables. */
const fromEnv = (env: NodeJS.ProcessEnv) => loadConfig({ argv: [], env }).config.flagOverrides;

function setup(over: Partial<FlagsOptions>) {
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never });
  const flags = createFlags({
    names: ['stream-logs'],
    intervalMs: 3_600_000, // evaluations are driven by refresh() here
    requestTimeoutMs: 300,
    distinctId: ID,
    version: '1.2.3',
    log: hub.get('flags'),
    ...over,
  });
  return { flags, out };
}

test('remote evaluation: on, payload, off; transitions are logged', async (t) => {
  const ph = await startFakePostHog();
  t.after(() => ph.close());
  ph.setFlag('stream-logs', { enabled: true, payload: 'debug,bpf=trace' });
  const { flags, out } = setup({ posthogKey: 'phc_test', posthogHost: ph.host });
  t.after(() => flags.close());
  await flags.refresh();
  assert.equal(flags.isEnabled('stream-logs'), true);
  assert.deepEqual(flags.get('stream-logs'), { on: true, payload: 'debug,bpf=trace', source: 'posthog' });
  const body = ph.flagBodies[0] as any;
  assert.equal(body.distinct_id, ID);
  assert.deepEqual(body.person_properties.version, '1.2.3');
  assert.equal(typeof body.person_properties.hostname, 'string');

  ph.setFlag('stream-logs', { enabled: false });
  await flags.refresh();
  assert.equal(flags.isEnabled('stream-logs'), false);
  const changes = out.lines.filter((l) => l.msg === 'feature flag changed');
  assert.deepEqual(
    changes.map((l) => [l.flag, l.from, l.to, l.source]),
    [['stream-logs', false, true, 'posthog'], ['stream-logs', true, false, 'posthog']],
  );
  assert.equal(ph.requests.other, 0, 'no events captured (/batch/)');
});

for (const mode of ['down', 'slow', 'garbage', 'error'] as const) {
  test(`PostHog ${mode}: the flag is false, and true again once PostHog recovers`, async (t) => {
    const ph = await startFakePostHog({ slowMs: 5_000 });
    t.after(() => ph.close());
    ph.setFlag('stream-logs', { enabled: true });
    const { flags, out } = setup({ posthogKey: 'phc_test', posthogHost: ph.host });
    t.after(() => flags.close());
    await flags.refresh();
    assert.equal(flags.isEnabled('stream-logs'), true);
    await ph.setMode(mode);
    await flags.refresh();
    assert.equal(flags.isEnabled('stream-logs'), false);
    assert.ok(out.find((l) => l.level === 40 && /PostHog flags unavailable/.test(l.msg)));
    await ph.setMode('ok');
    await flags.refresh();
    assert.equal(flags.isEnabled('stream-logs'), true);
  });
}

test('an unknown flag is false', async (t) => {
  const ph = await startFakePostHog();
  t.after(() => ph.close());
  ph.setFlag('something-else', { enabled: true });
  const { flags } = setup({ posthogKey: 'phc_test', posthogHost: ph.host });
  t.after(() => flags.close());
  await flags.refresh();
  assert.equal(flags.isEnabled('stream-logs'), false);
  assert.equal(ph.requests.flags, 1);
});

test('local evaluation with a secret key: definitions, flip within one refresh, down -> false', async (t) => {
  const ph = await startFakePostHog();
  t.after(() => ph.close());
  ph.setFlag('stream-logs', { enabled: true, payload: 'warn' });
  const { flags } = setup({ posthogKey: 'phc_test', posthogHost: ph.host, posthogSecretKey: 'phx_secret' });
  t.after(() => flags.close());
  await flags.refresh();
  assert.deepEqual(flags.get('stream-logs'), { on: true, payload: 'warn', source: 'posthog' });
  assert.ok(ph.requests.definitions >= 1);
  assert.equal(ph.requests.flags, 0, 'evaluated locally');
  ph.setFlag('stream-logs', { enabled: false });
  await flags.refresh();
  assert.equal(flags.isEnabled('stream-logs'), false);
  ph.setFlag('stream-logs', { enabled: true });
  await flags.refresh();
  assert.equal(flags.isEnabled('stream-logs'), true);
  // Cached definitions do not keep a flag on while PostHog is down.
  await ph.setMode('down');
  await flags.refresh();
  assert.equal(flags.isEnabled('stream-logs'), false);
});

test('no PostHog settings: no client and zero requests', async (t) => {
  const ph = await startFakePostHog();
  t.after(() => ph.close());
  // The server exists, but nothing names it: a request would show up in its count.
  const { flags } = setup({ overrides: fromEnv({ POSTHOG_HOST: ph.host }) });
  await flags.refresh();
  await new Promise((r) => setTimeout(r, 100));
  await flags.close();
  assert.equal(flags.posthog, false);
  assert.equal(flags.isEnabled('stream-logs'), false);
  assert.equal(ph.requests.total, 0);
});

test('environment override wins over PostHog, both ways', async (t) => {
  const ph = await startFakePostHog();
  t.after(() => ph.close());
  ph.setFlag('stream-logs', { enabled: true });
  const off = setup({ posthogKey: 'phc_test', posthogHost: ph.host, overrides: fromEnv({ TURNPIKE_FLAG_STREAM_LOGS: 'false' }) });
  await off.flags.refresh();
  assert.deepEqual(off.flags.get('stream-logs'), { on: false, payload: undefined, source: 'env' });
  assert.equal(ph.requests.total, 0, 'the only flag is overridden: nothing to ask PostHog');
  await off.flags.close();

  ph.setFlag('stream-logs', { enabled: false });
  const on = setup({ overrides: fromEnv({ TURNPIKE_FLAG_STREAM_LOGS: 'true', TURNPIKE_FLAG_STREAM_LOGS_PAYLOAD: 'debug' }) });
  assert.deepEqual(on.flags.get('stream-logs'), { on: true, payload: 'debug', source: 'env' });
  assert.ok(on.out.find((l) => l.msg === 'feature flag changed' && l.source === 'env' && l.to === true));
  await on.flags.close();

  const bad = setup({ overrides: fromEnv({ TURNPIKE_FLAG_STREAM_LOGS: 'maybe' }) });
  assert.equal(bad.flags.isEnabled('stream-logs'), false);
  assert.ok(bad.out.find((l) => l.msg === 'ignoring flag override'));
  await bad.flags.close();
});

test('the flag interval re-evaluates without refresh()', async (t) => {
  const ph = await startFakePostHog();
  t.after(() => ph.close());
  const { flags } = setup({ posthogKey: 'phc_test', posthogHost: ph.host, intervalMs: 50 });
  t.after(() => flags.close());
  const flipped = new Promise<void>((resolve) => flags.onChange((_n, s) => s.on && resolve()));
  ph.setFlag('stream-logs', { enabled: true });
  await flipped;
  assert.equal(flags.isEnabled('stream-logs'), true);
});

test('identity: created once in the state directory, then reused', () => {
  const dir = tempDir('tptel-');
  const a = loadIdentity(join(dir, 'state'));
  const b = loadIdentity(join(dir, 'state'));
  assert.equal(a.created, true);
  assert.equal(b.created, false);
  assert.equal(a.id, b.id);
  assert.match(a.id, /^[0-9a-f-]{36}$/);
  assert.equal(readFileSync(join(dir, 'state', 'instance-id'), 'utf8').trim(), a.id);
  writeFileSync(join(dir, 'state', 'instance-id'), 'garbage');
  const c = loadIdentity(join(dir, 'state'));
  assert.equal(c.created, true);
  assert.notEqual(c.id, a.id);
});

test('targeting a subset of the fleet: the release condition matches hostname, pool and datapath (local evaluation)', async (t) => {
  const ph = await startFakePostHog();
  t.after(() => ph.close());
  const { flags } = setup({
    posthogKey: 'phc_test',
    posthogHost: ph.host,
    posthogSecretKey: 'phx_secret',
    properties: { environment: 'production', pool: 'eu-west-1a' },
  });
  t.after(() => flags.close());
  const target = (properties: unknown[]) => ph.setFlag('stream-logs', { enabled: true, payload: 'debug', properties });
  const person = (key: string, value: string[], operator = 'exact') => ({ key, value, operator, type: 'person' });

  target([person('hostname', [hostname()])]);
  await flags.refresh();
  assert.deepEqual(flags.get('stream-logs'), { on: true, payload: 'debug', source: 'posthog' }, 'this host is targeted');

  target([person('hostname', ['some-other-relay'])]);
  await flags.refresh();
  assert.equal(flags.isEnabled('stream-logs'), false, 'another host is not this one');

  // The datapath is known once eBPF is up (Sidecar.start sets it).
  flags.setProperties({ datapath: 'userspace' });
  target([person('pool', ['^eu-'], 'regex'), person('datapath', ['xdp'])]);
  await flags.refresh();
  assert.equal(flags.isEnabled('stream-logs'), false, 'an eu pool, but userspace');
  flags.setProperties({ datapath: 'xdp' });
  await flags.refresh();
  assert.equal(flags.isEnabled('stream-logs'), true, 'an eu pool on the XDP datapath');
  assert.deepEqual(flags.properties(), { hostname: hostname(), version: '1.2.3', environment: 'production', pool: 'eu-west-1a', datapath: 'xdp' });
});
