// The local filter (stdout) and the stream filter (Sentry) are independent:
// a line is made when either wants it, printed only when the local one does;
// a level neither wants is never built. The relay's link destination routes
// the same way while its link is down; the per-source line budget bounds what
// one client can make us log, and what it suppresses is counted on /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineBudget, createLogHub, filterTexts, lowerLevel, parseLogFilter, type RoutingDestination } from '../../src/shared/logger.ts';
import { LinkLogDestination } from '../../src/relay/telemetry/index.ts';
import { createMetrics } from '../../src/telemetry/metrics.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sink } from './sink.ts';

test('stream filter below the local one: the line is made but not printed', () => {
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never, filter: 'info' });
  const log = hub.get('session');
  assert.equal(log.isLevelEnabled('debug'), false);
  hub.setStreamFilter(parseLogFilter('debug'));
  assert.equal(log.isLevelEnabled('debug'), true, 'made for the stream');
  log.debug('for the stream only');
  log.info('for both');
  assert.deepEqual(out.lines.map((l) => l.msg), ['for both']);
  hub.setStreamFilter(undefined);
  assert.equal(log.isLevelEnabled('debug'), false, 'streaming off: back to the local level');
});

test('per-module levels: each module at the lower of its two levels', () => {
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never, filter: 'info,bpf=debug' });
  hub.setStreamFilter(parseLogFilter('warn,session=trace'));
  assert.equal(hub.get('session').level, 'trace');
  assert.equal(hub.get('bpf').level, 'debug');
  assert.equal(hub.get('link').level, 'info');
  hub.get('session').trace('stream only');
  hub.get('bpf').debug('printed: local wants bpf debug');
  hub.get('link').info('printed: local wants info');
  assert.deepEqual(out.lines.map((l) => l.msg), ['printed: local wants bpf debug', 'printed: local wants info']);
  // Changing the local filter keeps the stream's levels.
  hub.setFilter(parseLogFilter('error'));
  assert.equal(hub.get('session').level, 'trace');
  assert.equal(hub.get('link').level, 'warn');
  assert.equal(hub.localAllows('link', 40), false);
  assert.equal(hub.localAllows('link', 50), true);
});

test('a level neither filter wants is never built', () => {
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never, filter: 'info' });
  hub.setStreamFilter(parseLogFilter('info'));
  let serialized = 0;
  const costly = { toJSON: () => (serialized++, 'x') };
  hub.get('session').debug({ costly }, 'nobody wants this');
  assert.equal(serialized, 0);
  assert.equal(out.lines.length, 0);
});

test('onChange tells both filters; filterTexts is what the LOG_FILTER frame carries', () => {
  const hub = createLogHub({ destination: sink().stream as never, filter: 'info' });
  const seen: string[] = [];
  hub.onChange(() => seen.push(JSON.stringify(filterTexts(hub))));
  hub.setStreamFilter(parseLogFilter('debug,bpf=trace'));
  hub.setFilter(parseLogFilter('warn'));
  hub.setStreamFilter(undefined);
  assert.deepEqual(seen, [
    JSON.stringify({ filter: 'info', stream: 'debug,bpf=trace' }),
    JSON.stringify({ filter: 'warn', stream: 'debug,bpf=trace' }),
    JSON.stringify({ filter: 'warn' }),
  ]);
  assert.equal(lowerLevel('info', 'debug'), 'debug');
  assert.equal(lowerLevel('silent', 'warn'), 'warn');
});

test('a routing destination gets every line with whether the local filter wants it', () => {
  const got: [string, boolean][] = [];
  const dest: RoutingDestination = { write: () => assert.fail('routed lines use writeRouted'), writeRouted: (l, local) => void got.push([JSON.parse(l).msg, local]) };
  const hub = createLogHub({ destination: dest, filter: 'info' });
  hub.setStreamFilter(parseLogFilter('debug'));
  hub.get('server').debug('stream');
  hub.get('server').warn('both');
  assert.deepEqual(got, [['stream', false], ['both', true]]);
});

test("the relay's link destination: everything over the link while it is open, only local lines to stdout while it is not", () => {
  const local: string[] = [];
  const sent: string[] = [];
  const dest = new LinkLogDestination({ write: (l: string) => void local.push(JSON.parse(l).msg) });
  const hub = createLogHub({ destination: dest, filter: 'info' });
  hub.setStreamFilter(parseLogFilter('debug'));
  hub.get('session').debug('no link: nobody streams it');
  hub.get('session').info('no link: printed');
  let connected = true;
  dest.attach({ get connected() { return connected; }, sendLog: (_lvl, _m, json) => (sent.push(JSON.parse(json).msg), true) });
  hub.get('session').debug('link: to the sidecar');
  connected = false;
  hub.get('session').debug('link down: dropped');
  assert.deepEqual(local, ['no link: printed']);
  assert.deepEqual(sent, ['link: to the sidecar']);
  assert.equal(dest.stats().local, 1);
});

test('line budget: per source per second, a bounded table, suppressed lines counted', () => {
  let now = 10_000;
  const b = new LineBudget(2, 2, () => now);
  assert.deepEqual([b.take('a'), b.take('a'), b.take('a')], [true, true, false]);
  assert.equal(b.take('b'), true);
  // The table is full (a, b): new sources share one budget.
  assert.deepEqual([b.take('c'), b.take('d'), b.take('e')], [true, true, false]);
  assert.equal(b.suppressed, 2);
  now += 1000;
  assert.deepEqual([b.take('a'), b.take('e')], [true, true]);
  assert.equal(b.suppressed, 2);
});

test('suppressed session lines reach /metrics, per process', async (t) => {
  const hub = createLogHub({ destination: sink().stream as never, perSourceRate: 1 });
  while (hub.perSource.suppressed === 0) hub.perSource.take('198.51.100.7'); // one over the budget of 1 per second
  const metrics = createMetrics({ version: '0', instanceId: 'test', log: hub.get('metrics'), linesRateLimited: () => hub.perSource.suppressed });
  t.after(() => metrics.shutdown());
  const relayed = { toPeer: { packets: 0, bytes: 0 }, toClient: { packets: 0, bytes: 0 } };
  metrics.onRelayStats({ allocations: 0, permissions: 0, channels: 0, relayed, responses: {}, dropped: {}, logs: { rateLimited: 5 } });
  const server = createServer((req, res) => metrics.prometheus(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const text = await (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`)).text();
  const value = (p: string) => Number(new RegExp(`^turnpike_log_rate_limited_total\\{process="${p}"[^}]*\\} (\\d+)`, 'm').exec(text)?.[1]);
  assert.equal(value('relay'), 5);
  assert.equal(value('sidecar'), 1);
});
