// With Sentry refusing connections, a storm of log lines while streaming is
// on stays bounded: the gate hands at most burst + rate*t lines to the SDK,
// the SDK's transport keeps at most 64 requests in flight, and the rest is
// counted as dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as Sentry from '@sentry/node';
import { createLogHub } from '../../src/shared/logger.ts';
import { startTelemetry } from '../../src/telemetry/index.ts';
import { startAdmin } from '../../src/sidecar/admin.ts';
import { sink } from './sink.ts';
import { tempDir } from '../helpers/temp-dir.ts';

async function refusedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('Sentry down: 10,000 sidecar and 10,000 relay lines stay bounded', async () => {
  const port = await refusedPort();
  let inFlight = 0;
  let maxInFlight = 0;
  let logItemsHanded = 0;
  let failedSends = 0;
  const transport: Sentry.NodeOptions['transport'] = (options) => {
    const base = Sentry.makeNodeTransport(options);
    return {
      send(envelope) {
        for (const [header] of envelope[1] as [{ type: string; item_count?: number }, unknown][]) {
          if (header.type === 'log') logItemsHanded += header.item_count ?? 0;
        }
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        return base.send(envelope).then(
          (r) => {
            inFlight--;
            return r;
          },
          (e) => {
            inFlight--;
            failedSends++;
            throw e;
          },
        );
      },
      flush: (t) => base.flush(t),
    };
  };

  const out = sink();
  const hub = createLogHub({ destination: out.stream as never });
  const rate = 100;
  const burst = 500;
  const started = Date.now();
  const tel = await startTelemetry({
    config: {
      posthogKey: undefined,
      posthogHost: undefined,
      posthogSecretKey: undefined,
      flagsInterval: 60,
      sentryDsn: `http://publickey@127.0.0.1:${port}/42`,
      environment: 'test',
      otlpEndpoint: undefined,
      metricsInterval: 15,
      flagOverrides: { STREAM_LOGS: 'true' }, // TURNPIKE_FLAG_STREAM_LOGS=true
    },
    version: '0.1.0',
    stateDir: join(tempDir('tptel-'), 'state'),
    logHub: hub,
    tuning: { streamGate: { ratePerSecond: rate, burst }, sentryTransport: transport },
  });
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, logHub: hub, metrics: tel.metrics, ready: () => ({ ready: true, reasons: [] }), status: () => ({}) });
  assert.equal(tel.sentry?.streaming().on, true);

  const heapBefore = process.memoryUsage().heapUsed;
  const log = hub.get('alloc');
  for (let i = 0; i < 10_000; i++) {
    log.info({ i }, 'storm line');
    tel.relayLog(`{"level":30,"module":"link","msg":"relay storm line","i":${i}}`);
    if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
  const elapsedS = (Date.now() - started) / 1000;
  await tel.sentry!.flush(3000);
  const heapAfter = process.memoryUsage().heapUsed;
  const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  await tel.shutdown();
  await admin.close();

  const dropped = Number(/^turnpike_log_stream_dropped_total\{[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
  const allowed = burst + Math.ceil(rate * (elapsedS + 1));
  assert.ok(logItemsHanded <= allowed, `handed ${logItemsHanded} lines to the transport, bound ${allowed}`);
  assert.ok(maxInFlight <= 64, `max ${maxInFlight} requests in flight`);
  assert.ok(dropped >= 20_000 - allowed - 100, `dropped ${dropped}`);
  assert.ok(out.find((l) => l.module === 'telemetry' && l.level === 40 && /over its rate bound/.test(l.msg)));
  // Memory: the lines themselves are not retained (20,000 lines of ~100 bytes would be > 2 MB with objects).
  assert.ok(heapAfter - heapBefore < 32 * 1024 * 1024, `heap grew ${(heapAfter - heapBefore) >> 20} MB`);
  console.log(`# handed ${logItemsHanded} lines to the SDK transport, dropped ${dropped}, max ${maxInFlight} in flight, ${failedSends} failed sends, heap +${((heapAfter - heapBefore) / 1048576).toFixed(1)} MB`);
});
