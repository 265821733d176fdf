// The Kubernetes manifests (deploy/kubernetes): every document is valid for
// its kind's API schema, with no unknown field; and the pair works there and
// keeps its promises: the probes and Prometheus reach the admin server where
// the configuration makes it listen, both halves' configuration loads, every
// variable named is one turnpike reads, the relay has no host network, no
// egress, no token and no capability, every container runs restricted, and
// the commands run files the image has.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENV_NAMES, FLAG_ENV_PREFIX } from '../../src/config/env.ts';
import { loadConfig } from '../../src/config/load.ts';
import { isWildcard } from '../../src/shared/endpoint.ts';
import { repoRoot } from '../interop/harness.ts';
import {
  DOWNWARD_SAMPLE,
  describe,
  effectiveEnv,
  entryArgs,
  entryPoint,
  loadManifests,
  schemaErrors,
  templateOf,
  unknownFieldErrors,
  type Container,
  type K8sObject,
  type PodTemplate,
} from './manifests.ts';

const manifests = loadManifests();
const byKind = (kind: string) => manifests.filter((m) => m.doc.kind === kind);
const workloads = manifests.filter((m) => templateOf(m)).map((m) => ({ m, pod: templateOf(m)! }));
const configMaps = new Map(byKind('ConfigMap').map((m) => [m.doc.metadata.name, m.doc.data ?? {}]));
const component = (name: string) => {
  const w = workloads.find(({ pod }) => pod.metadata.labels?.['app.kubernetes.io/component'] === name);
  assert.ok(w, `a workload whose pods are app.kubernetes.io/component=${name}`);
  return w;
};
const turnpikeContainers = (pod: PodTemplate) => pod.spec.containers.filter((c) => entryPoint(c) !== undefined);
const allContainers = (pod: PodTemplate) => [...(pod.spec.initContainers ?? []), ...pod.spec.containers];

/** Every variable name turnpike reads: the schema's (ENV_NAMES) and the flag override family. */
const KNOWN_ENV = new Set(Object.values(ENV_NAMES).flat());
const isTurnpikeName = (name: string) => name.startsWith('TURNPIKE_') || name.startsWith('OTEL_');
const knownName = (name: string) => KNOWN_ENV.has(name) || name.startsWith(FLAG_ENV_PREFIX);

/** What node-addresses.mjs writes, for loading the configuration as the pods do. */
const NODE_SETTINGS = { publicIpv4: '203.0.113.7', interface: 'eth0' };

/** A container's configuration, loaded as its entry point loads it (argv after the script, its environment). */
function configOf(c: Container, dir: string) {
  const argv = entryArgs(c).map((a) => (a.endsWith('/node.json') ? join(dir, 'node.json') : a));
  return loadConfig({ argv, env: effectiveEnv(c, configMaps), flags: c.name === 'relay' ? { transport: { type: 'string', field: 'relayTransport' } } : {} }).config;
}

function withNodeSettings<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'tpnodejson-'));
  try {
    writeFileSync(join(dir, 'node.json'), JSON.stringify(NODE_SETTINGS));
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Problems with one container's probes: each HTTP probe must reach the admin
 * server as the configuration binds it. The kubelet probes the pod IP unless
 * a host is given; the admin server answers there only if it listens on a
 * wildcard or on exactly that address.
 */
function probeProblems(c: Container, admin: { host: string; port: number }): string[] {
  const problems: string[] = [];
  for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const) {
    const get = c[kind]?.httpGet as { host?: string; port: number | string; path: string } | undefined;
    if (!get) continue;
    const port = typeof get.port === 'number' ? get.port : c.ports?.find((p) => p.name === get.port)?.containerPort;
    if (port !== admin.port) problems.push(`${c.name} ${kind}: port ${get.port} is not the admin port ${admin.port}`);
    const host = get.host ?? DOWNWARD_SAMPLE['status.podIP'];
    if (!isWildcard(admin.host) && admin.host !== host) problems.push(`${c.name} ${kind}: probes ${host} but the admin server listens on ${admin.host}`);
  }
  return problems;
}

