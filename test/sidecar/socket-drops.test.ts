// Overload at the sidecar's UDP sockets: when datagrams come faster than the
// sidecar reads them, the kernel drops the excess at the socket, which no
// userspace counter sees. The sidecar reads the kernel's per-socket drop
// counter (SO_MEMINFO) and reports it: turnpike.socket.dropped{socket} and
// /status sockets.kernelDropped. Here a real socket is flooded by another
// process while this one's event loop is held (spawnSync: nothing reads), and
// the count is checked against the kernel's own, from /proc/net/udp{,6}.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UdpSockets } from '../../src/sidecar/sockets.ts';
import { configSchema, type Config } from '../../src/config/schema.ts';
import { createLogHub } from '../../src/shared/logger.ts';
import { startTelemetry } from '../../src/telemetry/index.ts';
import { Sidecar } from '../../src/sidecar/sidecar.ts';
import { sink } from '../telemetry/sink.ts';
import { freeUdpPort, until } from '../link/helpers.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * Sends `count` datagrams of `size` bytes to each port on 127.0.0.1 from a
 * child process, holding this process's event loop until it is done (so
 * nothing here reads meanwhile); returns how many the child's kernel took.
 */
function floodWhileHeld(ports: number[], count: number, size = 600): number {
  const script = `
    const s = require('dgram').createSocket('udp4');
    const ports = ${JSON.stringify(ports)};
    const payload = Buffer.alloc(${size}, 7);
    let sent = 0, left = ports.length * ${count};
    const done = () => { if (--left === 0) { process.stdout.write(String(sent)); s.close(); } };
    for (let i = 0; i < ${count}; i++) for (const p of ports) s.send(payload, p, '127.0.0.1', (e) => { if (!e) sent++; done(); });
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout);
}

/** The kernel's drop count for the IPv4 UDP socket bound at 127.0.0.1:port (the last column of /proc/net/udp). */
function kernelDrops(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const line = readFileSync('/proc/net/udp', 'utf8').split('\n').find((l) => l.trim().split(/\s+/)[1] === local);
  assert.ok(line, `no socket at 127.0.0.1:${port} in /proc/net/udp`);
  return Number(line.trim().split(/\s+/).at(-1));
}

test('drops at a listen socket and an allocation port are counted as the kernel counts them, closed ports included', async () => {
  let received = 0;
  // Small buffers: a few hundred datagrams fill them.
  const sockets = new UdpSockets({ listenPort: 0, listenAddresses: ['127.0.0.1'], bufferBytes: 32 << 10, onPacket: () => void received++ });
  await sockets.listenAll();
  try {
    const listen = sockets.boundAddresses()[0]!.port;
    const alloc = await freeUdpPort();
    assert.deepEqual(await sockets.openPort(4, alloc), { ok: true, error: '' });
    assert.deepEqual(sockets.stats().kernelDropped, { listen: 0, allocation: 0 });

    const perPort = 5000;
    const sent = floodWhileHeld([listen, alloc], perPort);
    assert.equal(sent, 2 * perPort, 'the sender lost nothing of its own');
    const kernel = { listen: kernelDrops(listen), allocation: kernelDrops(alloc) };
    assert.ok(kernel.listen > 0 && kernel.allocation > 0, `the flood overflowed both sockets (${JSON.stringify(kernel)})`);

    // Read in slices, as the sidecar does.
    let passes = 0;
    while (!sockets.pollDrops(1)) passes++;
    assert.equal(passes, 2, 'one socket per slice');
    assert.deepEqual(sockets.stats().kernelDropped, kernel);
    // Every datagram sent was either read or dropped at the socket (loopback loses nothing else).
    await until(() => received === sent - kernel.listen - kernel.allocation, `received ${received} of ${sent - kernel.listen - kernel.allocation}`);

    // A second overload of the allocation port, then it closes before a pass: its drops are not lost with it.
    floodWhileHeld([alloc], perPort);
    const allocDrops = kernelDrops(alloc);
    assert.ok(allocDrops > kernel.allocation);
    assert.equal(sockets.closePort(4, alloc), true);
    sockets.pollDrops();
    assert.deepEqual(sockets.stats().kernelDropped, { listen: kernel.listen, allocation: allocDrops });
  } finally {
    await sockets.close();
  }
});

test('the sidecar exports them: turnpike.socket.dropped on /metrics and sockets.kernelDropped on /status', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tpdrops-'));
  dirs.push(dir);
  const config: Config = {
    ...configSchema.parse({ ebpf: 'off', listenAddresses: '127.0.0.1', stateDir: dir }),
    listenPort: 0,
    admin: { host: '127.0.0.1', port: 0 },
  };
  const out = sink();
  const hub = createLogHub({ destination: out.stream as never, filter: 'info' });
  const telemetry = await startTelemetry({ config, version: '0.0.0-test', stateDir: dir, logHub: hub });
  const sidecar = await Sidecar.start(config, { version: '0.0.0-test', logHub: hub, telemetry });
  try {
    const base = `http://127.0.0.1:${sidecar.adminAddress.port}`;
    const status = async () => (await (await fetch(`${base}/status`)).json()) as { sockets: { kernelDropped: { listen: number }; buffers: { recv: number } } };
    const metric = async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      const m = /^turnpike_socket_dropped_total\{[^}]*socket="listen"[^}]*\} (\d+)/m.exec(text);
      return m ? Number(m[1]) : 0;
    };
    const listen = listenPortOf(out.lines);
    assert.equal(await metric(), 0);
    // The sidecar's default buffers (4 MiB asked, clamped by net.core.rmem_max): enough datagrams to overflow the largest.
    const recv = (await status()).sockets.buffers.recv;
    floodWhileHeld([listen], Math.max(5000, Math.ceil((3 * recv) / 1000)), 1000);
    const kernel = kernelDrops(listen);
    assert.ok(kernel > 0, 'the flood overflowed the listen socket');
    // Read once a second: within a few.
    let seen = -1;
    for (const t0 = Date.now(); Date.now() - t0 < 10_000 && seen !== kernel; await new Promise((r) => setTimeout(r, 100))) seen = await metric();
    assert.equal(seen, kernel, 'turnpike_socket_dropped_total{socket="listen"} is the kernel\'s count');
    assert.equal((await status()).sockets.kernelDropped.listen, kernel);
    await until(() => out.find((l) => l.msg?.startsWith('udp receive buffers overflowed')) !== undefined, 'the overflow logged');
    assert.equal(out.find((l) => l.msg?.startsWith('udp receive buffers overflowed'))!.listen, kernel);
  } finally {
    await sidecar.stop();
    await telemetry.shutdown();
  }
});

/** The listen port from the sidecar's "listen socket bound" line. */
function listenPortOf(lines: Record<string, any>[]): number {
  const l = lines.find((x) => x.msg === 'listen socket bound');
  assert.ok(l, 'listen socket bound');
  return l.port as number;
}
