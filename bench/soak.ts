// `npm run soak -- --minutes N`: the pair under churn and restarts (issue 12).
// Needs root. In network namespaces of its own (test/helpers/netns.ts) it runs
// the launcher (src/cmd/turnpike.ts: sidecar + relay, XDP native on the relay's
// veth) and coturn's echo peer, and drives TURN clients from the client
// namespace (bench/soak/driver.ts): steady ChannelData and Send traffic,
// allocation churn (create, refresh, expire, delete). Every --restart-every
// seconds it SIGKILLs the relay or the sidecar, alternately, and the launcher
// restarts it, as it does a crashed child. At the end it checks:
//   - the kernel's binding tables (read from the pins, decoded with bpf/abi.ts) equal the
//     relay's state: the live channels the clients hold, and the relay's own
//     allocation/permission/channel counts and the sidecar's open ports;
//   - no live allocation lost: each still answers Refresh and relays both ways,
//     and no request for one failed during the run;
//   - loss only in the restart gaps (kill .. back + --gap-after-ms);
//   - memory flat: RSS of the launcher, sidecar and relay every 5 s (each
//     process's first 15 s left out): end minus start within --rss-growth-mb,
//     and on runs of 10 minutes or more the slope within --rss-slope-mb a minute;
//   - nothing cleared by the sidecar (no grace expiry).
// Prints a summary table (stdout), progress on stderr; exits 1 on a violated
// invariant. --out FILE writes everything recorded as JSON.
//
//   npm run soak -- [--minutes 2] [--restart-every 30] [--steady 4] [--rate 50]
//                   [--max-churn 16] [--rss-growth-mb 32] [--rss-slope-mb 1] [--out FILE]
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createTopology, sweepStaleNamespaces, type Topology } from '../test/helpers/netns.ts';
import { ECHO_PEER_PORT, nsPath, PASS, repoRoot, startPair, USER, type Pair, type Status } from '../test/integration/pair-harness.ts';
import { hasCommand } from '../test/helpers/env.ts';
import { sleep, waitUntil } from '../test/helpers/wait.ts';
import type { DriverArgs, DriverFinal, Violation } from './soak/driver.ts';
import { pairPids, rssBytes, startedAtMs, type Role } from './soak/procs.ts';
import { bindingKey, kernelBindings, type KernelBinding } from './soak/kernel-maps.ts';
import { gapOf, lossReport, memoryReport, type Gap, type RssSample } from './soak/analysis.ts';

const { values: opt } = parseArgs({
  options: {
    minutes: { type: 'string', default: '2' },
    'restart-every': { type: 'string', default: '30' },
    steady: { type: 'string', default: '4' },
    rate: { type: 'string', default: '50' },
    'max-churn': { type: 'string', default: '16' },
    'churn-every-ms': { type: 'string', default: '1500' },
    'rss-growth-mb': { type: 'string', default: '32' },
    'rss-slope-mb': { type: 'string', default: '1' },
    'gap-after-ms': { type: 'string', default: '1000' },
    out: { type: 'string' },
  },
});
const num = (name: keyof typeof opt) => {
  const v = Number(opt[name]);
  if (!Number.isFinite(v) || v < 0) {
    process.stderr.write(`soak: --${name} must be a non-negative number, not ${JSON.stringify(opt[name])}\n`);
    process.exit(2);
  }
  return v;
};
const minutes = num('minutes');
const restartEveryMs = num('restart-every') * 1000;
const rssGrowthBound = num('rss-growth-mb');
const rssSlopeBound = num('rss-slope-mb');
/** A slope over a short run is mostly the sawtooth of restarts and GC: judged only from this long on. */
const SLOPE_JUDGED_FROM_MIN = 10;
const gapAfterMs = num('gap-after-ms');
/** Short churn allocations ask this lifetime (s); the relay's default lifetime is set to it so the relay grants it. */
const SHORT_LIFETIME = 20;
/** Long enough that an allocation outlives a restart gap on a loaded machine (its refresh goes at a third of it). */
const LONG_LIFETIME = 300;
const RSS_EVERY_MS = 5000;
const WARMUP_MS = 15_000;
const RELAY_GRACE_MS = 120_000;

const progress = (msg: string) => process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

