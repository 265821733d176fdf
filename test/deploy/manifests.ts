// The Kubernetes manifests under deploy/kubernetes, read as the API server
// would get them, and the checks test/deploy/manifests.test.ts runs on them:
//   schema   each document against its kind's schema from the official
//            Kubernetes OpenAPI document: the validators kubernetes-models
//            ships (ajv, compiled from it) for types, enums and required
//            fields, and its TypeScript interfaces (generated from the same
//            document) through tsc for unknown fields, which those validators
//            let through but `kubectl apply` (strict field validation) refuses;
//   rules    what makes the pair work and hold its promises there (rules()).
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../interop/harness.ts';

export const MANIFEST_DIR = join(repoRoot, 'deploy/kubernetes');

/** One parsed YAML document and where it came from. */
export interface Manifest {
  readonly file: string;
  readonly index: number;
  readonly doc: K8sObject;
}

/** The parts of Kubernetes objects the rules read (the schema checks the rest). */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  data?: Record<string, string>;
  spec?: any;
  [k: string]: unknown;
}

export const describe = (m: Manifest) => `${m.file}#${m.index} ${m.doc.kind}/${m.doc.metadata?.name}`;

/** Every document of every .yaml file (what `kubectl apply -f deploy/kubernetes/` sends); YAML errors and warnings throw. */
export function loadManifests(dir = MANIFEST_DIR): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8'), { prettyErrors: true, uniqueKeys: true });
    if (!Array.isArray(docs)) throw new Error(`${file}: not a YAML stream`);
    docs.forEach((d, index) => {
      const problems = [...d.errors, ...d.warnings];
      if (problems.length > 0) throw new Error(`${file}#${index}: ${problems.map((p) => p.message).join('; ')}`);
      const doc = d.toJS() as K8sObject | null;
      if (doc !== null) out.push({ file, index, doc });
    });
  }
  return out;
}

/** apps/v1 DaemonSet -> kubernetes-models/apps/v1/DaemonSet (core objects have no group). */
export function modelPath(doc: Pick<K8sObject, 'apiVersion' | 'kind'>): string {
  if (!/^([a-z0-9.-]+\/)?v\d+((alpha|beta)\d+)?$/.test(doc.apiVersion ?? '') || !/^[A-Z]\w+$/.test(doc.kind ?? '')) {
    throw new Error(`not an apiVersion/kind pair: ${doc.apiVersion} ${doc.kind}`);
  }
  return `kubernetes-models/${doc.apiVersion}/${doc.kind}`;
}

/** Schema errors of one document by its kind's compiled validator ([] when valid). */
export async function schemaErrors(doc: K8sObject): Promise<string[]> {
  let model: { new (data: unknown): { validate(): void } };
  try {
    model = ((await import(modelPath(doc))) as Record<string, typeof model>)[doc.kind]!;
  } catch (e) {
    return [`no schema for ${doc.apiVersion} ${doc.kind}: ${(e as Error).message}`];
  }
  try {
    new model(doc).validate();
    return [];
  } catch (e) {
    const errors = (e as { errors?: { instancePath: string; message?: string; params?: unknown }[] }).errors;
    return errors ? errors.map((x) => `${x.instancePath || '/'} ${x.message} ${JSON.stringify(x.params)}`) : [(e as Error).message];
  }
}

/**
 * Unknown or misplaced fields in any of `docs`, by tsc's excess property
 * check against the kind's generated interface (I<Kind>); keyed by document.
 */
