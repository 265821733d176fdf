// The relay's telemetry path over a real link (LinkServer on a temp Unix
// socket, the relay's SidecarTransport as client): log lines become LOG
// frames while the link is open, go to the local destination while it is
// not, are dropped and counted (never queued without bound) when the link's
// queue is full; counters go as COUNTERS frames; a LOG_FILTER frame changes
// the relay's module levels at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinkServer } from '../../../src/link/server.ts';
import type { LinkConnection } from '../../../src/link/connection.ts';
import { HEADER_BYTES, LENGTH_BYTES, decodeFrame, encodeFrame, type Frame } from '../../../src/link/protocol.ts';
import { SidecarTransport } from '../../../src/relay/transport/sidecar.ts';
import { createLogHub } from '../../../src/shared/logger.ts';
import { LinkLogDestination, lineMeta, startRelayTelemetry } from '../../../src/relay/telemetry/index.ts';
import type { ServerStats } from '../../../src/relay/server/types.ts';
import { captureLogger, tempSocketPath, until } from '../../link/helpers.ts';

const stats = (toPeer = 0): ServerStats => ({
  allocations: 1,
  permissions: 0,
  channels: 0,
  relayed: { toPeer: { packets: toPeer, bytes: toPeer * 10 }, toClient: { packets: 0, bytes: 0 } },
  responses: {},
  dropped: {},
});

async function setup(opts: { maxQueueBytes?: number } = {}) {
  const sock = tempSocketPath();
  const quiet = captureLogger('test');
  const server = new LinkServer({ path: sock.path, software: 'test-sidecar', logger: quiet.logger });
  await server.listen();
  const frames: Frame[] = [];
  let conn: LinkConnection | undefined;
  server.on('open', (c) => {
    conn = c;
    c.on('frame', (f) => frames.push(f));
  });
  const local: string[] = [];
  const destination = new LinkLogDestination({ write: (l: string) => void local.push(l) });
  const logs = createLogHub({ filter: 'info', destination });
  const transport = new SidecarTransport({
    path: sock.path,
    software: 'test-relay',
    logger: quiet.logger,
    snapshot: () => [],
    backoff: { initialMs: 10, maxMs: 50 },
    ...(opts.maxQueueBytes ? { maxQueueBytes: opts.maxQueueBytes } : {}),
  });
  let toPeer = 0;
  const telemetry = startRelayTelemetry({ link: transport, server: { stats: () => stats(toPeer) }, logs, destination, countersIntervalMs: 50 });
  const close = async () => {
    telemetry.close();
    transport.stop();
    await server.close();
    sock.cleanup();
  };
  return { server, frames, local, destination, logs, transport, close, conn: () => conn, setToPeer: (n: number) => (toPeer = n) };
}

test('lineMeta reads pino level and module, with defaults', () => {
  assert.deepEqual(lineMeta('{"level":40,"time":1,"module":"server","msg":"x"}\n'), { level: 40, module: 'server' });
  assert.deepEqual(lineMeta('not json'), { level: 30, module: 'relay' });
});

test('lines go to stdout without a link, over the link once it is open', async () => {
  const s = await setup();
  try {
    s.logs.get('server').info({ n: 1 }, 'before the link');
    assert.equal(s.local.length, 1);
    assert.match(s.local[0]!, /before the link/);
    s.transport.start();
    await until(() => s.transport.connected, 'link open');
    s.logs.get('server').warn({ n: 2 }, 'over the link');
    await until(() => s.frames.some((f) => f.kind === 'log'), 'LOG frame');
    const f = s.frames.find((x) => x.kind === 'log' && x.json.includes('over the link'));
    assert.ok(f && f.kind === 'log');
    assert.equal(f.level, 40);
    assert.equal(f.module, 'server');
    assert.equal(JSON.parse(f.json).n, 2, 'the frame carries the pino JSON object');
    assert.ok(!s.local.some((l) => l.includes('over the link')), 'not printed locally as well');
    assert.deepEqual(s.destination.stats(), { forwarded: 1, local: 1, dropped: 0 });
  } finally {
    await s.close();
  }
});

