// TURN over TCP and TLS, turnpike next to coturn in one run (issue 14):
//   throughput   several connections, each a channel to a UDP echo peer,
//                a window of ChannelData messages in flight: relayed
//                messages/s (echoes back at the client) and payload MB/s;
//   connections  TCP connect (+ TLS handshake) + Allocate (401, then with
//                credentials) + close, several at once: sessions/s.
// turnpike runs as `npm start` runs it (launcher, sidecar and the relay in a
// network of its own; eBPF off: the peer leg crosses the sidecar's sockets
// and the link, the client leg is the relay's). coturn runs with its default
// threads, TCP on the listen port and TLS on the TLS port, the same
// certificate. The load comes from one Node process per run in the client
// namespace (bench/stream-driver.ts), the same for both; the machine is
// shared, so read the ratios, not the absolute figures.
//
//   sudo node --import tsx bench/stream.bench.ts [--seconds 5] [--conns 8] [--size 200]
//        [--window 32] [--concurrency 16] [--contenders turnpike-userspace,coturn,turnpike-standalone] [--transports tcp,tls]
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createTopology, type Topology } from '../test/helpers/netns.ts';
import { makeTestCertificate } from '../test/helpers/test-ca.ts';
import { coturn } from './contenders/coturn.ts';
import { turnpikeStandalone, turnpikeUserspace } from './contenders/turnpike.ts';
import type { Contender, ContenderOptions } from './contenders/types.ts';
import { sleep, stopChild } from './lib/process.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    conns: { type: 'string', default: '8' },
    size: { type: 'string', default: '200' },
    window: { type: 'string', default: '32' },
    concurrency: { type: 'string', default: '16' },
    contenders: { type: 'string', default: 'turnpike-userspace,coturn' },
    transports: { type: 'string', default: 'tcp,tls' },
  },
});

const LISTEN_PORT = 3478;
const TLS_PORT = 5349;
const PEER_PORT = 3490;
const driver = new URL('./stream-driver.ts', import.meta.url).pathname;

type Transport = 'tcp' | 'tls';
interface Figures {
  msgsPerSec: number;
  mbPerSec: number;
  sessionsPerSec: number;
  failed: number;
  connectionsLost: number;
}

async function drive(topo: Topology, secret: string, ca: string, transport: Transport, mode: 'throughput' | 'connect'): Promise<Record<string, number>> {
  const port = transport === 'tls' ? TLS_PORT : LISTEN_PORT;
  const args = [
    '--import', 'tsx', driver, '--mode', mode,
    '--server', `${topo.addr.relay4}:${port}`, '--peer', `${topo.addr.peer4}:${PEER_PORT}`, '--secret', secret,
    ...(transport === 'tls' ? ['--tls', '--ca', ca] : []),
    '--seconds', values.seconds!, '--conns', values.conns!, '--size', values.size!, '--window', values.window!, '--concurrency', values.concurrency!,
  ];
  const { stdout } = await topo.exec('client', process.execPath, args, { timeoutMs: (Number(values.seconds) + 60) * 1000 });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, number>;
}

/** Waits until the contender accepts TCP on `port` (its stream listener is up). */
async function waitTcp(topo: Topology, port: number): Promise<void> {
  const probe = `const s=require('net').connect(${port},'${topo.addr.relay4}',()=>{console.log('ok');process.exit(0)});s.on('error',()=>process.exit(1))`;
  for (let i = 0; i < 100; i++) {
    const r = await topo.exec('client', process.execPath, ['-e', probe]).catch(() => ({ stdout: '' }));
    if (r.stdout.includes('ok')) return;
    await sleep(200);
  }
  throw new Error(`nothing accepts TCP on ${topo.addr.relay4}:${port}`);
}

