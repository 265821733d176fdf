// deploy/kubernetes/node-addresses.mjs, the sidecar pod's init container:
// the node's annotations win, then the addresses the cloud reports
// (ExternalIP: 1:1 NAT), then the internal ones; the interface is the one
// holding the node's internal address unless annotated; a bad annotation
// stops the pod with the reason. Run as the pod runs it, against a stand-in
// API server that checks the token and the path.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../interop/harness.ts';

const SCRIPT = join(repoRoot, 'deploy/kubernetes/node-addresses.mjs');

interface NodeAddressesModule {
  ANNOTATIONS: Record<'publicIpv4' | 'publicIpv6' | 'interface', string>;
  chooseSettings(node: unknown, hostIp: string | undefined, interfaces: Record<string, { address: string }[]>): { settings: Record<string, string>; sources: Record<string, string> };
}
const mod = (await import(SCRIPT)) as NodeAddressesModule;

const dir = mkdtempSync(join(tmpdir(), 'tpnodeaddr-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const node = (annotations: Record<string, string>, addresses: [string, string][]) => ({
  metadata: { name: 'node-a', annotations },
  status: { addresses: addresses.map(([type, address]) => ({ type, address })) },
});
const IFACES = { lo: [{ address: '127.0.0.1' }], ens5: [{ address: '10.0.0.5' }, { address: 'fd00::5' }] };

test('annotations win, then ExternalIP, then InternalIP, then status.hostIP; the interface holds the internal address', () => {
  const { chooseSettings, ANNOTATIONS } = mod;
  assert.deepEqual(chooseSettings(node({}, [['InternalIP', '10.0.0.5'], ['ExternalIP', '198.51.100.9'], ['Hostname', 'node-a']]), '10.0.0.5', IFACES), {
    settings: { publicIpv4: '198.51.100.9', interface: 'ens5' },
    sources: { publicIpv4: 'node ExternalIP', interface: 'the interface holding 10.0.0.5, 10.0.0.5' },
  });
  const annotated = chooseSettings(
    node({ [ANNOTATIONS.publicIpv4]: '203.0.113.7', [ANNOTATIONS.publicIpv6]: '2001:db8::7', [ANNOTATIONS.interface]: 'bond0' }, [['ExternalIP', '198.51.100.9']]),
    '10.0.0.5',
    IFACES,
  );
  assert.deepEqual(annotated.settings, { publicIpv4: '203.0.113.7', publicIpv6: '2001:db8::7', interface: 'bond0' });
  assert.equal(annotated.sources.publicIpv4, 'annotation turnpike/public-ipv4');
  // No ExternalIP (a private node): the internal addresses, a global IPv6 one included.
  assert.deepEqual(chooseSettings(node({}, [['InternalIP', '10.0.0.5'], ['InternalIP', 'fd00::5'], ['InternalIP', 'fe80::1']]), undefined, IFACES).settings, {
    publicIpv4: '10.0.0.5',
    publicIpv6: 'fd00::5',
    interface: 'ens5',
  });
  // The API gave no addresses: the downward API's status.hostIP.
  assert.deepEqual(chooseSettings(node({}, []), '10.0.0.5', IFACES), {
    settings: { publicIpv4: '10.0.0.5', interface: 'ens5' },
    sources: { publicIpv4: 'status.hostIP', interface: 'the interface holding 10.0.0.5' },
  });
  assert.throws(() => chooseSettings(node({ [ANNOTATIONS.publicIpv4]: '2001:db8::1' }, []), undefined, IFACES), /turnpike\/public-ipv4="2001:db8::1" is not an IPv4 address/);
  assert.throws(() => chooseSettings(node({ [ANNOTATIONS.publicIpv6]: 'fe80::1' }, []), undefined, IFACES), /is not a global IPv6 address/);
  assert.throws(() => chooseSettings(node({ [ANNOTATIONS.interface]: 'eth0 eth1' }, []), undefined, IFACES), /is not an interface name/);
});

/** A stand-in API server: GET /api/v1/nodes/<name> with the right token answers `nodes[name]`. */
async function apiServer(nodes: Record<string, unknown>, token: string) {
  const seen: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    seen.push(req);
    if (req.headers.authorization !== `Bearer ${token}`) return void res.writeHead(401).end('{"kind":"Status","code":401}');
    const name = /^\/api\/v1\/nodes\/([^/]+)$/.exec(req.url ?? '')?.[1];
    const found = name && nodes[decodeURIComponent(name)];
    if (!found) return void res.writeHead(403).end('{"kind":"Status","reason":"Forbidden"}');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(found));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const run = (args: string[], env: Record<string, string>) =>
  promisify(execFile)(process.execPath, [SCRIPT, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } }).then(
    (r) => ({ code: 0, out: r.stdout }),
    (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
  );

test('write: reads the Node with the pod token and writes node.json (0644, what --config loads)', async () => {
  const saDir = join(dir, 'sa');
  mkdirSync(saDir);
  writeFileSync(join(saDir, 'token'), 'tok-123\n');
  const api = await apiServer({ 'node-a': node({ 'turnpike/public-ipv4': '203.0.113.7' }, [['InternalIP', '127.0.0.1']]) }, 'tok-123');
  try {
    const file = join(dir, 'run', 'node.json');
    const env = { NODE_NAME: 'node-a', HOST_IP: '127.0.0.1', KUBE_API: api.url, SERVICEACCOUNT_DIR: saDir };
    const ok = await run(['write', file], env);
    assert.equal(ok.code, 0, ok.out);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { publicIpv4: '203.0.113.7', interface: 'lo' });
    assert.equal(statSync(file).mode & 0o777, 0o644);
    assert.equal(api.seen[0]?.url, '/api/v1/nodes/node-a');
    assert.match(ok.out, /"msg":"node settings written"/);

    // RBAC missing (403): the reason and where the permission comes from; exit 1, nothing written.
    const missing = join(dir, 'run', 'other.json');
    const denied = await run(['write', missing], { ...env, NODE_NAME: 'node-b' });
    assert.equal(denied.code, 1);
    assert.match(denied.out, /answered 403 \(the service account needs get on nodes: deploy\/kubernetes\/10-rbac\.yaml\)/);
    assert.equal(existsSync(missing), false);
    // A bad annotation stops the pod with the reason.
    await api.close();
    const api2 = await apiServer({ 'node-a': node({ 'turnpike/public-ipv4': 'not-an-ip' }, []) }, 'tok-123');
    const bad = await run(['write', missing], { ...env, KUBE_API: api2.url });
    assert.equal(bad.code, 1);
    assert.match(bad.out, /turnpike\/public-ipv4=\\"not-an-ip\\" is not an IPv4 address/);
    await api2.close();
    assert.equal((await run(['write', missing], {})).code, 2, 'NODE_NAME unset');
  } finally {
    await api.close().catch(() => {});
  }
});