test('a full link queue drops and counts lines instead of growing', async () => {
  const s = await setup({ maxQueueBytes: 4096 });
  try {
    s.transport.start();
    await until(() => s.transport.connected, 'link open');
    // One event-loop turn: nothing is flushed meanwhile, so the bound is reached.
    const filler = 'x'.repeat(200);
    for (let i = 0; i < 200; i++) s.logs.get('server').info({ i, filler }, 'storm');
    const st = s.destination.stats();
    assert.equal(st.forwarded + st.dropped, 200);
    assert.ok(st.dropped > 0 && st.forwarded > 0, JSON.stringify(st));
    assert.ok(st.forwarded * 300 <= 4096 + 300, `at most the queue bound was admitted: ${JSON.stringify(st)}`);
    await until(() => s.frames.filter((f) => f.kind === 'log').length === st.forwarded, 'admitted lines delivered');
    assert.equal(s.transport.stats().logsDropped, st.dropped);
  } finally {
    await s.close();
  }
});

test('counters go as COUNTERS frames: at once on open and on the interval', async () => {
  const s = await setup();
  try {
    s.transport.start();
    await until(() => s.frames.some((f) => f.kind === 'counters'), 'first counters');
    s.setToPeer(7);
    await until(() => s.frames.some((f) => f.kind === 'counters' && f.counters.relayed.toPeer.packets === 7), 'updated counters');
    const last = s.frames.filter((f) => f.kind === 'counters').at(-1)!;
    assert.ok(last.kind === 'counters');
    const body = last.counters;
    assert.equal(body.allocations, 1);
    assert.ok(body.logs && typeof body.logs.forwarded === 'number', 'the log destination counters ride along');
  } finally {
    await s.close();
  }
});

test('LOG_FILTER from the sidecar changes the named module at once; garbage is refused', async () => {
  const s = await setup();
  try {
    s.transport.start();
    await until(() => s.conn()?.state === 'open' && s.transport.connected, 'link open');
    assert.equal(s.logs.get('server').level, 'info');
    s.conn()!.send({ kind: 'log-filter', filter: 'info,server=debug' });
    await until(() => s.logs.get('server').level === 'debug', 'server at debug');
    assert.equal(s.logs.get('transport').level, 'info', 'other modules unchanged');
    s.conn()!.send({ kind: 'log-filter', filter: 'server=loud' });
    await until(() => s.frames.some((f) => f.kind === 'log' && f.json.includes('does not parse')), 'refusal logged');
    assert.equal(s.logs.get('server').level, 'debug');
  } finally {
    await s.close();
  }
});

test('LOG_FILTER with a stream filter: the relay makes the lines the stream wants and sends them; a closed link stops them', async () => {
  const s = await setup();
  try {
    s.transport.start();
    await until(() => s.conn()?.state === 'open' && s.transport.connected, 'link open');
    s.conn()!.send({ kind: 'log-filter', filter: 'info', stream: 'debug' });
    await until(() => s.logs.get('session').level === 'debug', 'session at debug for the stream');
    assert.equal(s.logs.filter().defaultLevel, 'info', 'the local filter is unchanged');
    await until(() => s.frames.some((f) => f.kind === 'log' && f.json.includes('stream filter set by the sidecar')), 'change logged');
    s.logs.get('session').debug({ client: '198.51.100.1:40001' }, 'allocation created');
    await until(() => s.frames.some((f) => f.kind === 'log' && f.level === 20 && f.json.includes('allocation created')), 'debug line over the link');
    // Streaming off: back to the local level.
    s.conn()!.send({ kind: 'log-filter', filter: 'info' });
    await until(() => s.logs.get('session').level === 'info', 'session back at info');
    s.conn()!.send({ kind: 'log-filter', filter: 'info', stream: 'debug' });
    await until(() => s.logs.get('session').level === 'debug', 'streaming again');
    // The sidecar goes away: nobody reads the stream, and nothing made for it is printed.
    await s.server.close();
    await until(() => s.logs.get('session').level === 'info', 'stream filter dropped with the link');
    s.logs.get('session').debug('not made');
    assert.ok(!s.local.some((l) => l.includes('not made')));
  } finally {
    await s.close().catch(() => {});
  }
});

test('the LOG_FILTER frame carries the stream filter after a newline; without it nothing is streamed', () => {
  for (const f of [{ kind: 'log-filter', filter: 'info,server=debug' }, { kind: 'log-filter', filter: 'info', stream: 'debug,bpf=trace' }] as const) {
    const buf = encodeFrame(f);
    const r = decodeFrame(buf, LENGTH_BYTES, buf.length);
    assert.ok(r.ok);
    assert.deepEqual(r.frame, f);
  }
  assert.equal(encodeFrame({ kind: 'log-filter', filter: 'info', stream: 'debug' }).subarray(HEADER_BYTES).toString(), 'info\ndebug');
});
