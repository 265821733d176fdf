// Issue 5 on the real pair (loopback, eBPF off): after an end-to-end relay
// run through a real allocation, both the OTLP export (real gRPC exporter
// against an in-test collector) and /metrics report relayed bytes and packets
// equal to what the test sent and the peer received. The bound channel's
// traffic is relayed by the sidecar's userspace fast path (datapath
// "sidecar", issue 13), so the relay's own counters (datapath "userspace",
// COUNTERS frames) do not see it and no datagram is counted twice.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { startOtlpCollector, pointValue, type OtlpCollector, type DecodedExport } from '../helpers/otlp-collector.ts';
import { TurnClient, toStunAddress } from '../helpers/turn-client.ts';
import { PASS, USER, startLoopbackPair, waitUntil, type LoopbackPair } from './telemetry-pair-harness.ts';

const N_TO_PEER = 25;
const SIZE_TO_PEER = 111;
const N_TO_CLIENT = 17;
const SIZE_TO_CLIENT = 73;
const CHANNEL = 0x4001;

let collector: OtlpCollector;
let pair: LoopbackPair;

before(async () => {
  collector = await startOtlpCollector();
  pair = await startLoopbackPair({
    sidecarEnv: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, TURNPIKE_METRICS_INTERVAL: '1' },
  });
});

after(async () => {
  await pair?.stop();
  await collector?.close();
});