if (process.getuid?.() !== 0) {
  process.stderr.write('soak: needs root (network namespaces, XDP)\n');
  process.exit(2);
}
for (const cmd of ['nsenter', 'curl', 'turnutils_peer']) {
  if (!hasCommand(cmd)) {
    process.stderr.write(`soak: ${cmd} not found (bash scripts/setup.sh --test installs it)\n`);
    process.exit(2);
  }
}

interface Driver {
  proc: ChildProcess;
  ready: Promise<void>;
  final: Promise<DriverFinal>;
  violations: Violation[];
  lastStats?: Record<string, number>;
  output(): string;
}

function startDriver(topo: Topology, pair: Pair, args: DriverArgs): Driver {
  const proc = spawn('nsenter', [`--net=${nsPath(topo, 'client')}`, process.execPath, '--import', 'tsx', 'bench/soak/driver.ts', JSON.stringify(args)], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const d: Driver = { proc, violations: [], ready: undefined!, final: undefined!, output: () => err };
  let onReady!: () => void;
  let onFinal!: (f: DriverFinal) => void;
  d.ready = new Promise((res) => (onReady = res));
  d.final = new Promise((res) => (onFinal = res));
  const failed = new Promise<never>((_, rej) => proc.once('exit', (code) => rej(new Error(`soak driver exited (${code}):\n${err.slice(-3000)}`))));
  failed.catch(() => {});
  d.ready = Promise.race([d.ready, failed]);
  d.final = Promise.race([d.final, failed]);
  // The driver is killed at cleanup, after these may no longer be awaited.
  d.ready.catch(() => {});
  d.final.catch(() => {});
  let buf = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let m: { event?: string } & Record<string, unknown>;
      try {
        m = JSON.parse(line) as typeof m;
      } catch {
        continue;
      }
      if (m.event === 'ready') onReady();
      else if (m.event === 'stats') d.lastStats = m as unknown as Record<string, number>;
      else if (m.event === 'violation') {
        d.violations.push(m as unknown as Violation);
        progress(`VIOLATION ${m.kind}: ${m.detail}`);
      } else if (m.event === 'final') onFinal(m as unknown as DriverFinal);
    }
  });
  void pair;
  return d;
}

interface RelayCounters {
  allocations: number;
  permissions: number;
  channels: number;
}
const relayCounters = (s: Status) => (s.relayCounters ?? null) as RelayCounters | null;
const allocationPorts = (s: Status) => (s.sockets as { allocationPorts: number }).allocationPorts;

/** SIGKILLs `role`; resolves with the gap once its replacement serves (the relay reconnected and resynced the maps). */
async function restart(pair: Pair, role: 'relay' | 'sidecar'): Promise<Gap> {
  const before = await pair.status();
  const pid = pair.childPid(role);
  if (pid === undefined) throw new Error(`no ${role} process to restart`);
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  const back = await waitUntil(`${role} restarted and the relay resynced`, async () => {
    const now = pair.childPid(role);
    if (now === undefined || now === pid) return undefined;
    const s = await pair.status();
    const resynced = role === 'relay' ? s.relay.resyncs > before.relay.resyncs : s.relay.resyncs >= 1;
    return s.relay.relayConnected && resynced ? Date.now() : undefined;
  }, RELAY_GRACE_MS, 50);
  // A restarted relay's first COUNTERS frame comes a second after it connects:
  // the end-of-run checks read them, but serving does not wait for them, so
  // the gap ends at the resync.
  await waitUntil('the relay reports its counters', async () => ((await pair.status()).relayCounters ? true : undefined), RELAY_GRACE_MS, 50);
  return { kind: role, killedAt, backAt: back };
}

const fmt = (n: number, d = 0) => n.toFixed(d);
const pct = (lost: number, sent: number) => (sent === 0 ? '-' : `${((100 * lost) / sent).toFixed(3)} %`);

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => '| ' + r.map((c, i) => c.padEnd(w[i]!)).join(' | ') + ' |').join('\n');
}

