// Calls that outlive a restart (issue 12), with the pair run by its launcher,
// XDP native, and coturn's turnutils_uclient sessions running through it:
// - relay SIGKILLed mid-call: the sidecar keeps ports, bindings and the
//   relay's state for its grace time; the kernel relays the channel sessions
//   throughout, the restarted relay restores its state and the Send-indication
//   sessions (userspace) resume: loss only in the gap, no session fails.
// - sidecar SIGKILLed mid-call: the pinned maps relay the channel sessions;
//   the relay reconnects to the new sidecar, which reopens the same ports.
// The figures (sent, received, lost, the gap) go to the test's diagnostics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Topology } from '../helpers/netns.ts';
import { parseUclient, describe as describeRun, type UclientSummary } from '../interop/harness.ts';
import { ECHO_PEER_PORT, echoPeerTopology, withXdpPair, startFlow, inNs, waitUntil, sleep, type Pair, type Status, USER, PASS } from './pair-harness.ts';
import { readFileSync, readdirSync } from 'node:fs';
import { SCHED_IDLE, SCHED_OTHER, policyOf } from '../../src/cmd/idle-standby.ts';
import { sliceOf } from '../../src/cmd/sched-slice.ts';
import { SIDECAR_NODE_FLAGS } from '../../src/cmd/node-flags.ts';

/** The scheduling policies of a process's threads (idle-standby.ts: a standby waits under SCHED_IDLE). */
const policies = (pid: number) => [...new Set(readdirSync(`/proc/${pid}/task`).map((tid) => policyOf(pid, Number(tid))).filter((p) => p >= 0))];
/** The launcher's waiting standby of `child` (TURNPIKE_AWAIT_GO in its environment). */
function standbyPid(launcher: number, child: 'relay' | 'sidecar'): number | undefined {
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== launcher) continue;
      const env = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
      if (env.includes('TURNPIKE_AWAIT_GO=true') && readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(`cmd/${child}.`)) return pid;
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

const PEER_PORT = ECHO_PEER_PORT;
const { gate } = echoPeerTopology('tprc');

const entries = (s: Status) => s.maps.tp_chan_to_peer?.entries ?? -1;
const allocationPorts = (s: Status) => (s.sockets as { allocationPorts: number }).allocationPorts;
/** Session length: 600 messages every 20 ms per client, about 12 s. */
const MESSAGES = 600;

/** A uclient run of `clients` sessions; `channels: false` relays with Send/Data indications (the userspace path). */
function uclient(topo: Topology, pair: Pair, opts: { clients: number; channels: boolean }): Promise<UclientSummary> {
  const args = ['-p', String(pair.listenPort), '-u', USER, '-w', PASS, '-e', topo.addr.peer4, '-r', String(PEER_PORT), '-n', String(MESSAGES), '-l', '120', '-z', '20', '-m', String(opts.clients)];
  if (!opts.channels) args.push('-c');
  args.push(topo.addr.relay4);
  return inNs(topo, 'client', 'turnutils_uclient', args, 60_000)
    .catch((e: { stdout?: string; stderr?: string }) => `${e.stdout}\n${e.stderr}`)
    .then((out) => parseUclient(out, 0));
}

const lossMs = (s: UclientSummary, clients: number) => Math.round(((s.sent - s.received) * 20) / clients);

