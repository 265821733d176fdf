import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyLogFilterText, createLogHub, filterAllows, formatLogFilter, parseLogFilter } from '../../src/shared/logger.ts';
import { StreamGate } from '../../src/telemetry/stream-gate.ts';
import { parseRelayLine } from '../../src/telemetry/relay-log.ts';
import { sink } from './sink.ts';

test('module-only filter text changes the named modules and keeps the rest', () => {
  const cur = parseLogFilter('debug,bpf=trace');
  assert.equal(formatLogFilter(applyLogFilterText(cur, 'link=warn')), 'debug,bpf=trace,link=warn');
  assert.equal(formatLogFilter(applyLogFilterText(cur, 'info,link=warn')), 'info,link=warn');
  assert.throws(() => applyLogFilterText(cur, 'link=loud'), /unknown level "loud"/);
});

test('filterAllows applies per-module levels', () => {
  const f = parseLogFilter('warn,bpf=debug');
  assert.equal(filterAllows(f, 'bpf', 'debug'), true);
  assert.equal(filterAllows(f, 'link', 'info'), false);
  assert.equal(filterAllows(f, undefined, 50), true);
});

test('writeLine and onChange on the hub', () => {
  const s = sink();
  const hub = createLogHub({ destination: s.stream as never, filter: 'info' });
  const seen: string[] = [];
  hub.onChange((f) => seen.push(formatLogFilter(f)));
  hub.setFilter(parseLogFilter('info,a=debug'));
  hub.writeLine('{"level":30,"module":"alloc","msg":"from relay"}');
  assert.deepEqual(seen, ['info,a=debug']);
  assert.equal(s.lines.at(-1)?.msg, 'from relay');
});

test('stream gate: off, filtered, and the rate bound', () => {
  let now = 0;
  const g = new StreamGate({ ratePerSecond: 10, burst: 5, now: () => now });
  assert.equal(g.check('a', 'info'), 'off');
  g.set(true, parseLogFilter('info,bpf=debug'));
  assert.equal(g.check('a', 'debug'), 'filtered');
  assert.equal(g.check('bpf', 'debug'), 'send');
  for (let i = 0; i < 4; i++) assert.equal(g.check('a', 'info'), 'send');
  assert.equal(g.check('a', 'info'), 'over-rate');
  now += 1000; // ten more tokens, capped at the burst
  let sent = 0;
  for (let i = 0; i < 20; i++) if (g.check('a', 'warn') === 'send') sent++;
  assert.equal(sent, 5);
  assert.equal(g.takeDropped(), 16);
  assert.equal(g.takeDropped(), 0);
});

test('relay lines parse without throwing, whatever they contain', () => {
  const e = parseRelayLine('{"level":50,"time":1,"pid":2,"module":"alloc","msg":"boom","err":{"type":"Error","message":"x","stack":"Error: x"},"n":1}');
  assert.deepEqual(
    { valid: e.valid, level: e.level, module: e.module, msg: e.msg, fields: e.fields, err: e.err },
    { valid: true, level: 'error', module: 'alloc', msg: 'boom', fields: { n: 1 }, err: { type: 'Error', message: 'x', stack: 'Error: x' } },
  );
  for (const bad of ['', 'not json', '[1,2]', 'null', '{"level":"loud","msg":7}', '\u0000\uffff']) {
    const r = parseRelayLine(bad);
    assert.ok(['warn', 'info'].includes(r.level));
  }
  assert.equal(parseRelayLine('nope').valid, false);
});