/** Prometheus text: the sum of `name` over the series whose labels include `labels` (undefined: none). */
function promValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    const body = line.slice(name.length + 1, line.indexOf('}'));
    const got = Object.fromEntries([...body.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** OTLP: the sum of a metric over the points whose attributes include `match`. */
function otlpValue(e: DecodedExport, name: string, match: Record<string, string>): number | undefined {
  const pts = (e.metrics.find((m) => m.name === name)?.points ?? []).filter((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v));
  return pts.length === 0 ? undefined : pts.reduce((n, p) => n + p.value, 0);
}

test('relayed bytes and packets (sidecar fast path) in OTLP and /metrics equal what was sent and received', async () => {
  const peer: Socket = createSocket('udp4');
  await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()));
  const peerAddr = toStunAddress('127.0.0.1', peer.address().port);
  const atPeer: Buffer[] = [];
  let relayedFrom: { address: string; port: number } | undefined;
  peer.on('message', (m, rinfo) => {
    atPeer.push(m);
    relayedFrom = { address: rinfo.address, port: rinfo.port };
  });

  const client = await TurnClient.open({ server: { address: '127.0.0.1', port: pair.listenPort }, username: USER, password: PASS });
  const atClient: Uint8Array[] = [];
  client.onData((d) => {
    if (d.channel === CHANNEL) atClient.push(d.data);
  });
  try {
    const alloc = await client.allocate();
    const relayed = alloc.relayed.find((a) => a.family === 4);
    assert.ok(relayed, 'an IPv4 relayed address');
    await client.createPermission([peerAddr]);
    await client.channelBind(CHANNEL, peerAddr);

    for (let i = 0; i < N_TO_PEER; i++) client.sendChannelData(CHANNEL, new Uint8Array(SIZE_TO_PEER).fill(i));
    await waitUntil(`${N_TO_PEER} datagrams at the peer`, () => atPeer.length >= N_TO_PEER);
    assert.deepEqual(relayedFrom, { address: '127.0.0.1', port: relayed.port }, 'the peer heard the relayed address');
    assert.ok(atPeer.every((m) => m.length === SIZE_TO_PEER));

    for (let i = 0; i < N_TO_CLIENT; i++) peer.send(new Uint8Array(SIZE_TO_CLIENT).fill(i), relayed.port, '127.0.0.1');
    await waitUntil(`${N_TO_CLIENT} ChannelData at the client`, () => atClient.length >= N_TO_CLIENT);
    assert.ok(atClient.every((d) => d.length === SIZE_TO_CLIENT));

    const expected = {
      to_peer: { packets: atPeer.length, bytes: atPeer.reduce((n, m) => n + m.length, 0) },
      to_client: { packets: atClient.length, bytes: atClient.reduce((n, d) => n + d.length, 0) },
    };
    // What the test sent is what arrived (loopback, no loss), so one expectation covers both.
    assert.deepEqual(expected, {
      to_peer: { packets: N_TO_PEER, bytes: N_TO_PEER * SIZE_TO_PEER },
      to_client: { packets: N_TO_CLIENT, bytes: N_TO_CLIENT * SIZE_TO_CLIENT },
    });

    const series = (read: (name: string, attrs: Record<string, string>) => number | undefined, extra: Record<string, string> = {}, datapath = 'sidecar') =>
      Object.fromEntries(
        (['to_peer', 'to_client'] as const).map((direction) => [
          direction,
          {
            packets: read('packets', { datapath, direction, ...extra }),
            bytes: read('bytes', { datapath, direction, ...extra }),
          },
        ]),
      );

    // /metrics (Prometheus, admin port): the sidecar's counters are read every second.
    let prom: unknown;
    await waitUntil('/metrics to report the run', async () => {
      const text = (await pair.http('GET', '/metrics')).body;
      const read = (what: string, attrs: Record<string, string>) => promValue(text, `turnpike_relayed_${what}_total`, attrs);
      prom = series(read);
      // Everything went IPv4 (loopback): the family split puts it all in the ipv4 series.
      const none = { packets: undefined, bytes: undefined };
      return (
        JSON.stringify(prom) === JSON.stringify(expected) &&
        JSON.stringify(series(read, { family: 'ipv4' })) === JSON.stringify(expected) &&
        // The relay relayed nothing of it: its series are absent or zero, never a second count.
        [none, { packets: 0, bytes: 0 }].some((z) => JSON.stringify(series(read, {}, 'userspace')) === JSON.stringify({ to_peer: z, to_client: z }))
      );
    }, 10_000).catch((e: Error) => assert.fail(`${e.message}; last /metrics: ${JSON.stringify(prom)} expected ${JSON.stringify(expected)}`));

    // OTLP export (gRPC, every second): the same totals, as monotonic sums.
    const exp = await Promise.race([
      collector.waitFor((e) => JSON.stringify(series((what, attrs) => otlpValue(e, `turnpike.relayed.${what}`, attrs))) === JSON.stringify(expected)),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no OTLP export with ${JSON.stringify(expected)}; last: ${JSON.stringify(collector.exports.at(-1) && series((w, a) => otlpValue(collector.exports.at(-1)!, `turnpike.relayed.${w}`, a)))}`)), 10_000).unref()),
    ]);
    const bytes = exp.metrics.find((m) => m.name === 'turnpike.relayed.bytes')!;
    assert.equal(bytes.kind, 'sum');
    assert.equal(bytes.monotonic, true);
    assert.equal(bytes.unit, 'By');
    assert.equal(pointValue(exp, 'turnpike.relayed.bytes', { datapath: 'sidecar', direction: 'to_peer', family: 'ipv4' }), N_TO_PEER * SIZE_TO_PEER);
    assert.equal(otlpValue(exp, 'turnpike.relayed.packets', { datapath: 'sidecar', family: 'ipv6' }) ?? 0, 0);
    assert.equal(otlpValue(exp, 'turnpike.relayed.packets', { datapath: 'userspace' }) ?? 0, 0);
    assert.equal(exp.resource['service.name'], 'turnpike-sidecar');
    // No kernel series: eBPF is off, nothing was relayed by XDP.
    assert.equal(pointValue(exp, 'turnpike.relayed.packets', { datapath: 'xdp' }), undefined);

    // The relay's /status view agrees: the channel never reached it.
    const st = await pair.status();
    assert.equal(st.relayCounters.relayed.toPeer.packets, 0);
    assert.equal(st.relayCounters.relayed.toClient.bytes, 0);
  } finally {
    await client.close();
    peer.close();
  }
});
