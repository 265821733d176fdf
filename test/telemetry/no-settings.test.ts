// With no PostHog, Sentry or OTLP settings everything still runs and nothing
// touches the network; the standard OTEL_EXPORTER_OTLP_* variables alone turn
// the OTLP export on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { createLogHub } from '../../src/shared/logger.ts';
import { startTelemetry, type TelemetryConfig } from '../../src/telemetry/index.ts';
import { startOtlpCollector, pointValue } from '../helpers/otlp-collector.ts';
import { sink } from './sink.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const bare: TelemetryConfig = {
  posthogKey: undefined,
  posthogHost: undefined,
  posthogSecretKey: undefined,
  flagsInterval: 60,
  sentryDsn: undefined,
  environment: 'test',
  otlpEndpoint: undefined,
  metricsInterval: 15,
};
/** The collector the configuration loader settles on, from a flag (or none) and these variables. */
const otlpEndpointFrom = (flag: string | undefined, env: NodeJS.ProcessEnv) =>
  loadConfig({ argv: flag === undefined ? [] : ['--otlp-endpoint', flag], env }).config.otlpEndpoint;
const stateDir = () => join(tempDir('tptel-'), 'state');

test('no settings: no PostHog client, no Sentry, no OTLP; relay lines still reach stdout', async () => {
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never });
  const tel = await startTelemetry({ config: bare, version: '0.1.0', stateDir: stateDir(), logHub: hub });
  assert.equal(tel.flags.posthog, false);
  assert.equal(tel.sentry, undefined);
  assert.equal(tel.metrics.otlpEnabled, false);
  assert.equal(tel.flags.isEnabled('stream-logs'), false);
  tel.relayLog('{"level":30,"module":"alloc","msg":"relay says hi"}\n');
  tel.relayLog('not json\nwith a second "line"');
  await tel.shutdown();
  assert.ok(out.find((l) => l.msg === 'relay says hi' && l.module === 'alloc'));
  const bad = out.find((l) => l.msg === 'unparseable relay log line');
  assert.equal(bad?.module, 'relay');
  assert.ok(!out.find((l) => l.msg === undefined), 'raw relay text never becomes a line of its own');
  const started = out.find((l) => l.msg === 'telemetry started');
  assert.deepEqual([started?.posthog, started?.sentry, started?.otlp], ['off', 'off', 'off']);
});

test('OTEL_EXPORTER_OTLP_ENDPOINT alone turns the OTLP export on', async () => {
  assert.equal(otlpEndpointFrom(undefined, {}), undefined);
  assert.equal(otlpEndpointFrom(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: '127.0.0.1:4317' }), 'http://127.0.0.1:4317');
  assert.equal(otlpEndpointFrom(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'a:1', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'https://b:2' }), 'https://b:2');
  assert.equal(otlpEndpointFrom('http://c:3', { OTEL_EXPORTER_OTLP_ENDPOINT: 'a:1' }), 'http://c:3');

  const collector = await startOtlpCollector();
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never });
  const tel = await startTelemetry({
    config: { ...bare, otlpEndpoint: otlpEndpointFrom(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url }) },
    version: '0.1.0',
    stateDir: stateDir(),
    logHub: hub,
    tuning: { exportIntervalMs: 200 },
  });
  try {
    assert.equal(tel.metrics.otlpEnabled, true);
    tel.metrics.onKernelCounters({ paths: { udp_to_chan_44: { packets: 5n, bytes: 55n } }, reasons: {} });
    const e = await collector.waitFor((x) => pointValue(x, 'turnpike.relayed.bytes', { datapath: 'xdp', direction: 'to_client', family: 'ipv4' }) === 55);
    assert.equal(e.resource['service.instance.id'], tel.identity.id);
    assert.equal(pointValue(e, 'turnpike.flag.state', { flag: 'stream-logs' }), 0);
  } finally {
    await tel.shutdown();
    await collector.close();
  }
});
