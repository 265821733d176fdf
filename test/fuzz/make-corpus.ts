// Writes the committed seed corpus, test/fuzz/corpus/<target>/: valid inputs
// for each target, built with the project's own encoders so they stay valid
// when the encoders do. Deterministic (fixed transaction ids and payloads):
// rerunning it leaves git clean unless an encoder changed.
//   node --import tsx test/fuzz/make-corpus.ts
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { METHOD, encodeChannelData, encodeMessage, longTermKey, type StunAttributes, type StunClass, type EncodeOptions } from '../../src/relay/stun/index.ts';
import { encodeFrame } from '../../src/link/index.ts';
import { issueNonce } from '../../src/relay/auth/index.ts';
import { samples } from '../link/samples.ts';
import { channelData, payloadOf } from '../bpf/frames.ts';
import { BINDINGS, RELAY4, alloc, inFrame, toListen } from '../bpf/golden-scene.ts';
import { CORPUS_ROOT, formatHex } from './engine/corpus.ts';
import { PEERS, REALM, RELAY, type Script, type Step } from './targets/server.ts';

const KEY = longTermKey('alice', REALM, 'alice-pw');
const NONCE = issueNonce('fuzz-nonce-secret', '198.51.100.1', 1_700_000_000_000, 3600);
let tx = 0;
const txid = () => Uint8Array.from([0x66, 0x75, 0x7a, 0x7a, 0, 0, 0, 0, 0, 0, 0, ++tx]);
const auth = { username: 'alice', realm: REALM, nonce: NONCE };
const signed: EncodeOptions = { key: KEY, fingerprint: true };

function stun(method: number, cls: StunClass, attributes: StunAttributes, opts: EncodeOptions = { fingerprint: true }): Uint8Array {
  return encodeMessage({ method, cls, transactionId: txid(), attributes }, opts);
}

const STUN: Record<string, Uint8Array> = {
  'binding-request': stun(METHOD.BINDING, 'request', {}),
  'allocate-request-sha1': stun(METHOD.ALLOCATE, 'request', { requestedTransport: 17, ...auth }, signed),
  'allocate-request-dual-even-both': stun(METHOD.ALLOCATE, 'request', { requestedTransport: 17, additionalAddressFamily: 6, evenPort: { reserve: false }, lifetime: 1200, ...auth }, { ...signed, integrity: 'both' }),
  'allocate-request-token-sha256': stun(METHOD.ALLOCATE, 'request', { requestedTransport: 17, reservationToken: payloadOf(8, 3), dontFragment: true, ...auth }, { ...signed, integrity: 'sha256' }),
  'create-permission-two-peers': stun(METHOD.CREATE_PERMISSION, 'request', { xorPeerAddress: [PEERS[0]!, PEERS[3]!], ...auth }, signed),
  'channel-bind': stun(METHOD.CHANNEL_BIND, 'request', { channelNumber: 0x4000, xorPeerAddress: [PEERS[0]!], ...auth }, signed),
  'refresh-zero': stun(METHOD.REFRESH, 'request', { lifetime: 0, requestedAddressFamily: 4, ...auth }, signed),
  'send-indication': stun(METHOD.SEND, 'indication', { xorPeerAddress: [PEERS[2]!], data: payloadOf(40, 1), dontFragment: true }),
  'data-indication-v6': stun(METHOD.DATA, 'indication', { xorPeerAddress: [PEERS[4]!], data: payloadOf(33, 2) }, {}),
  'allocate-success': stun(METHOD.ALLOCATE, 'success', {
    xorRelayedAddress: [{ family: 4, address: RELAY.v4, port: 50002 }, { family: 6, address: RELAY.v6, port: 50003 }],
    xorMappedAddress: { family: 4, address: '198.51.100.1', port: 40001 },
    lifetime: 600,
    reservationToken: payloadOf(8, 4),
    software: 'turnpike',
  }, signed),
  'error-401': stun(METHOD.ALLOCATE, 'error', { errorCode: { code: 401, reason: 'Unauthenticated' }, realm: REALM, nonce: NONCE }),
  'error-420-unknown': stun(METHOD.ALLOCATE, 'error', { errorCode: { code: 420, reason: 'Unknown Attribute' }, unknownAttributes: [0x7777, 0x0031] }),
  'error-440-address-error-code': stun(METHOD.ALLOCATE, 'success', { addressErrorCode: { family: 6, code: 440, reason: 'Address Family not Supported' }, lifetime: 600 }),
  'ice-binding-request': stun(METHOD.BINDING, 'request', { priority: 0x6e0001ff, iceControlling: 0x932ff9b151263b36n, useCandidate: true, username: 'evtj:h6vY', software: 'ice' }, { key: new TextEncoder().encode('VOkJxbRl1RmTxUk/WvJxBt'), fingerprint: true }),
  'channel-data': encodeChannelData(0x4000, payloadOf(21, 5)),
  'channel-data-padded': encodeChannelData(0x4fff, payloadOf(5, 6), { pad: true }),
};

