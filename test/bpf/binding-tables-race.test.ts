// The binding tables under a program that runs while the sidecar rewrites
// them (bpf/bindings.h, src/sidecar/bpf/bindings.ts): a worker thread runs
// bpf/turn_router.o on one client's ChannelData, one run at a time, while
// the main thread moves that channel between two peers as fast as it can,
// through slot reuse (the spare slots run out every ~70 moves, so retired
// slots come back after their grace period, synchronously and in the
// background). Every relayed frame must go to one of the two bindings
// whole: never a mix of one's address and the other's port or allocation
// port, never an address that was never bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { setImmediate as turn } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { XdpRouter } from '../../src/sidecar/bpf/router.ts';
import { requireCapability, requireRoot } from '../helpers/env.ts';
import { channelData, payloadOf } from './frames.ts';
import { BASE_CONFIG, C4, OBJECT, SCENE_NEIGHBOURS, SCENE_ROUTES, bind, inFrame, installNextHops, neighbourOf, toListen } from './golden-scene.ts';

const SECONDS = 3;

test('a binding moved between peers while the program runs: every relayed frame goes to one bound peer, whole', async (t) => {
  if (!requireRoot(t) || !requireCapability(t, existsSync(OBJECT), `needs ${OBJECT} (make -C bpf)`)) return;
  const r = XdpRouter.load({ objectPath: OBJECT, mapCapacity: 8, log: pino({ level: 'silent' }) });
  try {
    r.writeConfig(BASE_CONFIG);
    const pa = { address: '198.51.100.31', port: 7001 };
    const pb = { address: '198.51.100.32', port: 7002 };
    installNextHops(r, SCENE_ROUTES, [...SCENE_NEIGHBOURS, neighbourOf(pa.address), neighbourOf(pb.address)]);
    const a = bind(C4, 0x4001, pa, 49200);
    const b = bind(C4, 0x4001, pb, 49201);
    r.putChannel(a);
    const frame = inFrame(C4, toListen(C4), channelData(0x4001, payloadOf(32)));
    // A TypeScript worker: tsx registered in the thread first (it does not carry over from this one).
    const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => m.register()).then(() => import(${JSON.stringify(new URL('./fixtures/test-run-worker.ts', import.meta.url).href)}))`;
    const worker = new Worker(boot, { eval: true, workerData: { progFd: r.programFd(), frame, ms: SECONDS * 1000 } });
    let report: { runs: number; seen: [string, number][] } | undefined;
    const done = new Promise<void>((resolve, reject) => {
      worker.once('message', (m) => {
        report = m;
        resolve();
      });
      worker.once('error', reject);
    });
    let failed: unknown;
    done.catch((e) => (failed = e));
    let current = a;
    let moves = 0;
    while (!report && !failed) {
      for (let i = 0; i < 50; i++) {
        r.deleteChannel(current);
        current = current === a ? b : a;
        r.putChannel(current);
        moves++;
      }
      await turn(); // lets the background grace periods complete too
    }
    await done;
    const seen = new Map(report!.seen);
    const reasons = Object.entries(r.readReasons()).filter(([, n]) => n > 0n).map(([k, n]) => `${k} ${n}`);
    t.diagnostic(`${report!.runs} runs, ${moves} moves: ${JSON.stringify(report!.seen)}; passed: ${reasons.join(', ')}`);
    const whole = new Set(['to 198.51.100.31:7001 from 49200', 'to 198.51.100.32:7002 from 49201', 'action 2']);
    for (const [what, n] of seen) assert.ok(whole.has(what), `${n} run(s) gave "${what}": not one of the bindings, whole`);
    assert.ok((seen.get('to 198.51.100.31:7001 from 49200') ?? 0) > 0 && (seen.get('to 198.51.100.32:7002 from 49201') ?? 0) > 0, 'both bindings relayed');
    assert.ok(moves > 1000, `the channel moved ${moves} times`);
  } finally {
    r.close();
  }
});
