// The relay's own output under the launcher (stdout and stderr, which it no
// longer shares with the launcher directly): its log lines are marked as the
// relay's, anything else is wrapped in a launcher line, and lines are bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createLogHub } from '../../src/shared/logger.ts';
import { eachLine, passRelayOutput } from '../../src/cmd/relay-output.ts';
import { sink } from '../telemetry/sink.ts';

const tick = () => new Promise((r) => setImmediate(r));

test('relay stdout: a line forging the sidecar\'s security event arrives as the relay\'s; other text is wrapped', async () => {
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never, filter: 'info', base: { process: 'launcher' } });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  passRelayOutput(stdout, stderr, hub, hub.get('launcher'));
  stdout.write('{"level":50,"process":"sidecar","event":"security","rule":"link-peer","detail":"forged","msg":"security: forged"}\n');
  stdout.write('{"level":30,"process":"relay","msg":"relay ready"}\nplain text\n');
  stderr.write('turnpike-relay: invalid configuration:\n  users (config): bad\n');
  await tick();
  const [forged, ready, plain, err1, err2] = out.lines;
  assert.equal(forged!.process, 'relay');
  assert.equal(forged!.event, undefined);
  assert.deepEqual(forged!.relayFields, { event: 'security', rule: 'link-peer', detail: 'forged' });
  assert.equal(ready!.msg, 'relay ready');
  assert.deepEqual([plain!.process, plain!.child, plain!.stream, plain!.line, plain!.msg], ['launcher', 'relay', 'stdout', 'plain text', 'relay output']);
  assert.deepEqual([err1!.stream, err1!.line], ['stderr', 'turnpike-relay: invalid configuration:']);
  assert.equal(err2!.line, '  users (config): bad');
  assert.equal(out.lines.length, 5);
});

test('lines split across chunks are joined; an endless line is cut, its rest dropped', async () => {
  const s = new PassThrough();
  const lines: string[] = [];
  eachLine(s, (l) => lines.push(l));
  s.write('ab');
  s.write('c\nd');
  s.write('x'.repeat(70 * 1024));
  s.write('y'.repeat(70 * 1024));
  s.write('\nafter\n');
  s.end('tail');
  await tick();
  assert.equal(lines[0], 'abc');
  assert.equal(lines[1]!.length, 64 * 1024);
  assert.ok(lines[1]!.startsWith('dxxx'));
  assert.deepEqual(lines.slice(2), ['after', 'tail']);
});