const c = (client: number) => ({ client });
const SCRIPTS: Record<string, Script> = {
  'relay-both-ways-v4': {
    comment: 'allocate, permit, bind, relay ChannelData and Send out, peer data in (channel and Data indication), refresh, permission expiry, delete',
    steps: [
      { op: 'allocate', ...c(0) }, { op: 'ports' }, { op: 'permission', ...c(0), peers: [0] }, { op: 'bind', ...c(0), channel: 0x4000, peer: 0 },
      { op: 'channel-data', ...c(0), channel: 0x4000, size: 20 }, { op: 'peer-data', ...c(0), peer: 0, size: 30 }, { op: 'send', ...c(0), peer: 1, size: 10 },
      { op: 'peer-data', ...c(0), peer: 1, size: 8 }, { op: 'permission', ...c(0), peers: [2] }, { op: 'peer-data', ...c(0), peer: 2, size: 8 },
      { op: 'refresh', ...c(0), lifetime: 600 }, { op: 'time', ms: 300_001 }, { op: 'peer-data', ...c(0), peer: 2, size: 8 },
      { op: 'channel-data', ...c(0), channel: 0x4000, size: 4 }, { op: 'refresh', ...c(0), lifetime: 0 },
    ],
  },
  'dual-stack': {
    comment: 'a dual allocation: IPv4 and IPv6 peers, channels in both families, expiry of channel and hold',
    steps: [
      { op: 'allocate', ...c(0), family: 'dual' }, { op: 'ports' }, { op: 'permission', ...c(0), peers: [0, 3] },
      { op: 'bind', ...c(0), channel: 0x4001, peer: 3 }, { op: 'bind', ...c(0), channel: 0x4002, peer: 0 },
      { op: 'channel-data', ...c(0), channel: 0x4001, size: 50 }, { op: 'peer-data', ...c(0), peer: 3, size: 50 },
      { op: 'time', ms: 600_000 }, { op: 'channel-data', ...c(0), channel: 0x4001, size: 5 }, { op: 'bind', ...c(0), channel: 0x4002, peer: 3 },
      { op: 'bind', ...c(0), channel: 0x4001, peer: 3 }, { op: 'time', ms: 300_000 }, { op: 'time', ms: -1 },
    ],
  },
  'ipv6-client': {
    comment: 'an IPv6 client with an IPv6 allocation (REQUESTED-ADDRESS-FAMILY)',
    steps: [
      { op: 'allocate', ...c(3), family: 6 }, { op: 'ports' }, { op: 'bind', ...c(3), channel: 0x4fff, peer: 4 },
      { op: 'channel-data', ...c(3), channel: 0x4fff, size: 100 }, { op: 'peer-data', ...c(3), peer: 4, size: 100 }, { op: 'send', ...c(3), peer: 0, size: 3 },
    ],
  },
  'even-port-reservation': {
    comment: 'EVEN-PORT with R: a reservation token, redeemed by a second client',
    steps: [
      { op: 'allocate', ...c(0), even: true, reserve: true }, { op: 'ports' }, { op: 'allocate', ...c(1), token: true }, { op: 'ports' },
      { op: 'time', ms: 31_000 }, { op: 'allocate', ...c(2), token: true },
    ],
  },
  'port-failures': {
    comment: 'port opens that fail, are retried, time out, and results for tokens no longer pending',
    steps: [
      { op: 'allocate', ...c(0) }, { op: 'ports', ok: false }, { op: 'ports', ok: false }, { op: 'ports', ok: false },
      { op: 'allocate', ...c(1), family: 'dual' }, { op: 'ports', ok: true }, { op: 'time', ms: 11_000 }, { op: 'ports', ok: true },
      { op: 'allocate', ...c(1) }, { op: 'ports' }, { op: 'port-lost', ...c(1) }, { op: 'refresh', ...c(1) },
    ],
  },
  'two-clients': {
    comment: 'two allocations of one user: same channel numbers, one peer, deletion of one leaves the other',
    steps: [
      { op: 'allocate', ...c(0) }, { op: 'allocate', ...c(1) }, { op: 'ports' }, { op: 'bind', ...c(0), channel: 0x4000, peer: 0 },
      { op: 'bind', ...c(1), channel: 0x4000, peer: 0 }, { op: 'peer-data', ...c(0), peer: 0, size: 9 }, { op: 'peer-data', ...c(1), peer: 0, size: 9 },
      { op: 'refresh', ...c(0), lifetime: 0 }, { op: 'channel-data', ...c(1), channel: 0x4000, size: 9 }, { op: 'channel-data', ...c(0), channel: 0x4000, size: 9 },
    ],
  },
  'refused-peers': {
    comment: 'peers the policy refuses: private, loopback, mapped, metadata, the relay itself, link-local',
    steps: [
      { op: 'allocate', ...c(0), family: 'dual' }, { op: 'ports' },
      ...PEERS.map((_, i) => ({ op: 'permission', ...c(0), peers: [i] }) as Step),
      ...PEERS.map((_, i) => ({ op: 'bind', ...c(0), channel: 0x4000 + i, peer: i }) as Step),
      ...PEERS.map((_, i) => ({ op: 'send', ...c(0), peer: i, size: 4 }) as Step),
    ],
  },
  retransmissions: {
    comment: 'an Allocate retransmitted while pending and after success; a ChannelBind retransmitted',
    steps: [
      { op: 'allocate', ...c(0) }, { op: 'retransmit', ...c(0) }, { op: 'ports' }, { op: 'retransmit', ...c(0) },
      { op: 'bind', ...c(0), channel: 0x4000, peer: 0 }, { op: 'retransmit', ...c(0) }, { op: 'time', ms: 3_700_000 }, { op: 'retransmit', ...c(0) },
    ],
  },
  'quota-and-junk': {
    comment: 'every client allocates at once; junk and Binding requests in between',
    steps: [
      ...[0, 1, 2, 3, 4].map((i) => ({ op: 'allocate', ...c(i) }) as Step), { op: 'ports' }, { op: 'binding', ...c(0) },
      { op: 'junk', ...c(1) }, { op: 'junk', ...c(2) }, { op: 'time', ms: 1000 }, { op: 'ports' },
    ],
  },
};

