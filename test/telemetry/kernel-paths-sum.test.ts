// Kernel paths that differ only in the input family (chan_to_udp_44 and
// chan_to_udp_64: both to_peer, IPv4 out) share one metric series; /metrics
// must report their sum, not whichever path was observed last.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createMetrics } from '../../src/telemetry/metrics.ts';

test('xdp series sum the kernel paths that map to the same direction and family', async () => {
  const m = createMetrics({ version: '0', instanceId: 'test', log: pino({ level: 'silent' }) });
  const srv = createServer((req, res) => m.prometheus(req, res));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    m.onKernelCounters({
      paths: {
        chan_to_udp_44: { packets: 39n, bytes: 3783n },
        chan_to_udp_64: { packets: 2n, bytes: 200n },
        udp_to_chan_44: { packets: 40n, bytes: 3880n },
        udp_to_chan_46: { packets: 0n, bytes: 0n },
      },
      reasons: {},
    });
    const text = await (await fetch(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/metrics`)).text();
    const value = (name: string, dir: string, fam: string) =>
      Number(new RegExp(`^${name}\\{datapath="xdp",direction="${dir}",family="${fam}"[^}]*\\} (\\d+)$`, 'm').exec(text)?.[1]);
    assert.equal(value('turnpike_relayed_packets_total', 'to_peer', 'ipv4'), 41);
    assert.equal(value('turnpike_relayed_bytes_total', 'to_peer', 'ipv4'), 3983);
    assert.equal(value('turnpike_relayed_packets_total', 'to_client', 'ipv4'), 40);
    assert.equal(value('turnpike_relayed_packets_total', 'to_client', 'ipv6'), 0);
  } finally {
    srv.close();
    await m.shutdown();
  }
});