test('the manifests: the Namespace first, then everything the pair needs, each in the namespace', () => {
  assert.equal(manifests[0]?.doc.kind, 'Namespace', 'kubectl apply -f applies files in name order: the Namespace must come first');
  const ns = manifests[0]!.doc.metadata.name;
  for (const kind of ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'Service', 'NetworkPolicy']) {
    assert.ok(byKind(kind).length > 0, `a ${kind}`);
  }
  for (const m of manifests) {
    if (['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(m.doc.kind)) continue;
    assert.equal(m.doc.metadata.namespace, ns, `${describe(m)} in namespace ${ns}`);
  }
});

test('every document is valid for its kind in the Kubernetes API schema (types, enums, required fields)', async () => {
  for (const m of manifests) assert.deepEqual(await schemaErrors(m.doc), [], describe(m));
});

test('no document has a field its kind does not know; the checks catch a bad type and an unknown field', async () => {
  const bad = structuredClone(component('relay').m.doc) as K8sObject;
  bad.spec.template.spec.containers[0].securityContext.runAsNonRot = true;
  const badType = structuredClone(bad);
  badType.spec.template.spec.containers[0].ports = [{ containerPort: 'admin' }];
  const errors = await unknownFieldErrors([...manifests.map((m) => ({ name: describe(m), doc: m.doc })), { name: 'bad', doc: bad }]);
  const { bad: badErrors, ...rest } = Object.fromEntries(errors);
  assert.deepEqual(rest, {}, 'unknown fields');
  assert.match(String(badErrors), /'"runAsNonRot"' does not exist in type 'ISecurityContext'/);
  assert.ok((await schemaErrors(badType)).some((e) => /containerPort must be integer/.test(e)));
});

test('probes and Prometheus reach the admin server where the configuration binds it; the loopback default would not', () => {
  withNodeSettings((dir) => {
    const { m, pod } = component('sidecar');
    const sidecar = pod.spec.containers.find((c) => entryPoint(c) === 'sidecar')!;
    const admin = configOf(sidecar, dir).admin;
    assert.deepEqual(admin, { host: DOWNWARD_SAMPLE['status.podIP'], port: 9469 }, 'admin on the pod IP (the node address on the host network)');
    assert.ok(sidecar.readinessProbe?.httpGet && sidecar.livenessProbe?.httpGet, 'readiness and liveness probes');
    assert.equal(sidecar.readinessProbe.httpGet.path, '/readyz');
    assert.equal(sidecar.livenessProbe.httpGet.path, '/healthz');
    assert.deepEqual(probeProblems(sidecar, admin), [], describe(m));
    // The manifest before this change: admin on loopback, probes to the pod IP.
    assert.deepEqual(probeProblems(sidecar, { host: '127.0.0.1', port: 9469 }).length, 3, 'the loopback admin server is unreachable for the probes');

    const a = pod.metadata.annotations ?? {};
    assert.equal(a['prometheus.io/scrape'], 'true');
    assert.equal(Number(a['prometheus.io/port']), admin.port);
    assert.equal(a['prometheus.io/path'], '/metrics');
    const service = byKind('Service').find((s) => Object.entries(s.doc.spec.selector).every(([k, v]) => pod.metadata.labels?.[k] === v));
    assert.ok(service, 'a Service selecting the sidecar pods');
    const target = service.doc.spec.ports[0].targetPort as string | number;
    assert.equal(typeof target === 'number' ? target : sidecar.ports?.find((p) => p.name === target)?.containerPort, admin.port);
  });
});

test('both halves load their configuration as the pods give it, and agree on ports, socket and credentials', () => {
  withNodeSettings((dir) => {
    const sidecar = turnpikeContainers(component('sidecar').pod)[0]!;
    const relay = turnpikeContainers(component('relay').pod)[0]!;
    assert.equal(entryPoint(sidecar), 'sidecar');
    assert.equal(entryPoint(relay), 'relay');
    const s = configOf(sidecar, dir);
    const r = configOf(relay, dir);
    assert.equal(r.relayTransport, 'sidecar');
    assert.equal(s.listenPort, r.listenPort);
    assert.deepEqual(s.portRange, r.portRange);
    assert.equal(s.socket, r.socket);
    assert.equal(s.publicIpv4, NODE_SETTINGS.publicIpv4, 'the sidecar loads the node settings (and names them to the relay)');
    assert.equal(s.interface, NODE_SETTINGS.interface);
    assert.equal(s.restSecret, r.restSecret, 'the same credentials');
  });
});

test('every variable a turnpike container or the ConfigMap names is one turnpike reads', () => {
  for (const [name, data] of configMaps) {
    for (const key of Object.keys(data)) assert.ok(knownName(key), `ConfigMap ${name}: ${key} is not a turnpike variable (src/config/env.ts)`);
  }
  for (const { m, pod } of workloads) {
    for (const c of turnpikeContainers(pod)) {
      for (const e of c.env ?? []) {
        if (isTurnpikeName(e.name)) assert.ok(knownName(e.name), `${describe(m)} ${c.name}: ${e.name} is not a turnpike variable (src/config/env.ts)`);
      }
    }
  }
});

test('the relay: its own pod off the host network, no egress, no token, no capability, not root', () => {
  const { m, pod } = component('relay');
  assert.notEqual(pod.spec.hostNetwork, true, `${describe(m)} must not use the host network`);
  assert.equal(pod.spec.automountServiceAccountToken, false, 'no service account token');
  assert.equal(pod.spec.securityContext?.runAsNonRoot, true);
  assert.ok(pod.spec.securityContext?.runAsUser > 0);
  for (const c of allContainers(pod)) assert.deepEqual(c.securityContext?.capabilities?.add ?? [], [], `${c.name} adds no capability`);
  const labels = pod.metadata.labels ?? {};
  const isolating = byKind('NetworkPolicy').filter((p) => Object.entries(p.doc.spec.podSelector.matchLabels ?? {}).every(([k, v]) => labels[k] === v));
  assert.ok(isolating.length > 0, 'a NetworkPolicy selects the relay pods');
  for (const p of isolating) {
    assert.deepEqual([...p.doc.spec.policyTypes].sort(), ['Egress', 'Ingress'], `${describe(p)} covers both directions`);
    assert.equal(p.doc.spec.egress, undefined, `${describe(p)} allows no egress`);
    assert.equal(p.doc.spec.ingress, undefined, `${describe(p)} allows no ingress`);
  }
  // Nothing else lets traffic to the relay pods.
  for (const p of byKind('NetworkPolicy').filter((x) => !isolating.includes(x))) {
    assert.ok(!Object.entries(p.doc.spec.podSelector.matchLabels ?? {}).every(([k, v]) => labels[k] === v), describe(p));
  }
});

test('the sidecar: host network, only the capabilities it uses, the token only in the init container that reads the Node', () => {
  const { pod } = component('sidecar');
  assert.equal(pod.spec.hostNetwork, true);
  assert.equal(pod.spec.automountServiceAccountToken, false);
  const sidecar = turnpikeContainers(pod)[0]!;
  assert.deepEqual([...sidecar.securityContext.capabilities.add].sort(), ['BPF', 'CHOWN', 'NET_ADMIN', 'PERFMON', 'SYS_RESOURCE']);
  const tokenVolumes = (pod.spec.volumes ?? []).filter((v) => JSON.stringify(v).includes('serviceAccountToken')).map((v) => v.name);
  for (const c of allContainers(pod)) {
    const mountsToken = (c.volumeMounts ?? []).some((v) => tokenVolumes.includes(v.name));
    assert.equal(mountsToken, c.name === 'node-addresses', `${c.name} ${mountsToken ? 'mounts' : 'does not mount'} the token`);
  }
  const sa = pod.spec.serviceAccountName;
  assert.ok(byKind('ServiceAccount').some((m) => m.doc.metadata.name === sa));
  const binding = byKind('ClusterRoleBinding').find((b) => (b.doc.subjects as { name: string }[]).some((s) => s.name === sa))!;
  const role = byKind('ClusterRole').find((r) => r.doc.metadata.name === (binding.doc.roleRef as { name: string }).name)!;
  assert.deepEqual(role.doc.rules, [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }], 'get nodes and nothing else');
});

