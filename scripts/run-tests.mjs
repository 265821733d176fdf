#!/usr/bin/env node
// Runs the suite with node's built-in test runner (TypeScript through tsx).
// Unit tests run in parallel; tests under test/integration and test/interop
// use network namespaces, the NIC and CPU-sensitive loss counts, so they run
// one file at a time. Ends with a plain "N passed, N failed, N skipped" line;
// under CI=true a skipped test counts as a failure (CI is root with every
// capability, so nothing there has a reason to skip).
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const only = process.argv.slice(2);

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out.sort();
}

const all = find(join(root, 'test')).filter((f) => only.length === 0 || only.some((o) => f.includes(o)));
const serial = all.filter((f) => /^test\/(integration|interop)\//.test(f));
const parallel = all.filter((f) => !serial.includes(f));

function run(files, concurrency) {
  return new Promise((resolve) => {
    if (files.length === 0) return resolve({ pass: 0, fail: 0, skip: 0, code: 0 });
    const args = ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=tap', ...files];
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let pass = 0, fail = 0, skip = 0, buf = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 1);
        let m;
        if ((m = /^# pass (\d+)/.exec(line))) pass += Number(m[1]);
        if ((m = /^# fail (\d+)/.exec(line))) fail += Number(m[1]);
        if ((m = /^# (?:skipped|todo) (\d+)/.exec(line))) skip += Number(m[1]);
      }
    });
    child.on('close', (code) => resolve({ pass, fail, skip, code: code ?? 1 }));
  });
}

const a = await run(parallel, 2);
const b = await run(serial, 1);
const pass = a.pass + b.pass, fail = a.fail + b.fail, skip = a.skip + b.skip;
const ci = process.env.CI === 'true' || process.env.CI === '1';
let failed = fail + ((a.code !== 0 || b.code !== 0) && fail === 0 ? 1 : 0);
if (ci && skip > 0) {
  console.log(`CI=true: ${skip} skipped test(s) count as failures (see the "# SKIP" lines above for the reasons)`);
  failed += skip;
}
console.log(`${pass} passed, ${failed} failed, ${skip} skipped`);
process.exit(failed > 0 ? 1 : 0);
