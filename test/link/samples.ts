// One sample frame (or more) per frame kind, for the codec tests; the golden
// digest in codec.test.ts pins their version-3 bytes.
import { PROTOCOL_VERSION, type Frame } from '../../src/link/protocol.ts';
import type { RelayCounters } from '../../src/link/counters.ts';
import type { ChannelBinding } from '../../src/shared/binding.ts';

const flow = (packets: number) => ({ packets, bytes: packets * 100 });

/** A full COUNTERS snapshot as the relay behind the sidecar sends it. */
export const relayCounters: RelayCounters = {
  allocations: 3,
  permissions: 2,
  channels: 1,
  relayed: { toPeer: flow(10), toClient: flow(9) },
  relayedByFamily: { ipv4: { toPeer: flow(6), toClient: flow(5) }, ipv6: { toPeer: flow(4), toClient: flow(4) } },
  responses: { 'allocate:success': 3, 'allocate:401': 3, 'channel-bind:success': 1 },
  dropped: { 'no-channel': 2 },
  transport: {
    connected: true,
    connects: 1,
    packetsIn: 19,
    packetsOut: 19,
    droppedDisconnected: 0,
    droppedBackpressure: 0,
    droppedHeldOverflow: 0,
    heldForAck: 0,
    ackTimeouts: 0,
    ackFailures: 0,
    openPortsFailedNoLink: 0,
    snapshotsSent: 1,
    snapshotPortFailures: 0,
    logsDropped: 0,
    link: {
      framesOut: 40,
      bytesOut: 4000,
      packetsDropped: 0,
      telemetryDropped: 0,
      oversizeDropped: 0,
      queueBytes: 0,
      queueFrames: 0,
      socketBufferedBytes: 0,
      blockedTimes: 0,
      flushes: 30,
      framesIn: 25,
      bytesIn: 2500,
      readerBufferedBytes: 0,
    },
  },
  logs: { forwarded: 12, local: 3, dropped: 0 },
};

export const binding: ChannelBinding = {
  client: { family: 4, address: '203.0.113.7', port: 50123 },
  channel: 0x4001,
  peer: { family: 6, address: '2001:db8::1', port: 9 },
  allocationPort: 49200,
  allocationPorts: { v4: 49152, v6: 49200 },
  expiresAt: 1_732_000_000_123.5,
};

export const samples: Frame[] = [
  { kind: 'hello', version: PROTOCOL_VERSION, role: 'relay', pid: 4242, software: 'turnpike 0.1.0' },
  { kind: 'hello', version: 7, role: 'sidecar', pid: 1, software: '' },
  { kind: 'reject', code: 'version', reason: 'speaks version 2 — not 1' },
  { kind: 'reject', code: 'busy', reason: '' },
  { kind: 'packet-in', local: { family: 4, port: 3478 }, remote: { family: 4, address: '198.51.100.2', port: 1 }, data: new Uint8Array([1, 2, 3]) },
  { kind: 'packet-in', local: { family: 6, port: 3478 }, remote: { family: 6, address: 'fe80::1%eth0', port: 65535 }, data: new Uint8Array(0) },
  { kind: 'packet-out', from: { family: 6, port: 49999 }, to: { family: 6, address: '::1', port: 5000 }, data: new Uint8Array(65535).fill(7) },
  { kind: 'open-port', token: 0xffffffff, family: 6, port: 65535 },
  { kind: 'port-opened', token: 3, family: 4, port: 50000, ok: false, error: 'EADDRINUSE' },
  { kind: 'port-opened', token: 4, family: 6, port: 50001, ok: true, error: '' },
  { kind: 'close-port', family: 4, port: 49152 },
  { kind: 'channel-bound', seq: 1, binding },
  { kind: 'channel-refreshed', seq: 2, binding: { ...binding, allocationPorts: { v4: 49152 } } },
  { kind: 'channel-unbound', seq: 3, binding: { ...binding, allocationPorts: {} } },
  { kind: 'channel-ack', seq: 1, ok: true, error: '' },
  { kind: 'channel-ack', seq: 2, ok: false, error: 'map full (E2BIG)' },
  { kind: 'snapshot-begin', generation: 9 },
  { kind: 'snapshot-port', family: 6, port: 49153 },
  { kind: 'snapshot-channel', binding },
  { kind: 'snapshot-end', generation: 9, ports: 1, channels: 1 },
  { kind: 'snapshot-ack', generation: 9, failedTotal: 2, failed: [{ family: 4, port: 1, error: 'EACCES' }, { family: 6, port: 2, error: 'EADDRINUSE' }] },
  { kind: 'ping', nonce: 77 },
  { kind: 'pong', nonce: 77 },
  { kind: 'log', level: 40, module: 'server', json: '{"msg":"héllo","n":1}' },
  { kind: 'counters', counters: relayCounters },
  { kind: 'log-filter', filter: 'info,server=debug' },
  { kind: 'drain' },
  { kind: 'drain', alternate: { family: 6, address: '2001:db8::5', port: 3478 } },
  { kind: 'state', id: 7, final: false, data: new Uint8Array(Buffer.from('{"version":1,')) },
  { kind: 'state', id: 7, final: true, data: new Uint8Array(0) },
  // version 2: the sidecar's HELLO names the relayed addresses; REJECT forbidden
  { kind: 'hello', version: PROTOCOL_VERSION, role: 'sidecar', pid: 9, software: 'turnpike-sidecar/0.1.0', relayAddresses: { v4: '203.0.113.5', v6: '2001:db8::5' } },
  { kind: 'hello', version: PROTOCOL_VERSION, role: 'sidecar', pid: 9, software: 's', relayAddresses: { v6: '2001:db8::5' } },
  { kind: 'reject', code: 'forbidden', reason: 'process 7 of uid 1000 connected to the link' },
];
