// The sidecar no longer obeys the relay blindly: a frame outside the limits
// is not acted on, closes the link and is logged as a security event; relay
// log lines cannot pass for the sidecar's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createSocket } from 'node:dgram';
import { configSchema } from '../../src/config/schema.ts';
import { LinkClient } from '../../src/link/client.ts';
import { LinkServer } from '../../src/link/server.ts';
import type { LinkConnection } from '../../src/link/connection.ts';
import type { Frame } from '../../src/link/protocol.ts';
import type { ChannelBinding } from '../../src/shared/binding.ts';
import { UdpSockets } from '../../src/sidecar/sockets.ts';
import { RelayBridge, type ChannelMap } from '../../src/sidecar/sockets/relay-bridge.ts';
import { relayLogLine } from '../../src/sidecar/relay-line.ts';
import { relayLimits } from '../../src/sidecar/sockets/relay-guard.ts';
import { SecurityEvents, type SecurityRule } from '../../src/sidecar/security.ts';
import { captureLogger, tempSocketPath, until } from '../link/helpers.ts';

class RecordingMap implements ChannelMap {
  readonly ops: string[] = [];
  install(b: ChannelBinding) { this.ops.push(`install ${b.peer.address}`); }
  remove(b: ChannelBinding) { this.ops.push(`remove ${b.peer.address}`); }
  replaceAll(bs: readonly ChannelBinding[]) { this.ops.push(`replace ${bs.length}`); }
  clear() { this.ops.push('clear'); }
}

async function world() {
  const { path, cleanup } = tempSocketPath();
  const config = configSchema.parse({ listenPort: 3478, portRange: '41000-41099', allowedPeers: '127.0.0.0/8', linkControlRate: 50 });
  const sockets = new UdpSockets({ listenPort: 0, listenAddresses: ['127.0.0.1'], onPacket: () => {} });
  await sockets.listenAll();
  const slog = captureLogger('sidecar');
  const refusals: SecurityRule[] = [];
  const security = new SecurityEvents(slog.logger, (r) => refusals.push(r));
  const link = new LinkServer({ path, software: 's', logger: captureLogger('link').logger });
  await link.listen();
  const map = new RecordingMap();
  const bridge = new RelayBridge({ server: link, sockets, channels: map, limits: relayLimits(config), security, logger: slog.logger });
  const client = new LinkClient({ path, software: 'r', logger: captureLogger('relay').logger, backoff: { initialMs: 10, maxMs: 20, jitter: 0 } });
  const opened = once(client, 'open') as Promise<[LinkConnection]>;
  client.start();
  const [conn] = await opened;
  await until(() => bridge.stats().relayConnected, 'bridge sees the relay');
  const close = async () => {
    client.stop();
    await link.close();
    await sockets.close();
    cleanup();
  };
  return { conn, bridge, sockets, map, slog, refusals, close };
}

const binding = (peer: string, allocationPort = 41001): ChannelBinding => ({
  client: { family: 4, address: '127.0.0.1', port: 40000 },
  channel: 0x4000,
  peer: { family: 4, address: peer, port: 9 },
  allocationPort,
  allocationPorts: { v4: allocationPort },
  expiresAt: Date.now() + 60_000,
});

async function violates(frame: Frame, rule: SecurityRule, check: (w: Awaited<ReturnType<typeof world>>) => void) {
  const w = await world();
  try {
    const closed = once(w.conn, 'close');
    w.conn.send(frame);
    await closed;
    await until(() => !w.bridge.stats().relayConnected, 'bridge noticed');
    await w.bridge.settled();
    assert.deepEqual(w.refusals, [rule]);
    assert.equal(w.bridge.stats().violations, 1);
    const line = w.slog.records.find((r) => r.event === 'security');
    assert.ok(line, 'a security event was logged');
    assert.equal(line.rule, rule);
    assert.equal(line.level, 50);
    assert.equal(typeof line.detail, 'string');
    check(w);
  } finally {
    await w.close();
  }
}