test('relay SIGKILLed mid-call: channel sessions lose nothing, Send sessions only the gap; the restarted relay has every allocation', async (t) => {
  const topo = gate(t);
  if (!topo) return;
  await withXdpPair(t, topo, async (pair) => {
    const flow = startFlow(topo, pair, { peerPort: PEER_PORT, rate: 200 });
    try {
      await flow.bound;
      await waitUntil('echoes through the fast path', () => flow.received() > 50 || undefined);
      const withChannels = uclient(topo, pair, { clients: 4, channels: true });
      const withSend = uclient(topo, pair, { clients: 2, channels: false });
      await sleep(4000);
      // uclient may still be binding on a slow machine: kill once the bindings have settled.
      const before = await waitUntil('bindings settled', async () => {
        const a = await pair.status();
        await sleep(1000);
        const b = await pair.status();
        return entries(a) === entries(b) && a.relayCounters?.allocations === b.relayCounters?.allocations ? b : undefined;
      }, 20_000);
      const relayPid = pair.childPid('relay')!;
      const killedAt = Date.now();
      process.kill(relayPid, 'SIGKILL');
      await pair.waitForStart('relay', 2);
      const synced = await waitUntil('restarted relay restored and resynced', async () => {
        const s = await pair.status();
        return s.relay.relayConnected && s.relay.resyncs >= 2 && s.relayCounters ? s : undefined;
      }, 15_000);
      const backMs = Date.now() - killedAt;
      assert.equal(synced.relay.disconnectCleanups, 0, 'nothing was cleared');
      assert.equal(entries(synced), entries(before), 'the kernel kept every binding');
      assert.equal(synced.relayCounters!.allocations, before.relayCounters!.allocations, 'every allocation restored');
      assert.equal(synced.relayCounters!.channels, entries(synced), 'map bindings == relay channels');
      const [c, s] = await Promise.all([withChannels, withSend]);
      const inGap = flow.ticks().filter((k) => k.now > killedAt && k.now < killedAt + backMs);
      const flowGap = inGap.length > 1 ? `${inGap.at(-1)!.received - inGap[0]!.received} echoes in ${inGap.at(-1)!.now - inGap[0]!.now} ms` : 'no ticks';
      t.diagnostic(`relay killed; back and resynced after ${backMs} ms (status polled). ChannelData flow during it: ${flowGap} (200/s)`);
      t.diagnostic(`uclient, 4 channel sessions: ${describeRun(c)}`);
      t.diagnostic(`uclient, 2 Send-indication sessions: ${describeRun(s)}; loss = ${lossMs(s, 2)} ms of traffic per session`);
      assert.equal(c.errors.length, 0, describeRun(c));
      assert.equal(s.errors.length, 0, describeRun(s));
      assert.ok(c.received >= c.sent * 0.99, `channel sessions lost traffic: ${describeRun(c)}`);
      assert.ok(s.received > 0 && lossMs(s, 2) <= backMs + 1000, `Send sessions lost more than the gap: ${describeRun(s)}`);
      assert.ok(inGap.length < 2 || inGap.at(-1)!.received - inGap[0]!.received > 0, 'the kernel relayed during the gap');
    } finally {
      await flow.stop();
    }
  });
});

test('sidecar SIGKILLed mid-call: channel sessions ride the pinned maps; Send sessions resume on the same ports', async (t) => {
  const topo = gate(t);
  if (!topo) return;
  await withXdpPair(t, topo, async (pair) => {
    const withChannels = uclient(topo, pair, { clients: 4, channels: true });
    const withSend = uclient(topo, pair, { clients: 2, channels: false });
    await sleep(4000);
    const before = await pair.status();
    const killedAt = Date.now();
    process.kill(pair.childPid('sidecar')!, 'SIGKILL');
    const newPid = await pair.waitForStart('sidecar', 2);
    const ready = await waitUntil('restarted sidecar ready', () => pair.lines().find((l) => l.msg === 'sidecar ready' && l.pid === newPid));
    const readyAt = Date.parse(ready.time as string);
    const synced = await waitUntil('relay resynced the new sidecar', () => pair.lines().find((l) => l.msg === 'relay state resynced' && l.pid === newPid));
    const syncedAt = Date.parse(synced.time as string);
    const after = await pair.status();
    t.diagnostic(`sidecar killed; new one ready after ${readyAt - killedAt} ms, relay resynced it ${syncedAt - readyAt} ms later (ports ${synced.ports}, channels ${synced.channels}, failed ${synced.failed})`);
    assert.equal(synced.failed, 0, 'every port reopened');
    assert.equal(allocationPorts(after), allocationPorts(before), 'the same allocation ports');
    assert.ok(syncedAt - readyAt < 1000, `userspace path back ${syncedAt - readyAt} ms after the sidecar`);
    const [c, s] = await Promise.all([withChannels, withSend]);
    t.diagnostic(`uclient, 4 channel sessions: ${describeRun(c)}`);
    t.diagnostic(`uclient, 2 Send-indication sessions: ${describeRun(s)}; loss = ${lossMs(s, 2)} ms of traffic per session`);
    assert.equal(c.errors.length, 0, describeRun(c));
    assert.equal(s.errors.length, 0, describeRun(s));
    assert.ok(c.received >= c.sent * 0.99, `channel sessions lost traffic: ${describeRun(c)}`);
    assert.ok(lossMs(s, 2) <= syncedAt - killedAt + 1000, `Send sessions lost more than the gap: ${describeRun(s)}`);
  });
});