export async function unknownFieldErrors(docs: readonly { name: string; doc: K8sObject }[]): Promise<Map<string, string[]>> {
  const dir = mkdtempSync(join(tmpdir(), 'tpmanifests-'));
  try {
    const files = docs.map(({ name, doc }, i) => {
      const file = join(dir, `doc${i}.ts`);
      const module = join(repoRoot, 'node_modules', `${modelPath(doc)}.js`);
      writeFileSync(file, `import type { I${doc.kind} } from ${JSON.stringify(module)};\nexport const doc: I${doc.kind} = ${JSON.stringify(doc, null, 2)};\n`);
      return { file, name };
    });
    const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
    const args = ['--ignoreConfig', '--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', '--pretty', 'false', ...files.map((f) => f.file)];
    const out = await promisify(execFile)(process.execPath, [tsc, ...args], { cwd: repoRoot, maxBuffer: 16 << 20 }).then(
      (r) => r.stdout,
      (e: { stdout?: string; stderr?: string; code?: number }) => {
        if (!e.stdout) throw new Error(`tsc failed: ${e.stderr}`);
        return e.stdout;
      },
    );
    const byDoc = new Map<string, string[]>();
    for (const line of out.split('\n').filter((l) => l.trim())) {
      // tsc names the file relative to its working directory: `../../tmp/tpmanifests-x/doc3.ts(12,5): error ...`
      const m = /\bdoc(\d+)\.ts(\(\d+,\d+\).*)$/.exec(line);
      const key = m ? files[Number(m[1])]!.name : '(tsc)';
      byDoc.set(key, [...(byDoc.get(key) ?? []), m ? m[2]! : line]);
    }
    return byDoc;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- the pods of the pair ----------------------------------------------------

export type Container = {
  name: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: any }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  securityContext?: any;
  resources?: any;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  livenessProbe?: any;
  readinessProbe?: any;
  startupProbe?: any;
};

export interface PodTemplate {
  metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    hostNetwork?: boolean;
    nodeSelector?: Record<string, string>;
    securityContext?: any;
    automountServiceAccountToken?: boolean;
    serviceAccountName?: string;
    initContainers?: Container[];
    containers: Container[];
    volumes?: { name: string; hostPath?: { path: string }; [k: string]: unknown }[];
  };
}

/** The pod template of a workload (DaemonSet, Deployment, ...). */
export const templateOf = (m: Manifest): PodTemplate | undefined => (m.doc.spec?.template?.spec ? (m.doc.spec.template as PodTemplate) : undefined);

/** The entry point a container runs: `node dist/src/cmd/NAME.js ...` -> NAME. */
export function entryPoint(c: Container): string | undefined {
  const line = [...(c.command ?? []), ...(c.args ?? [])];
  const script = line.find((a) => /^dist\/src\/cmd\/[\w-]+\.js$/.test(a));
  return script?.slice('dist/src/cmd/'.length, -'.js'.length);
}

/** The arguments after the entry point's script (configuration flags). */
export function entryArgs(c: Container): string[] {
  const line = [...(c.command ?? []), ...(c.args ?? [])];
  const i = line.findIndex((a) => /^dist\/src\/cmd\//.test(a));
  return i < 0 ? [] : line.slice(i + 1);
}

/** Values the downward API would give, for the effective environment. */
export const DOWNWARD_SAMPLE: Readonly<Record<string, string>> = {
  'status.podIP': '10.0.0.5',
  'status.hostIP': '10.0.0.5',
  'spec.nodeName': 'node-a',
};

/**
 * A container's environment as the kubelet would build it: ConfigMaps of
 * envFrom first, then env in order, `$(NAME)` expanded from what is already
 * defined, downward API fields from DOWNWARD_SAMPLE, secrets as a placeholder.
 * Throws on a reference to something undefined (a ConfigMap, a variable).
 */
export function effectiveEnv(c: Container, configMaps: ReadonlyMap<string, Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) {
      const data = configMaps.get(from.configMapRef.name);
      if (!data) throw new Error(`${c.name}: envFrom ConfigMap ${from.configMapRef.name} is not in the manifests`);
      Object.assign(env, data);
    }
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = e.value.replace(/\$\(([A-Za-z_][\w]*)\)/g, (_m, ref: string) => {
        if (!(ref in env)) throw new Error(`${c.name}: ${e.name} refers to $(${ref}), which is not defined before it`);
        return env[ref]!;
      });
    } else if (e.valueFrom?.fieldRef) {
      const v = DOWNWARD_SAMPLE[e.valueFrom.fieldRef.fieldPath];
      if (v === undefined) throw new Error(`${c.name}: ${e.name} uses downward field ${e.valueFrom.fieldRef.fieldPath}, unknown to this test`);
      env[e.name] = v;
    } else if (e.valueFrom?.secretKeyRef) {
      env[e.name] = 'secret-placeholder-0123456789abcdef';
    }
  }
  return env;
}