const X4 = BINDINGS[0]!;
const X6 = BINDINGS[3]!;
const XDP: Record<string, Uint8Array> = Object.fromEntries(
  BINDINGS.flatMap((b, i) => [
    [`channel-data-${i}-0x${b.channel.toString(16)}`, inFrame(b.client, toListen(b.client), channelData(b.channel, payloadOf(40 + i, i)))],
    [`udp-from-peer-${i}-port-${b.allocationPort}`, inFrame(b.peer, alloc(b.peer, b.allocationPort), payloadOf(30 + i, i))],
  ]),
);
XDP['channel-data-padded-v4'] = inFrame(X4.client, toListen(X4.client), channelData(X4.channel, payloadOf(5, 9), 3, 0xee));
XDP['udp-v4-no-checksum'] = inFrame(X4.peer, alloc(X4.peer, X4.allocationPort), payloadOf(64, 10), { udpChecksum: 'zero' });
XDP['channel-data-v6-large'] = inFrame(X6.client, toListen(X6.client), channelData(X6.channel, payloadOf(1400, 11)));
XDP['stun-to-listen-v4'] = inFrame(X4.client, { address: RELAY4, port: 3478 }, STUN['binding-request']!);

const LINK: Record<string, Uint8Array> = {
  ...Object.fromEntries(samples.map((f, i) => [`${String(i).padStart(2, '0')}-${f.kind}`, encodeFrame(f)])),
  'session-relay-to-sidecar': Buffer.concat([0, 16, 17, 18, 19, 11, 6, 23, 24, 21].map((i) => encodeFrame(samples[i]!))),
  'session-sidecar-to-relay': Buffer.concat([1, 20, 8, 9, 14, 15, 4, 25, 22].map((i) => encodeFrame(samples[i]!))),
};

function write(dir: string, files: Record<string, string>): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
}

const hexFiles = (inputs: Record<string, Uint8Array>, what: string) =>
  Object.fromEntries(Object.entries(inputs).map(([name, b], i) => [`${String(i + 1).padStart(2, '0')}-${name}.hex`, formatHex(`${what}: ${name}`, b)]));

write(join(CORPUS_ROOT, 'stun'), hexFiles(STUN, 'STUN/TURN datagram'));
write(join(CORPUS_ROOT, 'link'), hexFiles(LINK, 'link byte stream'));
write(join(CORPUS_ROOT, 'xdp'), hexFiles(XDP, 'Ethernet frame into the XDP program'));
write(join(CORPUS_ROOT, 'server'), Object.fromEntries(Object.entries(SCRIPTS).map(([name, s], i) => [`${String(i + 1).padStart(2, '0')}-${name}.json`, `${JSON.stringify(s, null, 1)}\n`])));
write(join(CORPUS_ROOT, 'server', 'datagrams'), hexFiles(STUN, 'client datagram'));
console.log(`corpus written to ${CORPUS_ROOT}`);
