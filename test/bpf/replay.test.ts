// bpf/xdp_replay.o, the wrapper behind the warm column of bench/xdp.bench.ts:
// one test run with repeat=n must run the router n times, each on the
// original frame (so each run relays), and leave the golden output behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import pino from 'pino';
import { XdpRouter } from '../../src/sidecar/bpf/router.ts';
import { replayOf, testRun } from '../helpers/bpf-test-run.ts';
import { requireCapability, requireRoot } from '../helpers/env.ts';
import { channelData, payloadOf } from './frames.ts';
import { BASE_CONFIG, BINDINGS, C4, C6, EMPTY_OBJECT, OBJECT, P4, alloc, inFrame, installNextHops, outFrame, toListen } from './golden-scene.ts';

const log = pino({ level: 'silent' });
const REPLAY = new URL('../../bpf/xdp_replay.o', import.meta.url).pathname;
const data = payloadOf(100, 5);

test('xdp_replay: repeat=n relays n frames, each from the original input, for a shrinking and a growing rewrite', (t) => {
  if (!requireRoot(t) || !requireCapability(t, [OBJECT, EMPTY_OBJECT, REPLAY].every(existsSync), 'needs bpf/*.o (make -C bpf)')) return;
  const r = XdpRouter.load({ objectPath: OBJECT, log });
  const empty = XdpRouter.load({ objectPath: EMPTY_OBJECT, log });
  const w = replayOf(r, log);
  const we = replayOf(empty, log);
  try {
    r.writeConfig(BASE_CONFIG);
    for (const b of BINDINGS) r.putChannel(b);
    installNextHops(r);
    const cases = [
      // ChannelData -> UDP: the head moves by +4 every run
      { path: 'chan_to_udp_44', input: inFrame(C4, toListen(C4), channelData(0x4001, data)), output: outFrame(alloc(P4, 50001), P4, data) },
      // UDP over IPv4 -> ChannelData over IPv6: the head moves by -24 every run
      { path: 'udp_to_chan_46', input: inFrame(P4, alloc(P4, 50003), data), output: outFrame(toListen(C6), C6, channelData(0x4003, data)) },
    ];
    for (const c of cases) {
      w.setFrame(c.input);
      const before = r.readPathStats().find((p) => p.path === c.path)!.packets;
      const got = testRun(w.router, c.input, { repeat: 1000 });
      const after = r.readPathStats().find((p) => p.path === c.path)!.packets;
      assert.equal(got.actionName, 'XDP_TX', c.path);
      assert.equal(after - before, 1000n, `${c.path}: every run relayed`);
      assert.deepEqual([...got.data], [...c.output], `${c.path}: the last run's output is the golden one`);
    }
    // The empty program through its own wrapper sees the same frame, untouched.
    we.setFrame(cases[0]!.input);
    const e = testRun(we.router, cases[0]!.input, { repeat: 1000 });
    assert.equal(e.actionName, 'XDP_PASS');
    assert.deepEqual([...e.data], [...cases[0]!.input]);
  } finally {
    we.router.close();
    w.router.close();
    empty.close();
    r.close();
  }
});
