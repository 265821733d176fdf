import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { requireRoot, hasCommand, requireCapability } from '../helpers/env.ts';
import { createTopology, sweepStaleNamespaces } from '../helpers/netns.ts';

// A UDP echo on port 7000 (both families) and a one-shot probe of it.
const ECHO = `const d=require('dgram');let n=0;for(const f of ['udp4','udp6']){const s=d.createSocket(f==='udp6'?{type:f,ipv6Only:true}:f);s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(7000,()=>{if(++n===2)console.log('up')})}`;
const PROBE = `const d=require('dgram');const a=process.argv[1];const s=d.createSocket(a.includes(':')?'udp6':'udp4');s.on('message',()=>{console.log('pong');process.exit(0)});setTimeout(()=>process.exit(1),3000);s.send('ping',7000,a)`;

test('topology connects client and peer to the relay over IPv4 and IPv6, and destroy is idempotent', async (t) => {
  if (!requireRoot(t) || !requireCapability(t, hasCommand('ip'), 'needs iproute2')) return;
  const topo = await createTopology({ prefix: 'tpbn' });
  try {
    const echo = topo.spawn('relay', process.execPath, ['-e', ECHO]);
    await new Promise((r) => echo.stdout!.once('data', r));
    for (const [from, to] of [['client', topo.addr.relay4], ['peer', topo.addr.relay4], ['client', topo.addr.relay6!], ['peer', topo.addr.relay6!]] as const) {
      const { stdout } = await topo.exec(from, process.execPath, ['-e', PROBE, to]);
      assert.equal(stdout.trim(), 'pong', `${from} -> ${to}`);
    }
  } finally {
    await topo.destroy();
    await topo.destroy();
  }
  for (const name of Object.values(topo.ns)) assert.equal(existsSync(`/run/netns/${name}`), false);
});

test('sweeper leaves namespaces of live processes alone', async (t) => {
  if (!requireRoot(t)) return;
  const topo = await createTopology({ prefix: 'tpbs', ipv6: false });
  try {
    const removed = await sweepStaleNamespaces('tpbs');
    assert.deepEqual(removed.filter((n) => Object.values(topo.ns).includes(n)), []);
    assert.ok(existsSync(`/run/netns/${topo.ns.relay}`));
  } finally {
    await topo.destroy();
  }
});