async function measure(topo: Topology, c: Contender, opts: ContenderOptions, ca: string): Promise<Record<Transport, Figures>> {
  const handle = await c.start(topo, opts);
  try {
    await waitTcp(topo, LISTEN_PORT);
    await waitTcp(topo, TLS_PORT);
    const out = {} as Record<Transport, Figures>;
    for (const t of values.transports!.split(',') as Transport[]) {
      const tp = await drive(topo, opts.secret, ca, t, 'throughput');
      const cn = await drive(topo, opts.secret, ca, t, 'connect');
      out[t] = { msgsPerSec: tp.msgsPerSec ?? 0, mbPerSec: tp.mbPerSec ?? 0, sessionsPerSec: cn.sessionsPerSec ?? 0, failed: cn.failed ?? 0, connectionsLost: tp.connectionsLost ?? 0 };
      process.stderr.write(`[stream-bench] ${c.name} ${t}: ${JSON.stringify(out[t])}\n`);
    }
    return out;
  } finally {
    await handle.stop();
  }
}

function fail(msg: string): never {
  throw new Error(msg);
}

const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));

function table(results: Map<string, Record<Transport, Figures>>): string {
  const names = [...results.keys()];
  const ratio = names.length === 2 && names[0] === turnpikeUserspace.name && names[1] === coturn.name;
  const rows: [string, (f: Figures) => number][] = [
    ['relayed msgs/s', (f) => f.msgsPerSec],
    ['relayed MB/s (payload)', (f) => f.mbPerSec],
    ['sessions/s (connect + Allocate)', (f) => f.sessionsPerSec],
  ];
  const lines = [
    `| transport | measure | ${names.join(' | ')} |${ratio ? ' turnpike / coturn |' : ''}`,
    `|---|---|${names.map(() => '---:').join('|')}|${ratio ? '---:|' : ''}`,
  ];
  for (const t of ['tcp', 'tls'] as const) {
    if (names.some((n) => results.get(n)![t] === undefined)) continue;
    for (const [label, get] of rows) {
      const vals = names.map((n) => get(results.get(n)![t]));
      lines.push(`| ${t} | ${label} | ${vals.map(fmt).join(' | ')} |${ratio ? ` ${(vals[0]! / vals[1]!).toFixed(2)} |` : ''}`);
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark makes network namespaces');
  const work = mkdtempSync(join(tmpdir(), 'tp-stream-bench-'));
  const topo = await createTopology({ prefix: 'tpsb', ipv6: false });
  const peer = topo.spawn('peer', 'turnutils_peer', ['-p', String(PEER_PORT), '-L', topo.addr.peer4], { stdio: 'ignore' });
  const results = new Map<string, Record<Transport, Figures>>();
  try {
    const certDir = join(work, 'tls');
    mkdirSync(certDir, { recursive: true });
    chmodSync(work, 0o755);
    const { ca, cert, key } = makeTestCertificate(certDir, topo.addr.relay4);
    const all = [turnpikeUserspace, coturn, turnpikeStandalone];
    const contenders = values.contenders!.split(',').map((n) => all.find((c) => c.name === n) ?? fail(`unknown contender ${n} (${all.map((c) => c.name).join(', ')})`));
    for (const c of contenders) {
      const workDir = join(work, c.name);
      mkdirSync(workDir, { recursive: true });
      chmodSync(workDir, 0o755);
      const opts: ContenderOptions = { port: LISTEN_PORT, minPort: 49152, maxPort: 65535, secret: 'stream-bench-secret', realm: 'bench', workDir, streams: { cert, key, tlsPort: TLS_PORT } };
      results.set(c.name, await measure(topo, c, opts, ca));
    }
    const params = `${values.conns} connections x window ${values.window} x ${values.size}-byte ChannelData to a UDP echo peer (turnutils_peer); sessions: ${values.concurrency} at once; ${values.seconds} s each`;
    process.stdout.write(`\nTURN over TCP and TLS (${params})\n`);
    for (const c of contenders) process.stdout.write(`  ${c.name}: ${c.describe}\n`);
    process.stdout.write(`\n${table(results)}\n`);
    const lost = [...results.entries()].flatMap(([n, r]) => (['tcp', 'tls'] as const).filter((t) => r[t] !== undefined && (r[t].failed > 0 || r[t].connectionsLost > 0)).map((t) => `${n} ${t}: ${r[t].failed} sessions failed, ${r[t].connectionsLost} connections lost`));
    if (lost.length > 0) process.stdout.write(`\n${lost.join('\n')}\n`);
  } finally {
    await stopChild(peer);
    await topo.destroy();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
