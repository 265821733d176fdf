// A process run inside a test network namespace (via nsenter) for the XDP
// telemetry pair test; prints one JSON line with what it counted.
//   peer   PORT                       echoes every datagram; on stdin EOF prints {received, bytes}
//   client SERVER PORT PEER PEERPORT N SIZE USER PASS
//          allocates, binds a channel to the peer, sends N ChannelData of SIZE
//          bytes, waits for the echoes, prints {sent, sentBytes, received, receivedBytes}
import { createSocket } from 'node:dgram';
import { TurnClient, toStunAddress } from '../helpers/turn-client.ts';

const [mode, ...args] = process.argv.slice(2);
const CHANNEL = 0x4002;

async function peer(port: number): Promise<void> {
  const sock = createSocket('udp4');
  let received = 0;
  let bytes = 0;
  sock.on('message', (m, rinfo) => {
    received++;
    bytes += m.length;
    sock.send(m, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(port, '0.0.0.0', () => r()));
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
  process.stdin.resume();
  process.stdin.on('end', () => {
    process.stdout.write(JSON.stringify({ received, bytes }) + '\n');
    sock.close();
    process.exit(0);
  });
}

async function client(server: string, port: number, peerHost: string, peerPort: number, n: number, size: number, user: string, pass: string): Promise<void> {
  const c = await TurnClient.open({ server: { address: server, port }, username: user, password: pass });
  let received = 0;
  let receivedBytes = 0;
  c.onData((d) => {
    if (d.channel !== CHANNEL) return;
    received++;
    receivedBytes += d.data.length;
  });
  const peerAddr = toStunAddress(peerHost, peerPort);
  await c.allocate();
  await c.createPermission([peerAddr]);
  await c.channelBind(CHANNEL, peerAddr);
  for (let i = 0; i < n; i++) {
    c.sendChannelData(CHANNEL, new Uint8Array(size).fill(i & 0xff));
    // A little pacing: veth queues are short and this counts exact totals.
    await new Promise((r) => setTimeout(r, 2));
  }
  const until = Date.now() + 5000;
  while (received < n && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  process.stdout.write(JSON.stringify({ sent: n, sentBytes: n * size, received, receivedBytes }) + '\n');
  await c.close();
  process.exit(0);
}

if (mode === 'peer') await peer(Number(args[0]));
else if (mode === 'client') {
  const [server, port, peerHost, peerPort, n, size, user, pass] = args as [string, string, string, string, string, string, string, string];
  await client(server, Number(port), peerHost, Number(peerPort), Number(n), Number(size), user, pass);
} else {
  process.stderr.write('usage: telemetry-pair-udp.ts peer PORT | client SERVER PORT PEER PEERPORT N SIZE USER PASS\n');
  process.exit(2);
}
