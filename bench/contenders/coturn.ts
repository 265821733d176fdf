// coturn's turnserver set up like turnpike: same listen port and port range,
// UDP only (or TCP and TLS too when the run asks for streams), TURN REST secret auth, no CLI, the run's subnets allowed as peers
// (coturn denies private peers otherwise), no multicast peers, logging to a
// file, default thread count.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Contender } from './types.ts';
import { spawnLogged, stopChild, waitForStun } from '../lib/process.ts';
import { parseCidr } from '../../src/shared/cidr.ts';
import { formatAddress } from '../../src/shared/ip.ts';

export function coturnVersion(): string {
  try {
    return execFileSync('turnserver', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop() ?? 'unknown';
  } catch {
    return 'not installed';
  }
}

/** A CIDR as coturn's `--allowed-peer-ip` range: `10.1.2.0/24` -> `10.1.2.0-10.1.2.255`; `fd00:a:b::/48` -> `fd00:a:b::-fd00:a:b:ffff:ffff:ffff:ffff:ffff`. */
export function cidrRange(cidr: string): string {
  const c = parseCidr(cidr);
  const low = Uint8Array.from(c.bytes);
  const high = Uint8Array.from(c.bytes);
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, c.bits - 8 * i));
    const mask = (0xff << (8 - keep)) & 0xff;
    low[i] = low[i]! & mask;
    high[i] = high[i]! | (~mask & 0xff);
  }
  const text = (b: Uint8Array) => (cidr.includes(':') ? formatAddress(b) : formatAddress(b.subarray(12)));
  return `${text(low)}-${text(high)}`;
}

export const coturn: Contender = {
  name: 'coturn',
  describe: `coturn ${coturnVersion()} turnserver, default relay threads (one per CPU), UDP only (TCP and TLS too when the run serves streams)`,
  async start(topo, o) {
    const logFile = join(o.workDir, 'turnserver.log');
    const args = [
      '-n', '--listening-port', String(o.port), '--listening-ip', topo.addr.relay4, '--relay-ip', topo.addr.relay4,
      '--min-port', String(o.minPort), '--max-port', String(o.maxPort),
      ...(o.streams
        ? ['--cert', o.streams.cert, '--pkey', o.streams.key, '--tls-listening-port', String(o.streams.tlsPort), '--no-dtls', '--no-tcp-relay']
        : ['--no-tcp', '--no-tls', '--no-dtls', '--no-tcp-relay']),
      '--use-auth-secret', `--static-auth-secret=${o.secret}`, '--realm', o.realm,
      '--no-cli', '--no-multicast-peers', `--allowed-peer-ip=${cidrRange(topo.addr.subnet4)}`,
      '--log-file', logFile, '--simple-log', '--no-stdout-log',
      '--pidfile', join(o.workDir, 'turnserver.pid'),
    ];
    if (topo.addr.relay6) {
      args.push('--listening-ip', topo.addr.relay6, '--relay-ip', topo.addr.relay6, `--allowed-peer-ip=${cidrRange(topo.addr.subnet6!)}`);
    }
    const child = spawnLogged(topo, 'relay', 'turnserver', args, join(o.workDir, 'turnserver.out'));
    try {
      await waitForStun(topo, topo.addr.relay4, o.port, child);
    } catch (err) {
      await stopChild(child);
      throw new Error(`turnserver did not start: ${(err as Error).message} (log ${logFile})`);
    }
    return {
      pids: () => (child.pid ? [child.pid] : []),
      roles: (): Record<string, number> => (child.pid ? { turnserver: child.pid } : {}),
      logFile,
      stop: () => stopChild(child),
    };
  },
};