async function main(): Promise<number> {
  await sweepStaleNamespaces('tpsoak');
  const topo = await createTopology({ prefix: 'tpsoak', ipv6: false });
  let pair: Pair | undefined;
  let driver: Driver | undefined;
  let peer: ChildProcess | undefined;
  const failures: string[] = [];
  const cleanup = async () => {
    driver?.proc.kill('SIGKILL');
    await pair?.stop().catch(() => {});
    await topo.destroy();
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    await topo.enableRelayXdpTx();
    peer = topo.spawn('peer', 'turnutils_peer', ['-p', String(ECHO_PEER_PORT), '-L', topo.addr.peer4]);
    pair = await startPair(topo, {
      ebpf: 'required',
      xdpMode: 'native',
      // The grace is the time a restarted relay has to come back before the sidecar drops what it held
      // (default 30 s): on a loaded machine a relay under tsx can take longer to start, and the soak
      // judges state continuity, not start-up speed (the gaps are in its table).
      env: { TURNPIKE_DEFAULT_LIFETIME: String(SHORT_LIFETIME), TURNPIKE_LOG: 'info', TURNPIKE_RELAY_GRACE_MS: String(RELAY_GRACE_MS) },
    });
    await pair.waitReady(120_000);
    progress(`pair ready on ${topo.addr.relay4}:${pair.listenPort} (XDP native on ${topo.dev.relay}); ${minutes} min, a restart every ${restartEveryMs / 1000} s`);
    driver = startDriver(topo, pair, {
      server: topo.addr.relay4,
      port: pair.listenPort,
      username: USER,
      password: PASS,
      peer: topo.addr.peer4,
      peerPort: ECHO_PEER_PORT,
      steady: num('steady'),
      rate: num('rate'),
      churnEveryMs: num('churn-every-ms'),
      maxChurn: num('max-churn'),
      shortLifetime: SHORT_LIFETIME,
      longLifetime: LONG_LIFETIME,
    });
    await driver.ready;
    const startedAt = Date.now();
    const endAt = startedAt + minutes * 60_000;

    const rss: RssSample[] = [];
    const sample = () => {
      const pids = pairPids();
      for (const role of ['launcher', 'sidecar', 'relay'] as Role[]) {
        const pid = pids[role];
        const v = pid === undefined ? undefined : rssBytes(pid);
        const startedAt = pid === undefined ? undefined : startedAtMs(pid);
        if (pid !== undefined && v !== undefined && startedAt !== undefined) rss.push({ at: Date.now(), role, pid, startedAt, rss: v });
      }
    };
    sample();
    const rssTimer = setInterval(sample, RSS_EVERY_MS);

    const gaps: Gap[] = [];
    let next: 'relay' | 'sidecar' = 'relay';
    let restartAt = startedAt + restartEveryMs;
    // The last restart leaves time for the replacement to settle before the final checks.
    while (Date.now() < endAt) {
      if (restartEveryMs > 0 && Date.now() >= restartAt && endAt - Date.now() > 10_000) {
        const g = await restart(pair, next);
        gaps.push(g);
        const st = driver.lastStats;
        progress(`${next} SIGKILLed, back in ${g.backAt - g.killedAt} ms` + (st ? `; clients: ${st.live} live, ${st.created} created, ${st.deleted} deleted, ${st.expired} expired` : ''));
        next = next === 'relay' ? 'sidecar' : 'relay';
        // After a long gap, the pair serves a while before the next kill (no back-to-back restarts).
        restartAt = Math.max(restartAt + restartEveryMs, g.backAt + restartEveryMs / 2);
      }
      await sleep(Math.max(0, Math.min(500, endAt - Date.now())));
    }
    clearInterval(rssTimer);
    sample();

    progress('stopping the churn; verifying every live allocation');
    driver.proc.stdin!.write('stop\n');
    const final = await driver.final;
    const alive = final.alive;
    const expected: KernelBinding[] = alive
      .filter((a) => a.channel !== undefined)
      .map((a) => ({ client: `${topo.addr.client4}:${a.clientPort}`, channel: a.channel!, peer: `${a.peer.address}:${a.peer.port}`, allocationPort: a.relayedPort }));
    const expectedKeys = expected.map(bindingKey).sort();

    // The relay's counters arrive on an interval and its STATE on a debounce: wait for them to settle on the expected figures.
    let status: Status | undefined;
    await waitUntil('relay state settled', async () => {
      status = await pair!.status();
      const c = relayCounters(status);
      return c && c.allocations === alive.length && c.channels === expected.length && allocationPorts(status) === alive.length;
    }, 10_000, 250).catch(() => {});
    status ??= await pair.status();
    const kernel = await kernelBindings(pair.pinDir);
    const c = relayCounters(status);

    // --- invariants ---
    const chanKeys = kernel.chanToPeer.map(bindingKey);
    const peerKeys = kernel.peerToChan.map(bindingKey);
    const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
    const diff = (have: string[], want: string[]) => {
      const extra = have.filter((k) => !want.includes(k));
      const missing = want.filter((k) => !have.includes(k));
      return `extra [${extra.join('; ')}], missing [${missing.join('; ')}]`;
    };
    if (!same(chanKeys, expectedKeys)) failures.push(`tp_chan_to_peer != the live channels: ${diff(chanKeys, expectedKeys)}`);
    if (!same(peerKeys, expectedKeys)) failures.push(`tp_peer_to_chan != the live channels: ${diff(peerKeys, expectedKeys)}`);
    if (!c) failures.push('no relay counters in /status at the end (relay not connected)');
    else {
      if (c.allocations !== alive.length) failures.push(`relay has ${c.allocations} allocations, the clients hold ${alive.length}`);
      if (c.permissions !== alive.length) failures.push(`relay has ${c.permissions} permissions, the clients hold ${alive.length}`);
      if (c.channels !== expected.length) failures.push(`relay has ${c.channels} channels, the clients hold ${expected.length}`);
      if (c.channels !== kernel.chanToPeer.length) failures.push(`relay has ${c.channels} channels, the kernel ${kernel.chanToPeer.length}`);
    }
    if (allocationPorts(status) !== alive.length) failures.push(`sidecar has ${allocationPorts(status)} allocation ports open, the clients hold ${alive.length} allocations`);
    if (status.relay.disconnectCleanups > 0) failures.push(`the sidecar cleared its state ${status.relay.disconnectCleanups} times (relay grace expired)`);
    // A request that timed out, or a relay check that gave up, while a restart gap overlapped it
    // (a gap on a loaded machine can outlast a client's 39.5 s of retransmissions) is the gap's loss.
    const acrossGap = (v: Violation) =>
      ((v.kind === 'request-failed' && /timed out/.test(v.detail)) || v.kind === 'no-relay') && gaps.some((g) => v.since < g.backAt + gapAfterMs && v.at > g.killedAt);
    const timedOutInGaps = final.violations.filter(acrossGap);
    for (const v of final.violations) if (!acrossGap(v)) failures.push(`${v.kind}: ${v.detail}`);

    const loss = lossReport(final.timeline, gaps, gapAfterMs);
    const lostOutside = loss.outside.channel.lost + loss.outside.send.lost;
    if (lostOutside > 0) failures.push(`${lostOutside} datagrams lost outside the restart gaps (seconds ${loss.lossySecondsOutside.map((s) => s - Math.floor(startedAt / 1000)).join(', ')} of the run)`);

    const mem = memoryReport(rss, WARMUP_MS);
    const judgeSlope = (Date.now() - startedAt) / 60_000 >= SLOPE_JUDGED_FROM_MIN;
    for (const m of mem) {
      if (m.growthMb > rssGrowthBound) failures.push(`${m.role} RSS grew ${fmt(m.growthMb, 1)} MB over the run (bound ${rssGrowthBound})`);
      if (judgeSlope && m.slopeMbPerMin > rssSlopeBound) failures.push(`${m.role} RSS grows ${fmt(m.slopeMbPerMin, 2)} MB/min (bound ${rssSlopeBound})`);
    }

    // --- report ---
    const t0 = Math.floor(startedAt / 1000);
    const ranMin = (Date.now() - startedAt) / 60_000;
    const out: string[] = [];
    out.push(`## Soak: ${fmt(ranMin, 1)} min, ${gaps.length} restarts (SIGKILL, relaunched by the launcher), XDP native`);
    out.push('');
    // When the launcher started the replacement, from its log (read once: it grows all run).
    const starts = pair.lines().filter((l) => l.msg === 'started' && typeof l.time === 'string');
    const relaunched = (g: Gap) => {
      const l = starts.find((x) => x.child === g.kind && Date.parse(x.time as string) >= g.killedAt);
      return l ? String(Date.parse(l.time as string) - g.killedAt) : '?';
    };
    out.push(table([
      ['restart', 'at (s)', 'kind', 'relaunched after (ms)', 'gap: kill -> serving again (ms)'],
      ...gaps.map((g, i) => [String(i + 1), fmt((g.killedAt - startedAt) / 1000, 1), g.kind, relaunched(g), String(g.backAt - g.killedAt)]),
    ]));
    out.push('');
    const counts = final.counts;
    out.push(table([
      ['churn', 'created', 'refreshed', 'deleted (Refresh 0)', 'expired (437 after lifetime)', 'relay checks', 'live at end', 'requests/checks failed across a gap', 'violations'],
      ['', String(counts.created), String(counts.refreshed), String(counts.deleted), `${counts.expired}/${counts.expiryChecked}`, String(counts.relayChecks), String(alive.length), String(timedOutInGaps.length), String(final.violations.length - timedOutInGaps.length)],
    ]));
    out.push('');
    out.push(table([
      ['traffic', 'sent in gaps', 'lost in gaps', 'sent outside', 'lost outside'],
      ['ChannelData (kernel path)', String(loss.inGap.channel.sent), `${loss.inGap.channel.lost} (${pct(loss.inGap.channel.lost, loss.inGap.channel.sent)})`, String(loss.outside.channel.sent), `${loss.outside.channel.lost} (${pct(loss.outside.channel.lost, loss.outside.channel.sent)})`],
      ['Send/Data (relay)', String(loss.inGap.send.sent), `${loss.inGap.send.lost} (${pct(loss.inGap.send.lost, loss.inGap.send.sent)})`, String(loss.outside.send.sent), `${loss.outside.send.lost} (${pct(loss.outside.send.lost, loss.outside.send.sent)})`],
    ]));
    out.push('');
    // The loss timeline: every second that lost something or lies in a gap window.
    const rows = final.timeline.filter((s) => gapOf(s.sec, gaps, gapAfterMs) || s.channel.received < s.channel.sent || s.send.received < s.send.sent);
    out.push(table([
      ['second', 'gap', 'ChannelData sent/lost', 'Send sent/lost'],
      ...rows.map((s) => [String(s.sec - t0), gapOf(s.sec, gaps, gapAfterMs)?.kind ?? 'OUTSIDE', `${s.channel.sent}/${s.channel.sent - s.channel.received}`, `${s.send.sent}/${s.send.sent - s.send.received}`]),
    ]));
    out.push('');
    out.push(table([
      ['process', 'instances', 'RSS start (MB)', 'end (MB)', 'max (MB)', 'growth (MB)', 'slope (MB/min)'],
      ...mem.map((m) => [m.role, String(m.instances), fmt(m.startMb, 1), fmt(m.endMb, 1), fmt(m.maxMb, 1), `${fmt(m.growthMb, 1)} (<= ${rssGrowthBound})`, `${fmt(m.slopeMbPerMin, 2)} (${judgeSlope ? '<=' : `judged from ${SLOPE_JUDGED_FROM_MIN} min, <=`} ${rssSlopeBound})`]),
    ]));
    out.push('');
    out.push(table([
      ['state at the end', 'allocations', 'permissions', 'channels', 'allocation ports', 'tp_chan_to_peer', 'tp_peer_to_chan'],
      ['clients', String(alive.length), String(alive.length), String(expected.length), '-', '-', '-'],
      ['relay (/status)', String(c?.allocations ?? '-'), String(c?.permissions ?? '-'), String(c?.channels ?? '-'), String(allocationPorts(status)), '-', '-'],
      ['kernel (pinned tables)', '-', '-', '-', '-', String(kernel.chanToPeer.length), String(kernel.peerToChan.length)],
    ]));
    out.push('');
    out.push(failures.length === 0 ? 'PASS: maps equal the relay state, no live allocation lost, loss only in restart gaps, memory flat' : `FAIL:\n${failures.map((f) => `- ${f}`).join('\n')}`);
    process.stdout.write(out.join('\n') + '\n');
    if (opt.out) writeFileSync(`${opt.out}.pair.log`, pair.output());
    if (opt.out) writeFileSync(opt.out, JSON.stringify({ startedAt, minutes: ranMin, gaps, counts, alive, kernel, status, loss, memory: mem, rss, timeline: final.timeline, failures }, null, 1));
    return failures.length === 0 ? 0 : 1;
  } catch (e) {
    process.stderr.write(`soak: ${(e as Error).stack ?? e}\n`);
    if (pair) process.stderr.write(`--- pair output (tail) ---\n${pair.output().split('\n').slice(-40).join('\n')}\n`);
    if (driver) process.stderr.write(`--- driver stderr (tail) ---\n${driver.output().slice(-3000)}\n`);
    return 1;
  } finally {
    peer?.kill();
    await cleanup();
  }
}

process.exitCode = await main();
// Let stdout drain; handles from helpers must not keep the process.
setTimeout(() => process.exit(process.exitCode), 200).unref();
