// Restarts under traffic (issue 12): the pair run by its launcher as `npm
// start` runs it (the built dist/, XDP native) in the relay namespace of a
// test topology, with TURN sessions flowing through it to coturn's echo peer:
// - Send-indication sessions: every datagram takes the relay (userspace path);
// - ChannelData sessions: bound channels, relayed by the kernel.
// Then, a few seconds apart: SIGKILL the relay, SIGKILL the sidecar, and
// SIGKILL the relay twice in a row; once with the launcher's warm standbys
// (the default) and once without (cold restarts), side by side. Per event:
// - gap: the longest time without an echo on the userspace-path sessions
//   (median and worst over the sessions), and "back": kill -> first echo;
// - lost: datagrams sent around the event whose echo never came;
// - kernel: the ChannelData sessions' longest silence and loss in the event
//   (continuity of the kernel path);
// - the start-up timeline from the pair's log lines (kill -> child spawned ->
//   link HELLO -> state restored -> resynced), which says where the time goes.
//
// Run (root; build first with `npx tsc -p tsconfig.json`):
//   node --import tsx bench/restart.bench.ts [send-sessions] [channel-sessions] [rate/s]
// TP_BENCH_SOURCES=1 runs the sources under tsx instead of dist/; TP_BENCH_MODES=warm (or cold)
// runs one pass; TP_BENCH_LOG=file keeps the pair's output and the sessions' reports.
import { existsSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { createTopology, type Topology } from '../test/helpers/netns.ts';
import { ECHO_PEER_PORT, startPair, startFlow, waitUntil, sleep, type Flow, type FlowDone, type LogLine, type Pair } from '../test/integration/pair-harness.ts';

const SEND_SESSIONS = Number(process.argv[2] ?? 4);
const CHANNEL_SESSIONS = Number(process.argv[3] ?? 2);
const RATE = Number(process.argv[4] ?? 100);
const SETTLE_MS = 4000;
const built = process.env.TP_BENCH_SOURCES !== '1';

if (process.getuid?.() !== 0) {
  console.error('restart.bench: needs root (network namespaces, XDP)');
  process.exit(2);
}
if (built && !existsSync(new URL('../dist/src/cmd/turnpike.js', import.meta.url))) {
  console.error('restart.bench: build first (npx tsc -p tsconfig.json), or TP_BENCH_SOURCES=1');
  process.exit(2);
}

interface Event {
  name: string;
  child: 'relay' | 'sidecar';
  at: number;
  /** Start number of the child this kill leads to. */
  start: number;
}

/** A log line's time (pino's ISO time), epoch ms. */
const at = (l: LogLine) => (typeof l.time === 'number' ? l.time : Date.parse(String(l.time)));
const time = (l: LogLine | undefined) => (l ? at(l) : undefined);
const median = (xs: number[]) => (xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!);

/**
 * The restart's gap, from the datagrams themselves (robust to the test's own
 * processes stalling on a busy host): back = kill -> the first echo of a
 * datagram sent after the kill; lost = datagrams sent from the kill until then
 * whose echo never came.
 */
function gapOf(done: FlowDone, at: number): { gap: number; back: number; lost: number } {
  const sentAt = done.sentAt ?? [];
  const echoAt = done.echoAt ?? [];
  let first = -1;
  for (let i = 0; i < sentAt.length; i++) {
    if (sentAt[i]! > at && echoAt[i]! > 0) {
      first = i;
      break;
    }
  }
  if (first < 0) return { gap: NaN, back: NaN, lost: NaN };
  const back = echoAt[first]! - at;
  let lost = 0;
  for (let i = 0; i < first; i++) if (sentAt[i]! >= at - 100 && echoAt[i] === 0) lost++;
  // The gap: from the last echo before the kill to that first one.
  let last = 0;
  for (let i = 0; i < sentAt.length; i++) if (echoAt[i]! > 0 && echoAt[i]! <= at) last = Math.max(last, echoAt[i]!);
  return { gap: echoAt[first]! - (last || at), back, lost };
}


/** The start-up timeline of one event from the pair's log lines (ms after the kill). */
function timeline(pair: Pair, ev: Event): string {
  const lines = pair.lines().filter((l) => at(l) >= ev.at);
  const spawned = lines.find((l) => l.msg === 'started' && l.child === ev.child);
  const steps: [string, number | undefined][] = [['spawned', time(spawned)]];
  if (ev.child === 'relay') {
    steps.push(['hello', time(lines.find((l) => l.msg === 'relay back within the grace time'))]);
    steps.push(['restored', time(lines.find((l) => l.msg === 'state restored from the previous relay'))]);
    steps.push(['ready', time(lines.find((l) => l.msg === 'relay ready'))]);
  } else {
    steps.push(['ready', time(lines.find((l) => l.msg === 'sidecar ready'))]);
  }
  steps.push(['resynced', time(lines.find((l) => l.msg === 'relay state resynced'))]);
  return steps.map(([k, t]) => `${k} ${t === undefined ? '-' : `+${t - ev.at}`}`).join(', ');
}

/** One pass of the scenario against a fresh pair; returns its table rows. */
async function scenario(topo: Topology, mode: 'warm' | 'cold'): Promise<{ rows: string[][]; total: { sent: number; received: number } }> {
  let pair: Pair | undefined;
  const flows: { kind: 'send' | 'channel'; flow: Flow }[] = [];
  try {
    pair = await startPair(topo, { ebpf: 'required', xdpMode: 'native', built, env: { TURNPIKE_WARM_STANDBY: String(mode === 'warm') } });
    await pair.waitReady(120_000);
    for (let i = 0; i < SEND_SESSIONS; i++) flows.push({ kind: 'send', flow: startFlow(topo, pair, { peerPort: ECHO_PEER_PORT, rate: RATE, send: true }) });
    for (let i = 0; i < CHANNEL_SESSIONS; i++) flows.push({ kind: 'channel', flow: startFlow(topo, pair, { peerPort: ECHO_PEER_PORT, rate: RATE }) });
    await Promise.all(flows.map((f) => f.flow.bound));
    await waitUntil('echoes on every session', () => flows.every((f) => f.flow.received() > RATE) || undefined, 60_000);
    // Warm: restarts are measured with the standbys in place, as in steady operation.
    if (mode === 'warm') {
      await waitUntil('warm standbys', () => ['relay', 'sidecar'].every((c) => pair!.lines().some((l) => l.msg === 'warm standby started' && l.child === c)) || undefined, 60_000);
    }
    await sleep(2000);

    const events: Event[] = [];
    const starts = { relay: 1, sidecar: 1 };
    const kill = async (name: string, child: 'relay' | 'sidecar') => {
      const pid = pair!.childPid(child)!;
      const at = Date.now();
      process.kill(pid, 'SIGKILL');
      starts[child]++;
      events.push({ name, child, at, start: starts[child] });
      await pair!.waitForStart(child, starts[child], 60_000);
    };
    const settle = async () => {
      await waitUntil('relay connected', async () => {
        const s = await pair!.status().catch(() => undefined);
        return s?.relay.relayConnected ? s : undefined;
      }, 60_000, 100);
      await sleep(SETTLE_MS);
    };
    await kill('relay SIGKILL', 'relay');
    await settle();
    await kill('sidecar SIGKILL', 'sidecar');
    await settle();
    await kill('relay SIGKILL (1st of 2)', 'relay');
    await sleep(2500);
    await kill('relay SIGKILL (2nd, 2.5 s later)', 'relay');
    await settle();

    const done = await Promise.all(flows.map(async (f) => ({ kind: f.kind, done: (await f.flow.stop()) ?? { sent: 0, received: 0 } })));
    if (process.env.TP_BENCH_LOG) writeFileSync(`${process.env.TP_BENCH_LOG}.${mode}.flows.json`, JSON.stringify({ events, done }));
    const rows = events.map((ev) => {
      const send = done.filter((d) => d.kind === 'send').map((d) => gapOf(d.done, ev.at));
      const chan = done.filter((d) => d.kind === 'channel').map((d) => gapOf(d.done, ev.at));
      const started = pair!.lines().filter((l) => l.msg === 'started' && l.child === ev.child)[ev.start - 1];
      return [
        mode,
        ev.name,
        started?.warm ? 'yes' : 'no',
        `${median(send.map((x) => x.gap))} / ${Math.max(...send.map((x) => x.gap))}`,
        String(Math.max(...send.map((x) => x.back))),
        String(send.reduce((n, x) => n + x.lost, 0)),
        String(Math.max(0, ...chan.map((c) => c.back))),
        String(chan.reduce((n, c) => n + c.lost, 0)),
        timeline(pair!, ev),
      ];
    });
    const total = done.reduce((acc, d) => ({ sent: acc.sent + d.done.sent, received: acc.received + d.done.received }), { sent: 0, received: 0 });
    return { rows, total };
  } finally {
    if (process.env.TP_BENCH_LOG && pair) writeFileSync(`${process.env.TP_BENCH_LOG}.${mode}`, pair.output());
    await Promise.all(flows.map((f) => f.flow.stop()));
    await pair?.stop();
  }
}

const topo = await createTopology({ prefix: 'tprb', ipv6: false });
try {
  await topo.enableRelayXdpTx();
  topo.spawn('peer', 'turnutils_peer', ['-p', String(ECHO_PEER_PORT), '-L', topo.addr.peer4]);
  await sleep(300);
  const modes = (process.env.TP_BENCH_MODES ?? 'warm,cold').split(',') as ('warm' | 'cold')[];
  const rows: string[][] = [['standbys', 'event', 'warm start', 'gap ms (median / worst)', 'back ms (worst)', 'lost in the gap (userspace)', 'kernel: first echo ms', 'lost in the gap (kernel)', 'timeline ms after the kill']];
  const totals: string[] = [];
  for (const mode of modes) {
    const r = await scenario(topo, mode);
    rows.push(...r.rows);
    totals.push(`${mode}: sent ${r.total.sent}, echoed ${r.total.received}`);
  }
  console.log(`restart.bench: ${SEND_SESSIONS} Send-indication sessions (userspace path) + ${CHANNEL_SESSIONS} ChannelData sessions (kernel path), ${RATE} datagrams/s each; ${built ? 'dist/ (npm start)' : 'sources under tsx'}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} on ${cpus().length} CPUs`);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | '));
  console.log(`${totals.join('; ')}. gap: last echo before the kill -> first echo of a datagram sent after it; back: kill -> first echo of a datagram sent after it; lost: sent from the kill until then, never echoed`);
} finally {
  await topo.destroy();
}
