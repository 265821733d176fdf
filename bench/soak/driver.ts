// The soak's TURN clients, run as their own process in the client namespace
// (bench/soak.ts starts it with nsenter). Two kinds of allocation:
// - steady: allocated at start and kept (refreshed) to the end, each sending
//   `rate` datagrams a second to the echo peer, half as ChannelData (the
//   kernel path both ways) and half as Send indications (the relay's
//   userspace path both ways); every echo is counted against the second it
//   was sent in, so the timeline shows loss per second of sending.
// - churn: created, checked to relay (ChannelData and Send), then either
//   refreshed and later deleted with Refresh 0 ('long'), or left to expire
//   with a short lifetime and checked to be gone (437) afterwards ('short').
// A request for an allocation that should be alive failing, or one that
// should have expired still answering, is a violation, printed at once.
// Protocol: JSON lines on stdout ({event: ready | stats | violation | final});
// a line "stop" on stdin ends the churn and the traffic, verifies every live
// allocation once more (Refresh answers, both paths relay) and prints 'final'.
import { createInterface } from 'node:readline';
import { TurnClient, TurnError, toStunAddress, type RelayTarget } from '../../test/helpers/turn-client.ts';

export interface DriverArgs extends RelayTarget {
  /** Steady allocations (half ChannelData, half Send). */
  steady: number;
  /** Datagrams a second per steady allocation. */
  rate: number;
  /** One churn step every this many ms. */
  churnEveryMs: number;
  /** Churn allocations alive at most at once. */
  maxChurn: number;
  /** Lifetime (s) asked by 'short' churn allocations, never refreshed: the relay's defaultLifetime must allow it. */
  shortLifetime: number;
  /** Lifetime (s) asked by steady and 'long' allocations, refreshed at a third of it. */
  longLifetime: number;
}

export interface Second {
  /** Unix second the datagrams were sent in. */
  sec: number;
  channel: { sent: number; received: number };
  send: { sent: number; received: number };
}

export interface LiveAllocation {
  clientPort: number;
  relayedPort: number;
  channel?: number;
  peer: { address: string; port: number };
  kind: 'steady' | 'long';
}

export interface DriverFinal {
  event: 'final';
  alive: LiveAllocation[];
  timeline: Second[];
  counts: Counts;
  violations: Violation[];
}

export interface Violation {
  at: number;
  /** When the failed exchange began: a request that timed out across a restart gap is the gap's loss, not a violation. */
  since: number;
  kind: 'allocation-lost' | 'not-expired' | 'no-relay' | 'request-failed';
  detail: string;
}

