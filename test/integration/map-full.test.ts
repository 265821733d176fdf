// The pair with kernel binding maps far too small (TURNPIKE_MAP_CAPACITY=2)
// for the channels its clients bind: coturn's turnutils_uclient with several
// clients at once (client ns) through turnpike (relay ns, XDP in skb mode) to
// turnutils_peer (peer ns) still loses nothing. The channels that fit are
// relayed by the kernel, the rest by the relay in userspace; the sidecar says
// so once (a warning with map, entries and capacity), in /status (maps: full,
// refusedWrites) and in /metrics (turnpike_map_refused_writes_total).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot, requireCapability, hasCommand } from '../helpers/env.ts';
import { createTopology, type Topology } from '../helpers/netns.ts';
import { parseUclient, describe as describeRun } from '../interop/harness.ts';
import { startPair, strictChecksums, inNs, type Status, USER, PASS } from './pair-harness.ts';

const PEER_PORT = 3480;
const haveTools = hasCommand('turnutils_uclient') && hasCommand('turnutils_peer') && hasCommand('nsenter') && hasCommand('curl');

let topo: Topology | undefined;

before(async () => {
  if (!(process.getuid?.() === 0 && haveTools)) return;
  topo = await createTopology({ prefix: 'tpfull', ipv6: false });
  await strictChecksums(topo);
  topo.spawn('peer', 'turnutils_peer', ['-p', String(PEER_PORT), '-L', topo.addr.peer4]);
  await new Promise((r) => setTimeout(r, 300));
});

after(async () => {
  await topo?.destroy();
});

const packets = (s: Status) => ({
  kernel: (s.kernel?.paths ?? []).reduce((n, p) => n + Number(p.packets), 0),
  // the relay's, and the sidecar fast path's (issue 13: it relays the overflow now)
  user:
    (s.relayCounters?.relayed.toPeer.packets ?? 0) +
    (s.relayCounters?.relayed.toClient.packets ?? 0) +
    Object.values(s.fastPath?.paths ?? {}).reduce((n, p) => n + p.packets, 0),
});

test('kernel maps full: 0 lost, the overflow relayed in userspace, reported once, in /status and /metrics', async (t) => {
  if (!requireRoot(t) || !requireCapability(t, haveTools && topo !== undefined, 'needs coturn (turnutils_uclient, turnutils_peer), nsenter and curl')) return;
  const pair = await startPair(topo!, { ebpf: 'required', xdpMode: 'skb', env: { TURNPIKE_MAP_CAPACITY: '2' } });
  try {
    await pair.waitReady();
    const args = ['-p', String(pair.listenPort), '-u', USER, '-w', PASS, '-e', topo!.addr.peer4, '-r', String(PEER_PORT), '-n', '30', '-l', '120', '-m', '4', topo!.addr.relay4];
    let out: string;
    let code: number | null = 0;
    try {
      out = await inNs(topo!, 'client', 'turnutils_uclient', args, 60_000);
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; code?: number };
      out = `${err.stdout ?? ''}\n${err.stderr ?? ''}`;
      code = typeof err.code === 'number' ? err.code : null;
    }
    const run = parseUclient(out, code);
    t.diagnostic(describeRun(run));
    assert.deepEqual(run.errors, [], `TURN errors: ${describeRun(run)}`);
    assert.ok(run.sent > 0, `nothing sent: ${describeRun(run)}`);
    assert.equal(run.lost, 0, `lost packets: ${describeRun(run)}`);

    await new Promise((r) => setTimeout(r, 1500)); // the relay's counters arrive once a second
    const s = await pair.status();
    const maps = s.maps as Record<string, { entries: number; capacity: number; full: boolean; refusedWrites: number }>;
    t.diagnostic(`maps ${JSON.stringify(maps)}; relayed ${JSON.stringify(packets(s))}`);
    assert.equal(maps.tp_chan_to_peer!.capacity, 2);
    assert.ok(maps.tp_chan_to_peer!.refusedWrites > 0, 'writes beyond the capacity were refused');
    const { kernel, user } = packets(s);
    assert.ok(kernel > 0, 'the channels that fit are relayed by the kernel');
    assert.ok(user > 0, 'the others are relayed in userspace');
    const warnings = pair.lines().filter((l) => /binding map full/.test(String(l.msg)));
    assert.equal(warnings.length, 1, 'one warning for the episode');
    assert.deepEqual([warnings[0]!.entries, warnings[0]!.capacity], [2, 2]);
    const metrics = (await pair.get('/metrics')).body;
    assert.match(metrics, /turnpike_map_refused_writes_total\{[^}]*map="tp_chan_to_peer"[^}]*\} [1-9]/);
  } catch (e) {
    t.diagnostic(`pair output (tail):\n${pair.output().split('\n').slice(-40).join('\n')}`);
    throw e;
  } finally {
    await pair.stop();
  }
});