test('every container runs restricted: no escalation, read-only root, ALL dropped, RuntimeDefault seccomp, resources set', () => {
  for (const { m, pod } of workloads) {
    for (const c of allContainers(pod)) {
      const sc = c.securityContext ?? {};
      const where = `${describe(m)} ${c.name}`;
      assert.equal(sc.privileged ?? false, false, `${where} not privileged`);
      assert.equal(sc.allowPrivilegeEscalation, false, `${where} allowPrivilegeEscalation: false`);
      assert.equal(sc.readOnlyRootFilesystem, true, `${where} readOnlyRootFilesystem`);
      assert.ok(sc.capabilities?.drop?.includes('ALL'), `${where} drops ALL capabilities`);
      assert.equal((sc.seccompProfile ?? pod.spec.securityContext?.seccompProfile)?.type, 'RuntimeDefault', `${where} seccomp RuntimeDefault`);
      assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory && c.resources?.limits?.memory, `${where} requests and a memory limit`);
    }
  }
});

test('the pair on one node: same nodes, one socket directory, the relay in the socket group, node.json where the sidecar loads it', () => {
  const s = component('sidecar').pod;
  const r = component('relay').pod;
  assert.deepEqual(s.spec.nodeSelector, r.spec.nodeSelector, 'both DaemonSets on the same nodes');
  const sc = turnpikeContainers(s)[0]!;
  const rc = turnpikeContainers(r)[0]!;
  const socket = effectiveEnv(sc, configMaps).TURNPIKE_SOCKET!;
  assert.equal(effectiveEnv(rc, configMaps).TURNPIKE_SOCKET, socket);
  const hostDir = (pod: PodTemplate, c: Container, path: string) => {
    const mount = (c.volumeMounts ?? []).find((v) => path.startsWith(v.mountPath + '/'));
    return mount && (pod.spec.volumes ?? []).find((v) => v.name === mount.name)?.hostPath?.path;
  };
  const dir = hostDir(s, sc, socket);
  assert.ok(dir, 'the socket is in a hostPath directory of the sidecar');
  assert.equal(hostDir(r, rc, socket), dir, 'the relay mounts the same node directory');
  const nodeJson = entryArgs(sc)[entryArgs(sc).indexOf('--config') + 1]!;
  const writer = s.spec.initContainers?.find((c) => (c.command ?? []).includes(nodeJson));
  assert.ok(writer, 'an init container writes the node settings the sidecar loads');
  assert.equal(hostDir(s, writer, nodeJson), dir, 'into the shared directory');
  assert.equal(hostDir(s, sc, nodeJson), dir, 'which the sidecar mounts there too');
  assert.equal(String(r.spec.securityContext.runAsGroup), effectiveEnv(sc, configMaps).TURNPIKE_RELAY_GID, 'the relay runs in the group that owns the socket');
});

test('the commands run files the image has (deploy/Dockerfile)', () => {
  const dockerfile = readFileSync(join(repoRoot, 'deploy/Dockerfile'), 'utf8');
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
  const lines: string[][] = [cmd, ...workloads.flatMap(({ pod }) => allContainers(pod).map((c) => [...(c.command ?? []), ...(c.args ?? [])]))];
  for (const line of lines) {
    for (const arg of line) {
      const built = /^dist\/(src\/cmd\/[\w-]+)\.js$/.exec(arg);
      if (built) {
        assert.ok(existsSync(join(repoRoot, `${built[1]}.ts`)), `${arg}: no ${built[1]}.ts`);
        assert.match(dockerfile, /COPY --from=build \/app\/dist\/src \.\/dist\/src/, 'the image has dist/src');
      }
      if (/^deploy\/.*\.mjs$/.test(arg)) {
        assert.ok(existsSync(join(repoRoot, arg)), `${arg} exists`);
        assert.match(dockerfile, new RegExp(`^COPY ${arg} \\./${arg}$`, 'm'), `the image has ${arg}`);
      }
    }
  }
  assert.match(dockerfile, /useradd .*--uid 10001 .*turnpike-relay/, 'the image has the relay user the manifests run as');
});

