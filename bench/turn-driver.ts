// TURN control-plane driver, run INSIDE the client namespace by the harness
// (`ip netns exec <client> node --import tsx bench/turn-driver.ts ...`).
// Prints one JSON object on stdout; progress never goes to stdout.
//
// Modes:
//   flows    N allocations, each with a channel bound to --peer; prints the
//            local ports and channels, then CLOSES the sockets so bench/flood
//            can bind the same ports (the allocation lives on in the relay,
//            keyed by the 5-tuple).
//   control  N Allocate then N ChannelBind exchanges, --concurrency at a time;
//            prints the rate of each phase.
//   hold     N allocations with a channel each, kept open; prints {"ready":...}
//            and waits for SIGTERM (the harness reads the relay's RSS meanwhile).
//
// --family 6 asks for an IPv6 relayed address (REQUESTED-ADDRESS-FAMILY);
// --server and --peer are then IPv6 too, so the whole flow is IPv6. With
// --family 4 (default) no family attribute is sent, as most clients do.
import { parseArgs } from 'node:util';
import { mintRestCredential } from '../src/relay/auth/credentials.ts';
import { TurnClient, toStunAddress } from '../test/helpers/turn-client.ts';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'flows' },
    server: { type: 'string' },
    peer: { type: 'string' },
    secret: { type: 'string' },
    count: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '64' },
    'bind-address': { type: 'string' },
    family: { type: 'string', default: '4' },
    'base-port': { type: 'string' },
  },
});

function hostPort(text: string): { address: string; port: number } {
  const i = text.lastIndexOf(':');
  return { address: text.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(text.slice(i + 1)) };
}

const server = hostPort(values.server ?? '');
const peer = hostPort(values.peer ?? '');
const secret = values.secret ?? '';
const count = Number(values.count);
const concurrency = Number(values.concurrency);
const family = values.family === '6' ? 6 : 4;
const CHANNEL_BASE = 0x4000;

async function pool<T>(n: number, width: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
  return out;
}

async function openClient(i: number, localPort?: number): Promise<TurnClient> {
  const cred = mintRestCredential(secret, `bench${i}`, 3600, Date.now());
  return TurnClient.open({
    server, username: cred.username, password: cred.password,
    localAddress: values['bind-address'], localPort, retransmitMs: 1000, timeoutMs: 10_000,
  });
}

// Flow allocations outlive their sockets (the flooder reuses the 5-tuples), so
// their ports must never come up again as ephemeral ports of a later
// control-plane run: a reused port is the same 5-tuple, and the relay rightly
// answers 437 Allocation Mismatch (this was the cause of the few control-plane
// "failures" once seen against every contender). --base-port puts flows below
// the kernel's ephemeral range (32768-60999 by default).
const basePort = values['base-port'] === undefined ? undefined : Number(values['base-port']);

const peerAddr = toStunAddress(peer.address, peer.port);
// Channels are per allocation, so every flow may use the same number; vary
// them anyway so a capture tells flows apart.
const channelOf = (i: number) => CHANNEL_BASE + (i % 0x1000);

async function main(): Promise<void> {
  if (values.mode === 'flows' || values.mode === 'hold') {
    const clients: TurnClient[] = [];
    const flows = await pool(count, concurrency, async (i) => {
      const c = await openClient(i, basePort === undefined ? undefined : basePort + i);
      clients.push(c);
      const alloc = await c.allocate(family === 6 ? { family: 6 } : {});
      await c.channelBind(channelOf(i), peerAddr);
      return { port: c.local.port, channel: channelOf(i), relayed: alloc.relayed[0] };
    });
    if (values.mode === 'flows') {
      await Promise.all(clients.map((c) => c.close()));
      process.stdout.write(`${JSON.stringify({ flows })}\n`);
      return;
    }
    process.stdout.write(`${JSON.stringify({ ready: flows.length })}\n`);
    await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
    await Promise.all(clients.map((c) => c.close()));
    return;
  }
  if (values.mode === 'control') {
    const clients = await pool(count, concurrency, (i) => openClient(i));
    // Failures are counted by reason, so a report says what went wrong
    // (an error code, or a timeout after retransmissions) and not just how often.
    const failures: Record<string, number> = {};
    const fail = (phase: string) => (err: unknown) => {
      const key = `${phase}: ${err instanceof Error ? err.message : String(err)}`;
      failures[key] = (failures[key] ?? 0) + 1;
    };
    let t0 = performance.now();
    const allocated = new Array<boolean>(count).fill(false);
    await pool(count, concurrency, (i) => clients[i]!.allocate(family === 6 ? { family: 6 } : {}).then(() => { allocated[i] = true; }, fail('allocate')));
    const allocSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    // A bind on a client whose Allocate failed would fail too and count twice.
    const bindable = allocated.flatMap((ok, i) => (ok ? [i] : []));
    await pool(bindable.length, concurrency, (j) => clients[bindable[j]!]!.channelBind(channelOf(bindable[j]!), peerAddr).catch(fail('channel bind')));
    const bindSeconds = (performance.now() - t0) / 1000;
    const retransmits = clients.reduce((s, c) => s + c.retransmits, 0);
    await Promise.all(clients.map((c) => c.close()));
    const failed = Object.values(failures).reduce((s, n) => s + n, 0);
    process.stdout.write(`${JSON.stringify({
      count, concurrency, failed, failures, retransmits,
      allocationsPerSecond: count / allocSeconds, bindsPerSecond: bindable.length / bindSeconds,
    })}\n`);
    return;
  }
  throw new Error(`unknown mode ${values.mode}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`turn-driver: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
