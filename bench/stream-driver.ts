// TURN-over-TCP/TLS load driver, run INSIDE the client namespace by
// bench/stream.bench.ts. Prints one JSON object on stdout.
//
// Modes:
//   throughput  --conns N connections, each Allocate + CreatePermission +
//               ChannelBind to --peer (a UDP echo peer), then keeps --window
//               ChannelData messages of --size bytes in flight per connection
//               for --seconds (after a 1 s warm-up); prints the echoes
//               received per second and their payload MB/s.
//   connect     --concurrency workers, each in a loop: connect (TCP, or TCP +
//               TLS handshake), Allocate (the 401 challenge, then with
//               credentials), close; prints completed sessions per second.
// --tls with --ca: TLS, verifying the relay's certificate against that CA.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { mintRestCredential } from '../src/relay/auth/credentials.ts';
import { TurnClient, toStunAddress, type StreamOptions } from '../test/helpers/turn-client.ts';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'throughput' },
    server: { type: 'string' },
    peer: { type: 'string' },
    secret: { type: 'string' },
    tls: { type: 'boolean', default: false },
    ca: { type: 'string' },
    conns: { type: 'string', default: '8' },
    window: { type: 'string', default: '32' },
    size: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '16' },
  },
});

function hostPort(text: string): { address: string; port: number } {
  const i = text.lastIndexOf(':');
  return { address: text.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(text.slice(i + 1)) };
}

const server = hostPort(values.server ?? '');
const peer = hostPort(values.peer ?? '');
const stream: StreamOptions = values.tls ? { tls: { ca: readFileSync(values.ca ?? '') } } : {};
const seconds = Number(values.seconds);

async function open(i: number): Promise<TurnClient> {
  const cred = mintRestCredential(values.secret ?? '', `bench${i}`, 3600, Date.now());
  return TurnClient.openStream({ server, username: cred.username, password: cred.password, timeoutMs: 10_000 }, stream);
}

async function throughput(): Promise<Record<string, number>> {
  const conns = Number(values.conns);
  const window = Number(values.window);
  const payload = new Uint8Array(Number(values.size)).fill(0x5a);
  const peerAddr = toStunAddress(peer.address, peer.port);
  const clients = await Promise.all(Array.from({ length: conns }, (_, i) => open(i)));
  let counting = false;
  let received = 0;
  await Promise.all(
    clients.map(async (c, i) => {
      await c.allocate();
      await c.createPermission([peerAddr]);
      const channel = 0x4000 + i;
      await c.channelBind(channel, peerAddr);
      // Each echo frees a slot in the window: send the next one.
      c.onData(() => {
        if (counting) received++;
        c.sendChannelData(channel, payload);
      });
      for (let k = 0; k < window; k++) c.sendChannelData(channel, payload);
    }),
  );
  await new Promise((r) => setTimeout(r, 1000));
  counting = true;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const ended = clients.filter((c) => c.ended).length;
  await Promise.all(clients.map((c) => c.close()));
  return { msgsPerSec: received / elapsed, mbPerSec: (received * payload.length) / elapsed / 1e6, received, elapsed, connectionsLost: ended };
}

async function connect(): Promise<Record<string, number>> {
  const concurrency = Number(values.concurrency);
  const until = Date.now() + seconds * 1000;
  let done = 0;
  let failed = 0;
  let n = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        let c: TurnClient | undefined;
        try {
          c = await open(n++);
          await c.allocate();
          done++;
        } catch {
          failed++;
        } finally {
          await c?.close();
        }
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  return { sessionsPerSec: done / elapsed, done, failed, elapsed };
}

const result = values.mode === 'connect' ? await connect() : await throughput();
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