test('Send indications resume after each restart, a warm standby taking over: relay SIGKILL, sidecar SIGKILL, sidecar SIGUSR2 (an upgrade: bindings kept); a real stop with keepPinned clears them', async (t) => {
  const topo = gate(t);
  if (!topo) return;
  await withXdpPair(t, topo, async (pair) => {
    const send = startFlow(topo, pair, { peerPort: PEER_PORT, rate: 100, send: true });
    const channel = startFlow(topo, pair, { peerPort: PEER_PORT, rate: 100 });
    const standbys = (child: string) => pair.lines().filter((l) => l.msg === 'warm standby started' && l.child === child).length;
    const resumes = async (what: string) => {
      const r0 = send.received();
      await waitUntil(`Send echoes again after ${what}`, () => send.received() > r0 + 50 || undefined, 30_000);
    };
    try {
      await Promise.all([send.bound, channel.bound]);
      await waitUntil('echoes on both', () => (send.received() > 50 && channel.received() > 50) || undefined);
      await waitUntil('warm standbys', () => (standbys('relay') >= 1 && standbys('sidecar') >= 1) || undefined, 30_000);
      // A standby waits under SCHED_IDLE, every thread of it; the one that takes over runs under SCHED_OTHER.
      const launcher = pair.childPid('sidecar') && Number(readFileSync(`/proc/${pair.childPid('sidecar')}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      const relayStandby = await waitUntil('the relay standby process', () => standbyPid(launcher!, 'relay'));
      assert.deepEqual(policies(relayStandby), [SCHED_IDLE], 'the relay standby waits under SCHED_IDLE');

      process.kill(pair.childPid('relay')!, 'SIGKILL');
      await pair.waitForStart('relay', 2);
      assert.equal(pair.lines().filter((l) => l.msg === 'started' && l.child === 'relay').at(-1)!.warm, true, 'the relay standby took over');
      assert.equal(pair.childPid('relay'), relayStandby);
      assert.deepEqual(policies(relayStandby), [SCHED_OTHER], 'the standby that took over runs under SCHED_OTHER');
      await resumes('the relay SIGKILL');

      process.kill(pair.childPid('sidecar')!, 'SIGKILL');
      await pair.waitForStart('sidecar', 2);
      assert.equal(pair.lines().filter((l) => l.msg === 'started' && l.child === 'sidecar').at(-1)!.warm, true, 'the sidecar standby took over');
      // Set after the launcher's SCHED_IDLE -> SCHED_OTHER, which resets a slice (kernels with per-thread slices).
      if (sliceOf(process.pid) !== undefined) assert.equal(sliceOf(pair.childPid('sidecar')!), 100, "the sidecar that took over runs its event loop with TURNPIKE_SCHED_SLICE_US's default slice");
      const cmdline = readFileSync(`/proc/${pair.childPid('sidecar')}/cmdline`, 'utf8').split('\0');
      for (const f of SIDECAR_NODE_FLAGS) assert.ok(cmdline.includes(f), `the sidecar standby runs with ${f}: ${cmdline.join(' ')}`);
      await resumes('the sidecar SIGKILL');

      await waitUntil('a new sidecar standby', () => standbys('sidecar') >= 2 || undefined, 30_000);
      const before = await pair.status();
      const c0 = channel.received();
      process.kill(pair.childPid('sidecar')!, 'SIGUSR2');
      await pair.waitForStart('sidecar', 3);
      const replaced = pair.lines().find((l) => l.msg === 'child stopped to be replaced; restarting' && l.child === 'sidecar');
      assert.equal(replaced?.code, 75, 'the upgrade stop exits EXIT_UPGRADE and is restarted at once');
      assert.ok(pair.lines().some((l) => l.process === 'sidecar' && l.msg === 'shutting down' && l.upgrade === true), 'stopped as an upgrade');
      await resumes('the sidecar SIGUSR2');
      const after = await waitUntil('resynced after the upgrade', async () => {
        const s = await pair.status();
        return s.relay.relayConnected && s.relay.resyncs >= 1 ? s : undefined;
      });
      assert.equal(entries(after), entries(before), 'the bindings were kept for the new sidecar');
      assert.ok(channel.received() > c0, 'the kernel path relayed through the upgrade');
    } finally {
      await Promise.all([send.stop(), channel.stop()]);
    }
    const report = await pair.stop();
    assert.equal(report.exitCode, 0);
    assert.ok(report.pinsLeft.includes('tp_chan_to_peer'), `keepPinned leaves the pins (${report.pinsLeft.join(', ')})`);
    assert.equal(report.channelEntriesLeft, 0, 'a real stop clears the bindings: nobody will own them');
  }, { TURNPIKE_KEEP_PINNED: 'true' });
});
