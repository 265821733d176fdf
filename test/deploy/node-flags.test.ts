// The pair's Node flags (src/cmd/node-flags.ts) are on every command line
// that starts one of its processes outside the launcher's own spawning: the
// launcher itself (`npm start`, the image's CMD), the systemd units'
// ExecStart and the Kubernetes containers, before the script (after it they
// would be the script's arguments, and the entry point's parser would refuse
// them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHILD_NODE_FLAGS, SIDECAR_NODE_FLAGS, withNodeFlags } from '../../src/cmd/node-flags.ts';
import { entryPoint, loadManifests, templateOf } from './manifests.ts';
import { one, parseUnit, splitWords } from './systemd-unit.ts';

const root = new URL('../../', import.meta.url).pathname;

/** The words of a command line between the node binary and the entry point's script. */
function nodeFlags(line: readonly string[]): string[] {
  const i = line.findIndex((a) => /^dist\/src\/cmd\/[\w-]+\.js$/.test(a));
  assert.ok(i > 0, `no entry point script in ${line.join(' ')}`);
  return line.slice(1, i);
}

test('npm start and the image start the launcher with them', () => {
  const start = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start!;
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(readFileSync(join(root, 'deploy/Dockerfile'), 'utf8'))![1]!) as string[];
  for (const [what, line] of [['npm start', splitWords(start)], ['Dockerfile CMD', cmd]] as const) {
    const flags = nodeFlags(line);
    for (const f of CHILD_NODE_FLAGS) assert.ok(flags.includes(f), `${what} lacks ${f}`);
  }
});

test('the systemd units start node with the pair\'s flags', () => {
  for (const name of ['turnpike-sidecar.service', 'turnpike-relay.service']) {
    const unit = parseUnit(readFileSync(join(root, 'deploy/systemd', name), 'utf8'));
    const flags = nodeFlags(splitWords(one(unit, 'Service.ExecStart')));
    for (const f of CHILD_NODE_FLAGS) assert.ok(flags.includes(f), `${name}: ExecStart lacks ${f}`);
    for (const f of SIDECAR_NODE_FLAGS) assert.equal(flags.includes(f), name === 'turnpike-sidecar.service', `${name}: ${f} is the sidecar's alone`);
  }
});

test('the Kubernetes containers of both halves start node with them', () => {
  const seen = new Set<string>();
  for (const m of loadManifests()) {
    for (const c of templateOf(m)?.spec.containers ?? []) {
      const entry = entryPoint(c);
      if (entry !== 'sidecar' && entry !== 'relay') continue;
      seen.add(entry);
      const flags = nodeFlags([...(c.command ?? []), ...(c.args ?? [])]);
      for (const f of CHILD_NODE_FLAGS) assert.ok(flags.includes(f), `${m.file} ${c.name}: command lacks ${f}`);
      for (const f of SIDECAR_NODE_FLAGS) assert.equal(flags.includes(f), entry === 'sidecar', `${m.file} ${c.name}: ${f} is the sidecar's alone`);
    }
  }
  assert.deepEqual([...seen].sort(), ['relay', 'sidecar']);
});

test('an operator\'s own value of a flag wins over the pair\'s', () => {
  assert.deepEqual(withNodeFlags(['--max-semi-space-size=4', '--no-memory-reducer'], ['--no-memory-reducer', '--max-semi-space-size=1']), ['--max-semi-space-size=4', '--no-memory-reducer']);
  assert.deepEqual(withNodeFlags([], SIDECAR_NODE_FLAGS), [...SIDECAR_NODE_FLAGS]);
});
