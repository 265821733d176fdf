// `npm run fuzz`: drives generated and mutated inputs through every parser
// that sees untrusted bytes, one target after another, and prints one row per
// target. Exits non-zero on any exception or invariant violation (and, under
// CI=true, on a target that could not run).
//   npm run fuzz -- [--inputs N] [--targets stun,server,link,xdp] [--seed S] [--replay I]
// --seed pins the master seed (printed either way); --replay runs input I of
// one target alone and prints it, as a finding's replay line says.
import { parseArgs } from 'node:util';
import { describeFindings, failed, runTarget, table, type TargetResult } from './engine/runner.ts';
import { TARGETS } from './targets/index.ts';

const { values } = parseArgs({
  options: {
    inputs: { type: 'string', default: '1000000' },
    targets: { type: 'string', default: TARGETS.map((t) => t.name).join(',') },
    seed: { type: 'string' },
    replay: { type: 'string' },
  },
});

const inputs = Number(values.inputs);
const seed = values.seed !== undefined ? Number(values.seed) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const names = values.targets.split(',').map((s) => s.trim()).filter(Boolean);
const unknown = names.filter((n) => !TARGETS.some((t) => t.name === n));
if (!Number.isInteger(inputs) || inputs < 1 || unknown.length > 0 || (values.replay !== undefined && names.length !== 1)) {
  console.error(`usage: npm run fuzz -- [--inputs N] [--targets ${TARGETS.map((t) => t.name).join(',')}] [--seed S] [--replay I (one target)]${unknown.length ? `\nunknown target(s): ${unknown.join(', ')}` : ''}`);
  process.exit(2);
}

const gc = typeof (globalThis as { gc?: unknown }).gc === 'function';
console.log(`fuzz: master seed ${seed} (--seed ${seed} reproduces), ${inputs.toLocaleString('en-US')} inputs per target, targets ${names.join(', ')}${gc ? '' : ' (no --expose-gc: heap figures include garbage)'}`);
const results: TargetResult[] = [];
for (const name of names) {
  const target = TARGETS.find((t) => t.name === name)!;
  process.stdout.write(`${name}: `);
  const r = runTarget(target, {
    inputs,
    seed,
    ...(values.replay !== undefined ? { replay: Number(values.replay) } : {}),
    progress: (done) => process.stdout.write(`${Math.round(done / 1000)}k `),
  });
  results.push(r);
  console.log(r.skipped !== undefined ? `skipped (${r.skipped})` : `done in ${r.seconds.toFixed(1)} s`);
  for (const line of r.summary) console.log(`  ${line}`);
  const found = describeFindings(r, seed);
  if (found) console.log(`\n${found}\n`);
}
console.log(`\n${table(results)}\n`);
const ci = process.env.CI === 'true' || process.env.CI === '1';
const skipped = results.filter((r) => r.skipped !== undefined);
if (ci && skipped.length > 0) console.log(`CI=true: skipped target(s) ${skipped.map((r) => r.target).join(', ')} count as failures`);
process.exit(failed(results) || (ci && skipped.length > 0) ? 1 : 0);
