// A TURN client run inside the client namespace (via nsenter) for
// dashboard-metrics.test.ts: traffic that makes every series the Grafana
// dashboard queries appear. Prints one JSON line with what it counted.
//   SERVER PORT PEER PEERPORT USER PASS
// One allocation with a permission and a channel to the echo peer: ChannelData
// (the kernel path), Send indications (the relay's), ChannelData on a channel
// never bound (the kernel passes it, the relay drops it); then a second
// allocation of the same user, which a per-user quota of 1 refuses (486).
import { TurnClient, TurnError, toStunAddress } from '../helpers/turn-client.ts';

const [server, port, peerHost, peerPort, user, pass] = process.argv.slice(2) as [string, string, string, string, string, string];
const CHANNEL = 0x4002;
const UNBOUND = 0x4009;
const pace = () => new Promise((r) => setTimeout(r, 2));

const opts = { server: { address: server, port: Number(port) }, username: user, password: pass };
const a = await TurnClient.open(opts);
let received = 0;
a.onData(() => void received++);
const peer = toStunAddress(peerHost, Number(peerPort));
await a.allocate();
await a.createPermission([peer]);
await a.channelBind(CHANNEL, peer);
let sent = 0;
for (let i = 0; i < 30; i++, sent++, await pace()) a.sendChannelData(CHANNEL, new Uint8Array(100).fill(i));
for (let i = 0; i < 10; i++, sent++, await pace()) a.sendIndication(peer, new Uint8Array(60).fill(i));
for (let i = 0; i < 3; i++, await pace()) a.sendChannelData(UNBOUND, new Uint8Array(20));
const until = Date.now() + 5000;
while (received < sent && Date.now() < until) await new Promise((r) => setTimeout(r, 20));

const b = await TurnClient.open(opts);
let refused = 0;
try {
  await b.allocate();
} catch (e) {
  if (!(e instanceof TurnError)) throw e;
  refused = e.code;
}
process.stdout.write(JSON.stringify({ sent, received, refused }) + '\n');
await a.close();
await b.close();
process.exit(0);
