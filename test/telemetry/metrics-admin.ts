// A metrics registry behind a real admin server on an ephemeral loopback
// port, for tests that assert on what a Prometheus scrape of /metrics sees.
import { after } from 'node:test';
import { createLogHub } from '../../src/shared/logger.ts';
import { createMetrics, type Metrics } from '../../src/telemetry/metrics.ts';
import { startAdmin } from '../../src/sidecar/admin.ts';
import { sink } from './sink.ts';

export async function metricsBehindAdmin(): Promise<{ metrics: Metrics; scrape: () => Promise<string> }> {
  const hub = createLogHub({ destination: sink().stream as never });
  const metrics = createMetrics({ version: '0.0.0', instanceId: '11111111-2222-4333-8444-555555555555', log: hub.get('metrics') });
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, logHub: hub, metrics, ready: () => ({ ready: true, reasons: [] }), status: () => ({}) });
  after(async () => {
    await admin.close();
    await metrics.shutdown();
  });
  return { metrics, scrape: async () => (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text() };
}