test('OPEN_PORT below 1024 (or anywhere outside the range): not bound, link closed, security event', async () => {
  await violates({ kind: 'open-port', token: 1, family: 4, port: 1000 }, 'port-range', (w) => {
    assert.equal(w.sockets.hasPort(4, 1000), false);
    assert.equal(w.bridge.stats().portsOpened, 0);
  });
});

test('a binding to a denied peer never reaches the kernel map', async () => {
  await violates({ kind: 'channel-bound', seq: 1, binding: binding('169.254.169.254') }, 'peer-policy', (w) => {
    assert.deepEqual(w.map.ops.filter((o) => o.startsWith('install')), []);
  });
});

test('a datagram from a port outside the range and not the listen port is not sent', async () => {
  const sink = createSocket('udp4');
  sink.bind(0, '127.0.0.1');
  await once(sink, 'listening');
  let got = 0;
  sink.on('message', () => got++);
  try {
    await violates({ kind: 'packet-out', from: { family: 4, port: 53 }, to: { family: 4, address: '127.0.0.1', port: sink.address().port }, data: new Uint8Array(4) }, 'port-not-held', (w) => {
      assert.equal(w.sockets.stats().out.allocation.packets + w.sockets.stats().out.listen.packets, 0);
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(got, 0);
  } finally {
    sink.close();
  }
});

test('control frames over the configured rate close the link', async () => {
  const w = await world();
  try {
    const closed = once(w.conn, 'close');
    for (let i = 0; i < 200; i++) w.conn.send({ kind: 'close-port', family: 4, port: 41000 });
    await closed;
    await until(() => w.refusals.length > 0, 'refusal');
    assert.deepEqual(w.refusals, ['control-rate']);
  } finally {
    await w.close();
  }
});

test('within the limits the relay is served: an in-range port opens, an allowed peer is installed', async () => {
  const w = await world();
  try {
    const answers: Frame[] = [];
    w.conn.on('frame', (f) => answers.push(f));
    w.conn.send({ kind: 'open-port', token: 7, family: 4, port: 41001 });
    w.conn.send({ kind: 'channel-bound', seq: 1, binding: binding('127.0.0.2') });
    await until(() => answers.some((f) => f.kind === 'channel-ack') && answers.some((f) => f.kind === 'port-opened'), 'answers');
    assert.ok(answers.some((f) => f.kind === 'port-opened' && f.ok));
    assert.ok(w.sockets.hasPort(4, 41001));
    assert.deepEqual(w.map.ops, ['install 127.0.0.2']);
    assert.deepEqual(w.refusals, []);
  } finally {
    await w.close();
  }
});

test('relay log lines are marked as the relay\'s: `process` forced, the sidecar\'s own fields namespaced', async () => {
  const forged = relayLogLine(JSON.stringify({ level: 50, process: 'sidecar', event: 'security', rule: 'admin-token', detail: 'fake', msg: 'security: fake', n: 1 }));
  assert.deepEqual(JSON.parse(forged!), { level: 50, process: 'relay', msg: 'security: fake', n: 1, relayFields: { event: 'security', rule: 'admin-token', detail: 'fake' } });
  assert.deepEqual(JSON.parse(relayLogLine('{"level":30,"msg":"hi"}')!), { level: 30, msg: 'hi', process: 'relay' });
  assert.equal(relayLogLine('not json'), undefined);
  assert.equal(relayLogLine('[1]'), undefined);

  const w = await world();
  try {
    const lines: string[] = [];
    w.bridge.on('log', (_l, _m, json) => lines.push(json));
    w.conn.send({ kind: 'log', level: 50, module: 'x', json: JSON.stringify({ level: 50, process: 'sidecar', event: 'security', msg: 'x' }) });
    await until(() => lines.length === 1, 'the log line');
    const line = JSON.parse(lines[0]!);
    assert.equal(line.process, 'relay');
    assert.equal(line.event, undefined);
    assert.deepEqual(line.relayFields, { event: 'security' });
  } finally {
    await w.close();
  }
});
