// The soak (issue 12) for two minutes, as CI runs it: `bench/soak.ts` drives
// allocation churn, ChannelData and Send traffic through the XDP pair while
// the relay and the sidecar are SIGKILLed alternately every 30 s, and exits
// non-zero when an invariant breaks (maps != relay state, a live allocation
// lost, loss outside the restart gaps, memory growth beyond its bound). Its
// summary table goes to the test's diagnostics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { hasCommand, requireCapability, requireRoot } from '../helpers/env.ts';
import { repoRoot } from './pair-harness.ts';

const MINUTES = 2;

test(`soak for ${MINUTES} minutes: churn, traffic and alternating relay/sidecar SIGKILLs keep every invariant`, { timeout: (MINUTES + 5) * 60_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tools = ['nsenter', 'curl', 'turnutils_peer'];
  if (!requireCapability(t, tools.every(hasCommand), `needs ${tools.join(', ')}`)) return;
  const proc = spawn(process.execPath, ['--import', 'tsx', 'bench/soak.ts', '--minutes', String(MINUTES), '--restart-every', '30'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  // One line each: a diagnostic with newlines is escaped into one unreadable line.
  for (const l of out.split('\n')) t.diagnostic(l);
  if (code !== 0) for (const l of err.slice(-6000).split('\n')) t.diagnostic(l);
  assert.equal(code, 0, `the soak found a violated invariant (exit ${code}):\n${out.split('\n').filter((l) => l.startsWith('FAIL') || l.startsWith('- ')).join('\n')}`);
  assert.match(out, /^PASS: /m);
  assert.match(out, /^\| 1 +\| [\d.]+ +\| relay /m, 'the relay was restarted');
  assert.match(out, /^\| 2 +\| [\d.]+ +\| sidecar /m, 'the sidecar was restarted');
});
