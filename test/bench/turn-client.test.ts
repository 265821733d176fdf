// The test TURN client against coturn's turnserver in a namespace topology:
// REST credentials, Allocate (401 challenge), ChannelBind, ChannelData both
// ways through a UDP echo on the peer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { hasCommand, requireCapability, requireRoot } from '../helpers/env.ts';
import { createTopology } from '../helpers/netns.ts';
import { coturn } from '../../bench/contenders/coturn.ts';
import { mintRestCredential } from '../../src/relay/auth/credentials.ts';

// Runs inside the client namespace: one allocation, one channel to the echo, one round trip.
const CLIENT = `
import { TurnClient, toStunAddress } from ${JSON.stringify(new URL('../helpers/turn-client.ts', import.meta.url).pathname)};
const [server, peer, username, password] = process.argv.slice(1);
const c = await TurnClient.open({ server: { address: server, port: 3478 }, username, password });
const alloc = await c.allocate();
await c.channelBind(0x4001, toStunAddress(peer, 7000));
const got = new Promise((resolve) => c.onData((d) => resolve(d)));
c.sendChannelData(0x4001, new TextEncoder().encode('hello'));
const d = await got;
console.log(JSON.stringify({ relayed: alloc.relayed[0], channel: d.channel, text: new TextDecoder().decode(d.data) }));
await c.close();
`;
const ECHO = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(7000,()=>console.log('up'))`;

test('TURN client allocates, binds a channel and relays ChannelData through coturn', async (t) => {
  if (!requireRoot(t) || !requireCapability(t, hasCommand('turnserver'), 'needs coturn (turnserver)')) return;
  const topo = await createTopology({ prefix: 'tpbc', ipv6: false });
  const workDir = mkdtempSync('/tmp/tpbc-');
  try {
    const secret = 'test-secret-1234';
    const h = await coturn.start(topo, { port: 3478, minPort: 49152, maxPort: 65535, secret, realm: 'test', workDir });
    try {
      const echo = topo.spawn('peer', process.execPath, ['-e', ECHO]);
      await new Promise((r) => echo.stdout!.once('data', r));
      const cred = mintRestCredential(secret, 'alice', 600, Date.now());
      const { stdout } = await topo.exec('client', process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CLIENT, topo.addr.relay4, topo.addr.peer4, cred.username, cred.password], { timeoutMs: 20_000 });
      const out = JSON.parse(stdout) as { relayed: { address: string }; channel: number; text: string };
      assert.equal(out.relayed.address, topo.addr.relay4);
      assert.equal(out.channel, 0x4001);
      assert.equal(out.text, 'hello');
    } finally {
      await h.stop();
    }
  } finally {
    await topo.destroy();
    rmSync(workDir, { recursive: true, force: true });
  }
});
