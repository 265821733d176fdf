#!/usr/bin/env node
// @ts-check
// The per-node settings of a turnpike pair on Kubernetes, as a configuration
// file the sidecar loads with --config (environment variables still win):
//   publicIpv4 / publicIpv6  the relayed addresses clients are told (the
//                            sidecar names them to the relay over the link)
//   interface                the NIC the XDP program attaches to
// A node behind cloud NAT does not see its public address on any interface,
// and the downward API gives a pod only the node's internal one, so this reads
// the Node object once at start (an init container of the sidecar, which has
// the host's network and a token that may only `get nodes`):
//   1. the node's annotations turnpike/public-ipv4, turnpike/public-ipv6 and
//      turnpike/interface, as an operator set them (kubectl annotate node ...);
//   2. else its ExternalIP addresses (what the cloud reports for 1:1 NAT);
//   3. else its InternalIP addresses (HOST_IP, the downward API's status.hostIP,
//      when the API gives none);
// and, without the annotation, the interface that holds the node's internal
// address (the init container sees the host's interfaces).
//
//   node-addresses.mjs write FILE   env NODE_NAME (spec.nodeName), HOST_IP (status.hostIP)
//
// Plain JavaScript with no dependencies: it runs from the image as it is.
// KUBE_API and SERVICEACCOUNT_DIR override where the API and the token are.
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const ANNOTATIONS = { publicIpv4: 'turnpike/public-ipv4', publicIpv6: 'turnpike/public-ipv6', interface: 'turnpike/interface' };

/** @typedef {{ type: string, address: string }} NodeAddress */
/** @typedef {{ metadata?: { annotations?: Record<string, string> }, status?: { addresses?: NodeAddress[] } }} Node */
/** @typedef {{ publicIpv4?: string, publicIpv6?: string, interface?: string }} NodeSettings */

class NodeAddressError extends Error {}

/** A global (not link-local) IPv6 address. */
const globalV6 = (/** @type {string} */ a) => isIP(a) === 6 && !/^fe[89ab]/i.test(a);

/**
 * The settings for `node`, and where each came from. `hostIp` is the
 * downward API's status.hostIP; `interfaces` os.networkInterfaces() of the host.
 * @param {Node} node
 * @param {string | undefined} hostIp
 * @param {ReturnType<typeof networkInterfaces>} interfaces
 * @returns {{ settings: NodeSettings, sources: Record<string, string> }}
 */
export function chooseSettings(node, hostIp, interfaces) {
  const annotations = node.metadata?.annotations ?? {};
  const addresses = node.status?.addresses ?? [];
  /** @type {NodeSettings} */
  const settings = {};
  /** @type {Record<string, string>} */
  const sources = {};
  for (const [field, family] of /** @type {const} */ ([['publicIpv4', 4], ['publicIpv6', 6]])) {
    const fits = family === 4 ? (/** @type {string} */ a) => isIP(a) === 4 : globalV6;
    const annotated = annotations[ANNOTATIONS[field]];
    if (annotated !== undefined) {
      if (!fits(annotated.trim())) throw new NodeAddressError(`annotation ${ANNOTATIONS[field]}=${JSON.stringify(annotated)} is not a${family === 6 ? ' global' : 'n'} IPv${family} address`);
      settings[field] = annotated.trim();
      sources[field] = `annotation ${ANNOTATIONS[field]}`;
      continue;
    }
    for (const type of ['ExternalIP', 'InternalIP']) {
      const found = addresses.find((a) => a.type === type && fits(a.address));
      if (found) {
        settings[field] = found.address;
        sources[field] = `node ${type}`;
        break;
      }
    }
    if (!settings[field] && hostIp && fits(hostIp)) {
      settings[field] = hostIp;
      sources[field] = 'status.hostIP';
    }
  }
  const annotatedIf = annotations[ANNOTATIONS.interface];
  if (annotatedIf !== undefined) {
    if (!/^[^\s/]{1,15}$/.test(annotatedIf)) throw new NodeAddressError(`annotation ${ANNOTATIONS.interface}=${JSON.stringify(annotatedIf)} is not an interface name`);
    settings.interface = annotatedIf;
    sources.interface = `annotation ${ANNOTATIONS.interface}`;
  } else {
    const internal = [hostIp, ...addresses.filter((a) => a.type === 'InternalIP').map((a) => a.address)].filter((a) => a);
    for (const [name, list] of Object.entries(interfaces)) {
      if ((list ?? []).some((a) => internal.includes(a.address))) {
        settings.interface = name;
        sources.interface = `the interface holding ${internal.join(', ')}`;
        break;
      }
    }
  }
  return { settings, sources };
}

/**
 * GET the Node named `name` with the pod's service account token.
 * @param {string} name
 * @param {NodeJS.ProcessEnv} env
 * @returns {Promise<Node>}
 */
export function readNode(name, env) {
  const saDir = env.SERVICEACCOUNT_DIR || '/var/run/secrets/kubernetes.io/serviceaccount';
  const base = env.KUBE_API || `https://${env.KUBERNETES_SERVICE_HOST}:${env.KUBERNETES_SERVICE_PORT || '443'}`;
  const url = new URL(`/api/v1/nodes/${encodeURIComponent(name)}`, base);
  const read = (/** @type {string} */ file) => (existsSync(join(saDir, file)) ? readFileSync(join(saDir, file), 'utf8').trim() : undefined);
  const token = read('token');
  const ca = read('ca.crt');
  /** @type {import('node:https').RequestOptions} */
  const options = { method: 'GET', timeout: 10_000, headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, ...(ca ? { ca } : {}) };
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) {
          const hint = res.statusCode === 403 ? ' (the service account needs get on nodes: deploy/kubernetes/10-rbac.yaml)' : '';
          return reject(new NodeAddressError(`GET ${url.pathname} answered ${res.statusCode}${hint}: ${body.slice(0, 300)}`));
        }
        try {
          resolve(JSON.parse(body));
        } catch {
          reject(new NodeAddressError(`GET ${url.pathname}: not JSON`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (e) => reject(new NodeAddressError(`GET ${url}: ${e.message}`)));
    req.end();
  });
}

/** Writes `value` as JSON to `file` in one rename (a reader never sees half of it). */
function writeJson(/** @type {string} */ file, /** @type {unknown} */ value) {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o644 });
  renameSync(tmp, file);
}

/**
 * @param {string[]} argv
 * @param {NodeJS.ProcessEnv} env
 * @returns {Promise<number>}
 */
export async function main(argv, env) {
  const [command, file] = argv;
  const say = (/** @type {Record<string, unknown>} */ fields, /** @type {string} */ msg) => process.stdout.write(JSON.stringify({ time: Date.now(), module: 'node-addresses', ...fields, msg }) + '\n');
  if (command === 'write' && file) {
    if (!env.NODE_NAME) {
      say({}, 'NODE_NAME is not set (the downward API field spec.nodeName)');
      return 2;
    }
    try {
      const node = await readNode(env.NODE_NAME, env);
      const { settings, sources } = chooseSettings(node, env.HOST_IP || undefined, networkInterfaces());
      writeJson(file, settings);
      say({ node: env.NODE_NAME, file, settings, sources }, 'node settings written');
      return 0;
    } catch (e) {
      if (!(e instanceof NodeAddressError)) throw e;
      say({ node: env.NODE_NAME, reason: e.message }, 'cannot settle the node settings');
      return 1;
    }
  }
  process.stderr.write('usage: node-addresses.mjs write FILE\n');
  return 2;
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) process.exitCode = await main(process.argv.slice(2), process.env);
