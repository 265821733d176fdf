// turnpike contenders: the standalone relay (its own UDP sockets, no
// sidecar), and the sidecar + relay pair (`src/cmd/turnpike.ts`) with the XDP fast
// path in native or skb mode, or with eBPF off (all traffic through the
// sidecar's sockets and the link to the relay).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Contender, ContenderOptions } from './types.ts';
import type { Topology } from '../../test/helpers/netns.ts';
import { spawnLogged, stopChild, waitForStun } from '../lib/process.ts';
import { cmdline, withDescendants } from '../lib/procfs.ts';
import { parseGcSeconds } from '../lib/gc.ts';

const root = new URL('../..', import.meta.url).pathname;
/** The pair's admin port, inside the relay namespace (a fresh namespace per contender: nothing else listens there). */
const ADMIN = '127.0.0.1:9469';

function baseEnv(topo: Topology, o: ContenderOptions): NodeJS.ProcessEnv {
  const allowed = [topo.addr.subnet4, topo.addr.subnet6].filter(Boolean).join(',');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TURNPIKE_LISTEN_PORT: String(o.port),
    TURNPIKE_LISTEN_ADDRESSES: [topo.addr.relay4, topo.addr.relay6].filter(Boolean).join(','),
    TURNPIKE_PORT_RANGE: `${o.minPort}-${o.maxPort}`,
    TURNPIKE_REST_SECRET: o.secret,
    TURNPIKE_REALM: o.realm,
    TURNPIKE_ALLOWED_PEERS: allowed,
    TURNPIKE_PUBLIC_IPV4: topo.addr.relay4,
    TURNPIKE_STATE_DIR: join(o.workDir, 'state'),
    TURNPIKE_LOG: 'warn',
    TURNPIKE_MAX_ALLOCATIONS_PER_USER: '100000',
    // The default per-source limits on unauthenticated (50/s) and authenticated
    // (200/s) requests would throttle the single-address control-plane driver;
    // coturn has no such limit.
    TURNPIKE_UNAUTH_RATE: '1000000',
    TURNPIKE_AUTH_RATE: '1000000',
  };
  if (topo.addr.relay6) env.TURNPIKE_PUBLIC_IPV6 = topo.addr.relay6;
  if (o.streams) Object.assign(env, { TURNPIKE_TLS_CERT: o.streams.cert, TURNPIKE_TLS_KEY: o.streams.key, TURNPIKE_TLS_PORT: String(o.streams.tlsPort) });
  // No telemetry egress from a benchmark.
  for (const k of ['TURNPIKE_POSTHOG_KEY', 'TURNPIKE_SENTRY_DSN', 'OTEL_EXPORTER_OTLP_ENDPOINT']) delete env[k];
  return env;
}

function tsxArgs(file: string): string[] {
  return ['--import', 'tsx', join(root, file)];
}

export const turnpikeStandalone: Contender = {
  name: 'turnpike-standalone',
  describe: 'turnpike relay alone (TURNPIKE_RELAY_TRANSPORT=standalone, Node, one thread), no sidecar, no XDP',
  async start(topo, o) {
    const logFile = join(o.workDir, 'relay.log');
    mkdirSync(join(o.workDir, 'state'), { recursive: true });
    const env = { ...baseEnv(topo, o), TURNPIKE_RELAY_TRANSPORT: 'standalone' };
    const child = spawnLogged(topo, 'relay', process.execPath, tsxArgs('src/cmd/relay.ts'), logFile, env);
    try {
      await waitForStun(topo, topo.addr.relay4, o.port, child);
    } catch (err) {
      await stopChild(child);
      throw new Error(`standalone relay did not start: ${(err as Error).message} (log ${logFile})`);
    }
    return {
      pids: () => (child.pid ? [child.pid] : []),
      roles: (): Record<string, number> => (child.pid ? { relay: child.pid } : {}),
      logFile,
      stop: () => stopChild(child),
    };
  },
};

function pairContender(name: string, describe: string, ebpf: 'off' | 'required', xdpMode?: 'native' | 'skb'): Contender {
  return {
    name,
    describe,
    async start(topo, o) {
      const logFile = join(o.workDir, 'turnpike.log');
      mkdirSync(join(o.workDir, 'state'), { recursive: true });
      const env: NodeJS.ProcessEnv = { ...baseEnv(topo, o), TURNPIKE_EBPF: ebpf, TURNPIKE_ADMIN: ADMIN };
      if (xdpMode) {
        env.TURNPIKE_INTERFACE = topo.dev.relay;
        env.TURNPIKE_XDP_MODE = xdpMode;
        if (xdpMode === 'native') await topo.enableRelayXdpTx();
      }
      // Prefer the built JavaScript when present (what `npm start` runs).
      const built = join(root, 'dist/src/cmd/turnpike.js');
      const args = existsSync(built) ? [built] : tsxArgs('src/cmd/turnpike.ts');
      const child = spawnLogged(topo, 'relay', process.execPath, args, logFile, env);
      try {
        // Generous: on a loaded 2-core machine starting the pair (BPF load, two Node processes) has taken over 30 s.
        await waitForStun(topo, topo.addr.relay4, o.port, child, 90_000);
      } catch (err) {
        await stopChild(child, 8000);
        throw new Error(`turnpike did not start: ${(err as Error).message} (log ${logFile})`);
      }
      const roles = (): Record<string, number> => {
        const out: Record<string, number> = {};
        if (!child.pid) return out;
        for (const p of withDescendants([child.pid])) {
          const c = cmdline(p);
          if (/cmd[/\\]sidecar\.(ts|js)/.test(c)) out.sidecar = p;
          else if (/cmd[/\\]relay\.(ts|js)/.test(c)) out.relay = p;
        }
        out.launcher = child.pid;
        return out;
      };
      return {
        pids: () => (child.pid ? [child.pid] : []),
        roles,
        logFile,
        async gcSeconds() {
          const { stdout } = await topo.exec('relay', 'curl', ['-sf', '--max-time', '3', `http://${ADMIN}/metrics`]);
          return parseGcSeconds(stdout);
        },
        stop: () => stopChild(child, 8000),
      };
    },
  };
}

export const turnpikeXdpNative = pairContender('turnpike-xdp-native', 'turnpike sidecar + relay, XDP native on the relay veth (pass program on the bridge side)', 'required', 'native');
export const turnpikeXdpSkb = pairContender('turnpike-xdp-skb', 'turnpike sidecar + relay, XDP generic (skb) mode', 'required', 'skb');
export const turnpikeUserspace = pairContender('turnpike-userspace', 'turnpike sidecar + relay, eBPF off (sidecar sockets + link to the relay)', 'off');
