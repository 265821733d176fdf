// TURN over TCP/TLS in the sans-IO server (RFC 8656 §3.1): a connection is
// its own 5-tuple (LocalEndpoint.connection), replies and relayed data go back
// on it, its channels never reach the kernel's data plane, and its allocation
// dies with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METHOD, encodeChannelData } from '../../../src/relay/stun/index.ts';
import type { LocalEndpoint, Output, TransportAddress } from '../../../src/relay/server/types.ts';
import pino from 'pino';
import { LineBudget } from '../../../src/shared/logger.ts';
import { Harness, LISTEN4, LISTEN_PORT, addr, closePort, event, expectOutputs, openPort } from './harness.ts';

const client = addr('198.51.100.1', 40001);
const peer = addr('203.0.113.5', 6000);
const TCP: LocalEndpoint = { family: 4, port: LISTEN_PORT, connection: 7, transport: 'tcp' };
const TLS: LocalEndpoint = { family: 4, port: 5349, connection: 8, transport: 'tls' };

/**
 * The harness's client speaks from LISTEN4; while `stream` is set, its input
 * arrives on that connection instead, and replies on it are shown as from
 * LISTEN4 again (so the harness's matchers apply), each one recorded in `via`.
 */
class StreamHarness extends Harness {
  stream: LocalEndpoint | undefined;
  readonly via: LocalEndpoint[] = [];

  override input(data: Uint8Array, local: LocalEndpoint, remote: TransportAddress): Output[] {
    return super.input(data, this.stream !== undefined && local === LISTEN4 ? this.stream : local, remote);
  }

  override drain(): Output[] {
    return super.drain().map((o) => {
      if (o.kind !== 'send' || o.from.connection === undefined) return o;
      this.via.push(o.from);
      return { ...o, from: LISTEN4 };
    });
  }
}

function streamClient(h: StreamHarness, local: LocalEndpoint) {
  h.stream = local;
  return h.client(client);
}

test('a TLS connection on its own port is client traffic; replies go back on the connection', () => {
  const h = new StreamHarness();
  const c = streamClient(h, TLS);
  const { ports } = c.allocate();
  assert.equal(h.server.stats().allocations, 1);
  // Channel events stay out of the data plane's outputs (the kernel serves UDP clients only).
  c.createPermission(peer);
  c.channelBind(0x4001, peer);
  assert.ok(h.via.length >= 4 && h.via.every((l) => l === TLS), 'every reply went back on the connection');
  assert.deepEqual(h.server.snapshot().map((e) => e.type), ['allocation-port-opened']);
  // Peer data comes back as ChannelData on the connection.
  const outs = h.input(new Uint8Array([1, 2, 3]), { family: 4, port: ports.v4! }, peer);
  expectOutputs(outs, [(o) => assert.ok(o.kind === 'send' && o.to.port === client.port && o.data[0] === 0x40)]);
  assert.equal(h.via.at(-1), TLS);
  // And client ChannelData goes to the peer.
  expectOutputs(h.input(encodeChannelData(0x4001, new Uint8Array([9])), TLS, client), [(o) => assert.ok(o.kind === 'send' && o.to.port === peer.port)]);
});

test('the same address over UDP and over a connection are two allocations; closing the connection deletes only its own', () => {
  const h = new StreamHarness();
  const udp = h.client(client);
  udp.allocate();
  h.stream = TCP;
  const tcp = h.client(client);
  const { ports } = tcp.allocate();
  assert.equal(h.server.stats().allocations, 2);
  h.server.connectionClosed(TCP, client, h.now);
  expectOutputs(h.drain(), [event('allocation-port-closed'), closePort(4, ports.v4)]);
  assert.equal(h.server.stats().allocations, 1);
  // A later close of an unknown connection is a no-op.
  h.server.connectionClosed({ ...TCP, connection: 99 }, client, h.now);
  expectOutputs(h.drain(), []);
});

test('an Allocate waiting for its port is given up when its connection closes', () => {
  const h = new StreamHarness();
  const c = streamClient(h, TCP);
  c.challenge();
  const [open] = expectOutputs(c.request(METHOD.ALLOCATE, { requestedTransport: 17 }), [openPort(4)]) as [{ token: number; port: number }];
  h.server.connectionClosed(TCP, client, h.now);
  expectOutputs(h.drain(), [closePort(4, open.port)]);
  expectOutputs(h.portOpened(open.token, true), []);
  assert.equal(h.server.stats().allocations, 0);
});

test('stats and session lines name the client transport: allocations, relayed bytes and errors of a TLS client count under tls', () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const h = new StreamHarness({ sessionLog: { logger, budget: new LineBudget(1000, 4096) } });
  const c = streamClient(h, TLS);
  const { ports } = c.allocate();
  c.createPermission(peer);
  c.channelBind(0x4001, peer);
  h.input(new Uint8Array([1, 2, 3]), { family: 4, port: ports.v4! }, peer);
  h.input(encodeChannelData(0x4001, new Uint8Array([9, 9])), TLS, client);
  const s = h.server.stats();
  assert.deepEqual(
    Object.fromEntries(Object.entries(s.byTransport!).map(([t, v]) => [t, v.allocations])),
    { udp: 0, tcp: 0, tls: 1 },
  );
  assert.deepEqual(s.byTransport!.tls.relayedByFamily.ipv4, { toPeer: { packets: 1, bytes: 2 }, toClient: { packets: 1, bytes: 3 } });
  assert.deepEqual(s.byTransport!.udp.relayedByFamily.ipv4, { toPeer: { packets: 0, bytes: 0 }, toClient: { packets: 0, bytes: 0 } });
  assert.deepEqual(s.relayedByFamily!.ipv4, s.byTransport!.tls.relayedByFamily.ipv4, 'the family totals are the sums over transports');
  assert.equal(s.byTransport!.tls.errors, 1, 'the 401 challenge');
  assert.equal(s.byTransport!.udp.errors, 0);
  const session = lines.filter((l) => l.client !== undefined);
  assert.deepEqual(session.map((l) => l.msg), ['request refused', 'allocation created', 'permission installed', 'channel bound']);
  assert.ok(session.every((l) => l.transport === 'tls'), JSON.stringify(session));
});