interface Counts {
  created: number;
  refreshed: number;
  deleted: number;
  expired: number;
  expiryChecked: number;
  relayChecks: number;
  requestRetransmits: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as DriverArgs;
const print = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const peer = toStunAddress(args.peer, args.peerPort);
const CHANNEL = 0x4000;
/**
 * Retransmit budget per request, a real client's (RFC 8489 §6.2.1: Rc = 7,
 * Rm = 16, RTO 500 ms: 39.5 s). A request sent into a restart gap is answered
 * once the relay is back; one that is not answered by then is a violation.
 */
const REQUEST_TIMEOUT_MS = 39_500;
/** How long a relay check resends before it calls the path broken (spans a restart gap too). */
const RELAY_CHECK_MS = 39_500;

const counts: Counts = { created: 0, refreshed: 0, deleted: 0, expired: 0, expiryChecked: 0, relayChecks: 0, requestRetransmits: 0 };
const violations: Violation[] = [];
/** `since`: when the failed exchange began (a timeout spans since..at). */
const violation = (kind: Violation['kind'], detail: string, since = Date.now()) => {
  const v = { at: Date.now(), since, kind, detail };
  violations.push(v);
  print({ event: 'violation', ...v });
};

interface Session {
  id: number;
  client: TurnClient;
  clientPort: number;
  relayedPort: number;
  kind: 'steady' | 'long' | 'short';
  mode: 'channel' | 'send';
  bound: boolean;
  expiresAt: number;
  /** 'opening' until its permission (and channel) are in place: churn leaves it alone meanwhile. */
  state: 'opening' | 'alive' | 'deleting' | 'gone';
  refreshTimer?: NodeJS.Timeout;
  /** Echo tags this session waits for (relay checks). */
  waiting: Map<number, () => void>;
}

const sessions = new Map<number, Session>();
let nextId = 1;
let nextTag = 1;
const timeline = new Map<number, Second>();
const secondOf = (sec: number): Second => {
  let s = timeline.get(sec);
  if (!s) timeline.set(sec, (s = { sec, channel: { sent: 0, received: 0 }, send: { sent: 0, received: 0 } }));
  return s;
};

// Payload: u8 type (1 steady, 2 check), u32 session, u32 tag (check) or u32 seq, f64 send time (ms).
const PAYLOAD = 64;
function payload(type: 1 | 2, session: number, n: number, at: number): Uint8Array {
  const b = new Uint8Array(PAYLOAD);
  const v = new DataView(b.buffer);
  v.setUint8(0, type);
  v.setUint32(1, session);
  v.setUint32(5, n);
  v.setFloat64(9, at);
  return b;
}

function onEcho(s: Session, data: Uint8Array, viaChannel: boolean): void {
  if (data.length < 17) return;
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const type = v.getUint8(0);
  if (v.getUint32(1) !== s.id) return;
  if (type === 2) {
    s.waiting.get(v.getUint32(5))?.();
    return;
  }
  const sec = secondOf(Math.floor(v.getFloat64(9) / 1000));
  const mode = s.mode === 'channel' && viaChannel ? sec.channel : sec.send;
  if (mode.received < mode.sent) mode.received++;
}

async function open(kind: Session['kind'], mode: Session['mode'], stepped: (what: string) => void = () => {}): Promise<Session> {
  const client = await TurnClient.open({ server: { address: args.server, port: args.port }, username: args.username, password: args.password, timeoutMs: REQUEST_TIMEOUT_MS });
  const lifetime = kind === 'short' ? args.shortLifetime : args.longLifetime;
  let alloc;
  try {
    alloc = await client.allocate({ lifetime });
  } catch (e) {
    await client.close();
    throw e;
  }
  const s: Session = {
    id: nextId++,
    client,
    clientPort: client.local.port,
    relayedPort: alloc.relayed[0]!.port,
    kind,
    mode,
    bound: false,
    expiresAt: Date.now() + alloc.lifetime * 1000,
    state: 'opening',
    waiting: new Map(),
  };
  client.onData((d) => onEcho(s, d.data, d.channel !== undefined));
  sessions.set(s.id, s);
  counts.created++;
  stepped(`allocated ${s.clientPort}->${s.relayedPort} at ${new Date().toISOString()}, then CreatePermission`);
  try {
    await client.createPermission([toStunAddress(args.peer, 0)]);
    if (mode === 'channel') {
      stepped(`allocated ${s.clientPort}->${s.relayedPort}, permission at ${new Date().toISOString()}, then ChannelBind`);
      await client.channelBind(CHANNEL, peer);
      s.bound = true;
    }
  } catch (e) {
    // Half set up: deleted, so the relay holds nothing the clients do not count.
    await client.refresh(0).catch(() => {});
    await close(s);
    throw e;
  }
  if (kind !== 'short') scheduleRefresh(s, alloc.lifetime);
  if (s.state === 'opening') s.state = 'alive';
  return s;
}

function scheduleRefresh(s: Session, lifetime: number): void {
  s.refreshTimer = setTimeout(() => void refreshOnce(s), (lifetime * 1000) / 3);
}

/** Refresh of the allocation, its permission and its channel (permissions last 300 s, channels 600 s). */
async function refreshOnce(s: Session): Promise<void> {
  if (s.state !== 'alive' && s.state !== 'opening') return;
  const started = Date.now();
  try {
    const lifetime = await s.client.refresh(args.longLifetime);
    await s.client.createPermission([toStunAddress(args.peer, 0)]);
    if (s.bound) await s.client.channelBind(CHANNEL, peer);
    counts.refreshed++;
    s.expiresAt = Date.now() + lifetime * 1000;
    scheduleRefresh(s, lifetime);
  } catch (e) {
    if (s.state !== 'alive' && s.state !== 'opening') return;
    const lost = e instanceof TurnError && e.code === 437;
    violation(lost ? 'allocation-lost' : 'request-failed', `${s.kind} allocation ${s.clientPort}->${s.relayedPort}: refresh (sent ${new Date(started).toISOString()}): ${(e as Error).message}`, started);
    // A refresh that timed out (the relay away longer than a client waits) is tried again: the allocation may still be there.
    if (!lost) s.refreshTimer = setTimeout(() => void refreshOnce(s), 1000);
  }
}

/** Sends tagged datagrams (ChannelData when bound, and Send) until each comes back or `ms` pass. */
async function relays(s: Session, ms: number): Promise<string | undefined> {
  counts.relayChecks++;
  const kinds: ('channel' | 'send')[] = s.bound ? ['channel', 'send'] : ['send'];
  const failed: string[] = [];
  await Promise.all(kinds.map(async (k) => {
    const tag = nextTag++;
    let ok = false;
    s.waiting.set(tag, () => (ok = true));
    const until = Date.now() + ms;
    while (!ok && Date.now() < until && s.state !== 'gone') {
      const p = payload(2, s.id, tag, Date.now());
      if (k === 'channel') s.client.sendChannelData(CHANNEL, p);
      else s.client.sendIndication(peer, p);
      await sleep(200);
    }
    s.waiting.delete(tag);
    if (!ok) failed.push(k === 'channel' ? 'ChannelData' : 'Send');
  }));
  return failed.length > 0 ? `${failed.join(' and ')} not relayed within ${ms} ms` : undefined;
}

async function close(s: Session): Promise<void> {
  s.state = 'gone';
  clearTimeout(s.refreshTimer);
  counts.requestRetransmits += s.client.retransmits;
  sessions.delete(s.id);
  await s.client.close();
}

// --- steady traffic ---
const steady: Session[] = [];
let seq = 0;
let sending = true;
const trafficTimer = setInterval(() => {
  if (!sending) return;
  const now = Date.now();
  const sec = secondOf(Math.floor(now / 1000));
  // 20 ms ticks: rate/50 datagrams per session per tick.
  const n = Math.max(1, Math.round(args.rate / 50));
  for (const s of steady) {
    for (let i = 0; i < n; i++) {
      const p = payload(1, s.id, seq++, now);
      if (s.mode === 'channel') {
        s.client.sendChannelData(CHANNEL, p);
        sec.channel.sent++;
      } else {
        s.client.sendIndication(peer, p);
        sec.send.sent++;
      }
    }
  }
}, 20);

// --- churn ---
const inFlight = new Set<Promise<void>>();
const track = (p: Promise<void>) => {
  inFlight.add(p);
  void p.finally(() => inFlight.delete(p));
};

async function createChurn(): Promise<void> {
  let step = 'allocate';
  let allocatedAt = 0;
  const kind = Math.random() < 0.5 ? 'short' : 'long';
  let s: Session;
  const started = Date.now();
  try {
    s = await open(kind, 'channel', (what) => {
      step = what;
      allocatedAt ||= Date.now();
    });
  } catch (e) {
    // A short allocation whose set-up waited out a restart gap longer than its lifetime is gone, as it should be.
    if (kind === 'short' && allocatedAt > 0 && e instanceof TurnError && e.code === 437 && Date.now() - allocatedAt > args.shortLifetime * 1000) {
      counts.expired++;
      return;
    }
    violation('request-failed', `churn ${kind} allocation (started ${new Date(started).toISOString()}), ${step}: ${(e as Error).message}`, started);
    return;
  }
  const checked = Date.now();
  const bad = await relays(s, RELAY_CHECK_MS);
  if (bad && !(kind === 'short' && Date.now() > s.expiresAt)) violation('no-relay', `${kind} allocation ${s.clientPort}->${s.relayedPort}: ${bad}`, checked);
}

async function deleteChurn(s: Session): Promise<void> {
  s.state = 'deleting';
  clearTimeout(s.refreshTimer);
  const started = Date.now();
  try {
    await s.client.refresh(0);
    counts.deleted++;
  } catch (e) {
    // RFC 8656 §7.3: a 437 to a Refresh with lifetime 0 means the allocation is gone (a retransmission's answer after the first deleted it).
    if (e instanceof TurnError && e.code === 437) counts.deleted++;
    else violation('request-failed', `delete of ${s.clientPort}->${s.relayedPort}: ${(e as Error).message}`, started);
  }
  await close(s);
}

/** A short allocation past its expiry (plus margin): a Refresh must now be refused with 437. */
async function checkExpired(s: Session): Promise<void> {
  s.state = 'deleting';
  const started = Date.now();
  try {
    await s.client.refresh(args.shortLifetime);
    violation('not-expired', `short allocation ${s.clientPort}->${s.relayedPort} still answers ${Math.round((Date.now() - s.expiresAt) / 1000)} s after its expiry`);
  } catch (e) {
    if (e instanceof TurnError && e.code === 437) counts.expired++;
    else violation('request-failed', `expiry check of ${s.clientPort}->${s.relayedPort}: ${(e as Error).message}`, started);
  }
  counts.expiryChecked++;
  await close(s);
}

const EXPIRY_MARGIN_MS = 3000;
let churning = true;
const churnTimer = setInterval(() => {
  if (!churning) return;
  const now = Date.now();
  const churn = [...sessions.values()].filter((s) => s.kind !== 'steady');
  for (const s of churn) if (s.kind === 'short' && s.state === 'alive' && now > s.expiresAt + EXPIRY_MARGIN_MS) track(checkExpired(s));
  const alive = churn.filter((s) => s.state === 'alive');
  const deletable = alive.filter((s) => s.kind === 'long');
  if (alive.length < args.maxChurn && (deletable.length === 0 || Math.random() < 0.6)) track(createChurn());
  else if (deletable.length > 0) track(deleteChurn(deletable[Math.floor(Math.random() * deletable.length)]!));
}, args.churnEveryMs);

const statsTimer = setInterval(() => {
  const live = [...sessions.values()].filter((s) => s.state === 'alive');
  print({ event: 'stats', now: Date.now(), live: live.length, steady: steady.length, ...counts });
}, 5000);

// --- start ---
for (let i = 0; i < args.steady; i++) {
  steady.push(await open('steady', i % 2 === 0 ? 'channel' : 'send'));
}
print({ event: 'ready', steady: steady.map((s) => ({ clientPort: s.clientPort, relayedPort: s.relayedPort, mode: s.mode })) });

async function finish(): Promise<void> {
  churning = false;
  clearInterval(churnTimer);
  await Promise.allSettled([...inFlight]);
  // Short allocations still running are not part of the final state: deleted now (or already expired).
  await Promise.all([...sessions.values()].filter((s) => s.kind === 'short' && s.state === 'alive').map(async (s) => {
    s.state = 'deleting';
    await s.client.refresh(0).then(() => counts.deleted++, (e: Error) => {
      if (!(e instanceof TurnError && e.code === 437)) violation('request-failed', `final delete of short ${s.clientPort}: ${e.message}`);
    });
    await close(s);
  }));
  sending = false;
  clearInterval(trafficTimer);
  await sleep(1500);
  const alive = [...sessions.values()].filter((s) => s.state === 'alive');
  // Every allocation that should be alive still answers Refresh and relays.
  await Promise.all(alive.map(async (s) => {
    clearTimeout(s.refreshTimer);
    try {
      await s.client.refresh(args.longLifetime);
    } catch (e) {
      violation(e instanceof TurnError && e.code === 437 ? 'allocation-lost' : 'request-failed', `final refresh of ${s.kind} ${s.clientPort}->${s.relayedPort}: ${(e as Error).message}`);
      return;
    }
    const bad = await relays(s, 5000);
    if (bad) violation('no-relay', `final check of ${s.kind} ${s.clientPort}->${s.relayedPort}: ${bad}`);
  }));
  for (const s of sessions.values()) counts.requestRetransmits += s.client.retransmits;
  const now = Math.floor(Date.now() / 1000);
  const final: DriverFinal = {
    event: 'final',
    alive: alive.map((s) => ({ clientPort: s.clientPort, relayedPort: s.relayedPort, ...(s.bound ? { channel: CHANNEL } : {}), peer: { address: args.peer, port: args.peerPort }, kind: s.kind as 'steady' | 'long' })),
    timeline: [...timeline.values()].filter((s) => s.sec < now).sort((a, b) => a.sec - b.sec),
    counts,
    violations,
  };
  print(final);
  clearInterval(statsTimer);
  // The allocations stay (sockets closed, nothing deleted): the caller compares them with the kernel maps next.
  for (const s of sessions.values()) await s.client.close();
  process.exit(0);
}

createInterface({ input: process.stdin }).on('line', (l) => {
  if (l.trim() === 'stop') void finish();
});
