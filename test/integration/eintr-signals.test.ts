// The event loop survives EINTR everywhere the sidecar calls the kernel
// through koffi: recvmmsg and sendmmsg (src/net/mmsg.ts, under the sidecar's
// UDP sockets) and perf_buffer__poll (src/sidecar/bpf/perf.ts, on a koffi
// worker thread, where epoll_wait is never restarted after a signal). A child
// shell sends SIGUSR2 and SIGCHLD to this process as fast as it can while
// datagrams are echoed through the batched sockets and the perf buffer is
// polled every few ms: every datagram comes back, in order, and nothing is
// thrown, counted as an error or warned about.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { UdpSockets } from '../../src/sidecar/sockets.ts';
import { XdpRouter } from '../../src/sidecar/bpf/router.ts';
import { openDiagnostics, type DiagnosticsReader } from '../../src/sidecar/bpf/perf.ts';
import { isRoot, requireCapability } from '../helpers/env.ts';

const DATAGRAMS = 20_000;
const WINDOW = 128;
const objectPath = fileURLToPath(new URL('../../bpf/turn_router.o', import.meta.url));

function captureLog() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  return { log: pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) }), lines };
}

/** A shell loop signalling this process until killed; resolves with a stop function. */
function signalStorm(): { stop(): Promise<void> } {
  const child = spawn('sh', ['-c', `while kill -USR2 ${process.pid} && kill -CHLD ${process.pid}; do :; done`], { stdio: 'ignore' });
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}

test('a signal storm while datagrams flow through sendmmsg/recvmmsg and the perf buffer is polled: nothing lost, nothing thrown', async (t) => {
  if (!requireCapability(t, process.platform === 'linux' && process.arch === 'x64', 'batched I/O is x86_64 Linux only')) return;
  const { log, lines } = captureLog();
  const thrown: unknown[] = [];
  const onThrow = (e: unknown) => void thrown.push(e);
  process.on('uncaughtException', onThrow);
  process.on('unhandledRejection', onThrow);
  let signals = 0;
  const onSignal = () => void signals++;
  process.on('SIGUSR2', onSignal);
  t.after(() => {
    process.off('uncaughtException', onThrow);
    process.off('unhandledRejection', onThrow);
    process.off('SIGUSR2', onSignal);
  });

  // The sidecar's sockets, echoing every datagram back through the send batcher.
  const sockets: UdpSockets = new UdpSockets({
    listenPort: 0,
    listenAddresses: ['127.0.0.1'],
    logger: log,
    batchedIo: 'auto',
    onPacket: (local, remote, data) => void sockets.send(local, remote, data),
  });
  await sockets.listenAll();
  t.after(() => sockets.close());
  const internals = sockets as unknown as { batcher: unknown; drainer: unknown };
  assert.ok(internals.batcher !== null && internals.drainer !== null, 'sendmmsg/recvmmsg batching is active');
  const port = sockets.boundAddresses()[0]!.port;

  // The perf buffer, polled on a koffi worker every 5 ms (needs root and the built object).
  let reader: DiagnosticsReader | undefined;
  if (isRoot() && existsSync(objectPath)) {
    const router = XdpRouter.load({ objectPath, mapCapacity: 1024, log });
    reader = openDiagnostics(router, { pages: 1, pollMs: 5, onEvent: () => {}, log });
    t.after(async () => {
      await reader?.close();
      router.close();
    });
  } else t.diagnostic('perf polling not covered: needs root and bpf/turn_router.o');

  const client = createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
  t.after(() => client.close());
  const received: number[] = [];
  let wake: () => void = () => {};
  client.on('message', (m) => {
    received.push(m.readUInt32BE(0));
    wake();
  });

  const storm = signalStorm();
  try {
    let sent = 0;
    while (sent < DATAGRAMS) {
      // Keep at most WINDOW in flight: loopback buffers never overflow, so any loss is ours.
      while (sent - received.length < WINDOW && sent < DATAGRAMS) {
        const b = Buffer.alloc(100);
        b.writeUInt32BE(sent++, 0);
        client.send(b, port, '127.0.0.1');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        wake = () => {
          if (sent - received.length < WINDOW / 2 || received.length === DATAGRAMS) {
            clearTimeout(timer);
            resolve();
          }
        };
      });
      if (sent - received.length >= WINDOW) break; // stalled for 2 s: something was lost
    }
    // Let the last ones arrive.
    for (let i = 0; i < 100 && received.length < sent; i++) await new Promise((r) => setTimeout(r, 20));
  } finally {
    await storm.stop();
  }
  // Let queued signals land before the handler goes.
  await new Promise((r) => setTimeout(r, 50));

  t.diagnostic(`${signals} SIGUSR2 handled during ${DATAGRAMS} echoed datagrams`);
  assert.ok(signals > 100, `the storm reached the process (${signals} signals)`);
  assert.equal(received.length, DATAGRAMS, 'every datagram echoed');
  assert.deepEqual(received.slice(0, 5), [0, 1, 2, 3, 4]);
  assert.ok(received.every((v, i) => v === i), 'in order');
  assert.deepEqual(sockets.stats().errors, {}, 'no socket errors');
  assert.deepEqual(thrown, []);
  const problems = lines.filter((l) => l.level >= 40);
  assert.deepEqual(problems.map((l) => l.msg), [], 'nothing warned (perf_buffer__poll EINTR included)');
});
