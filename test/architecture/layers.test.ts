// The layering of src/, as ARCHITECTURE.md states it, checked on every run:
// each top-level folder imports only from the folders below it, the relay
// never loads a telemetry SDK or native code, and no module imports itself
// back through a cycle. Type-only imports count: a type is vocabulary too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const root = resolve(new URL('../../src', import.meta.url).pathname);

/** Folder -> the folders it may import from (besides itself). Bottom first. */
export const LAYERS: Readonly<Record<string, readonly string[]>> = {
  shared: [],
  config: ['shared'],
  net: ['shared'],
  link: ['shared'],
  telemetry: ['shared', 'config'],
  relay: ['shared', 'config', 'net', 'link'],
  sidecar: ['shared', 'config', 'net', 'link', 'telemetry'],
  cmd: ['shared', 'config', 'net', 'link', 'telemetry', 'relay', 'sidecar'],
};

/** Inside the relay, the sans-IO core stays below its transports. */
const RELAY_PARTS: Readonly<Record<string, readonly string[]>> = {
  stun: [],
  policy: [],
  auth: ['stun'],
  server: ['stun', 'auth', 'policy'],
  telemetry: [],
  transport: ['server', 'telemetry', 'stun'],
};

/** Packages a folder must never load (the relay: no SDKs, no native code). */
const FORBIDDEN_PACKAGES: Readonly<Record<string, RegExp>> = {
  relay: /^(@sentry\/|posthog-node|@opentelemetry\/|koffi)/,
  shared: /^(?!node:|pino$|pino-pretty$)/,
  link: /^(?!node:|pino$|zod$)/,
  config: /^(?!node:|zod$)/,
};

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : n.endsWith('.ts') ? [p] : [];
  });
}

const SPECIFIER = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*\(?\s*['"]([^'"]+)['"]/gm;

export function importsOf(file: string): { relative: string[]; packages: string[] } {
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const rel: string[] = [];
  const pkgs: string[] = [];
  for (const m of text.matchAll(SPECIFIER)) {
    const spec = m[1] ?? m[2]!;
    if (spec.startsWith('.')) rel.push(resolve(dirname(file), spec));
    else pkgs.push(spec);
  }
  return { relative: rel, packages: pkgs };
}

const partsOf = (file: string) => relative(root, file).split(sep);
const files = sources(root);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

test('every file of src/ sits in a known layer folder', () => {
  const stray = files.filter((f) => !(partsOf(f)[0]! in LAYERS) || partsOf(f).length < 2);
  assert.deepEqual(stray.map((f) => relative(root, f)), []);
});

type Graph = ReadonlyMap<string, { relative: readonly string[] }>;

function upwardImports(g: Graph): string[] {
  const upward: string[] = [];
  for (const [file, { relative: deps }] of g) {
    const from = partsOf(file)[0]!;
    for (const dep of deps) {
      const to = partsOf(dep)[0]!;
      if (to !== from && !LAYERS[from]?.includes(to)) upward.push(`${relative(root, file)} -> ${relative(root, dep)} (${from} may import ${LAYERS[from]?.join(', ') || 'nothing'})`);
    }
  }
  return upward;
}

test('folders import only from the layers below them', () => {
  assert.deepEqual(upwardImports(graph), []);
});

test('the rule fails on an upward import', () => {
  // What must never pass: the relay loading the telemetry agent, the bottom
  // layer reaching the relay.
  const fake: Graph = new Map([
    [join(root, 'relay', 'x.ts'), { relative: [join(root, 'telemetry', 'index.ts'), join(root, 'shared', 'ip.ts')] }],
    [join(root, 'shared', 'y.ts'), { relative: [join(root, 'relay', 'server', 'types.ts')] }],
  ]);
  assert.equal(upwardImports(fake).length, 2);
});

test('inside the relay, the sans-IO core does not reach its transports', () => {
  const upward: string[] = [];
  for (const [file, { relative: deps }] of graph) {
    const [top, from] = partsOf(file);
    if (top !== 'relay' || !(from! in RELAY_PARTS)) continue;
    for (const dep of deps) {
      const [dtop, to] = partsOf(dep);
      if (dtop !== 'relay' || to === from) continue;
      if (!(to! in RELAY_PARTS) || !RELAY_PARTS[from!]!.includes(to!)) upward.push(`${relative(root, file)} -> ${relative(root, dep)}`);
    }
  }
  assert.deepEqual(upward, []);
});

test('no layer loads a package it must not (no SDK or native code in the relay)', () => {
  const bad: string[] = [];
  for (const [file, { packages }] of graph) {
    const rule = FORBIDDEN_PACKAGES[partsOf(file)[0]!];
    for (const p of packages) if (rule?.test(p)) bad.push(`${relative(root, file)} imports ${p}`);
  }
  assert.deepEqual(bad, []);
});

test('no import cycle between files', () => {
  const known = new Set(files);
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(root, p)).join(' -> '));
      return;
    }
    state.set(f, 'open');
    for (const d of graph.get(f)!.relative) if (known.has(d)) visit(d, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(cycles, []);
});
