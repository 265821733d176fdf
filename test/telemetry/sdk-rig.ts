// The telemetry agent (startTelemetry) with the real posthog-node and
// @sentry/node against an in-test PostHog and Sentry, logging into a sink:
// what the streaming tests drive. One per test file (Sentry is per process).
import { join } from 'node:path';
import { createLogHub, type LogHub } from '../../src/shared/logger.ts';
import { startTelemetry, type Telemetry, type TelemetryOptions } from '../../src/telemetry/index.ts';
import { startFakePostHog, type FakePostHog } from '../helpers/fake-posthog.ts';
import { startFakeSentry, type FakeSentry } from '../helpers/fake-sentry.ts';
import { sink, type Sink } from './sink.ts';
import { tempDir } from '../helpers/temp-dir.ts';

/** A relay log line as a LOG frame carries it. */
export const relayLine = (level: number, module: string, msg: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ level, time: Date.now(), pid: 99, process: 'relay', module, msg, ...extra });

export interface SdkRig {
  ph: FakePostHog;
  sentry: FakeSentry;
  /** The sidecar's stdout. */
  out: Sink;
  hub: LogHub;
  tel: Telemetry;
  close(): Promise<void>;
}

export interface SdkRigOptions {
  /** The local filter (TURNPIKE_LOG). */
  filter: string;
  environment?: string;
  pool?: string;
  version?: string;
  tuning: TelemetryOptions['tuning'];
}

export async function startSdkRig(opts: SdkRigOptions): Promise<SdkRig> {
  const ph = await startFakePostHog();
  const sentry = await startFakeSentry();
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never, filter: opts.filter });
  const tel = await startTelemetry({
    config: {
      posthogKey: 'phc_test',
      posthogHost: ph.host,
      posthogSecretKey: undefined,
      flagsInterval: 60,
      sentryDsn: sentry.dsn,
      environment: opts.environment ?? 'test',
      pool: opts.pool,
      otlpEndpoint: undefined,
      metricsInterval: 15,
    },
    version: opts.version ?? '0.1.0',
    stateDir: join(tempDir('tptel-'), 'state'),
    logHub: hub,
    tuning: opts.tuning,
  });
  return {
    ph,
    sentry,
    out,
    hub,
    tel,
    async close() {
      await tel.shutdown();
      await ph.close();
      await sentry.close();
    },
  };
}
