// A session's life in the `session` logger at debug, driven through the
// sans-IO server: each line with the fields an operator greps for, expiries
// and deletions told once with the right reason, refusals with their RFC
// code and reason, client-triggered lines bounded per source address, and
// nothing built when the logger is above debug.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { METHOD, encodeMessage } from '../../../src/relay/stun/index.ts';
import { createRateLimiter } from '../../../src/relay/policy/index.ts';
import { LineBudget } from '../../../src/shared/logger.ts';
import { Harness, LISTEN4, addr } from './harness.ts';

const c1 = addr('198.51.100.1', 40001);
const peer = addr('203.0.113.5', 6000);

interface Line {
  level: number;
  msg: string;
  [k: string]: any;
}

function setup(opts: { level?: pino.Level; perSecond?: number; clock?: () => number } = {}) {
  const lines: Line[] = [];
  const logger = pino({ level: opts.level ?? 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const budget = new LineBudget(opts.perSecond ?? 1000, 4096, opts.clock);
  const h = new Harness({ defaultLifetime: 600, sessionLog: { logger, budget }, rateLimits: { unauthenticated: createRateLimiter({ perSecond: 1, burst: 1, maxEntries: 16 }) } });
  const msgs = () => lines.map((l) => l.msg);
  return { h, lines, budget, msgs, take: () => lines.splice(0) };
}

test('a session from allocation to expiry, each line at debug with client, user, ports, peer, channel, lifetime', () => {
  const { h, take } = setup();
  const c = h.client(c1);
  const port = c.allocate().ports.v4!;
  const alloc = take();
  // The 401 challenge, then the allocation.
  assert.deepEqual(alloc.map((l) => l.msg), ['request refused', 'allocation created']);
  assert.ok(alloc.every((l) => l.level === 20));
  assert.deepEqual(
    { code: alloc[0]!.code, error: alloc[0]!.error, reason: alloc[0]!.reason, method: alloc[0]!.method, client: alloc[0]!.client },
    { code: 401, error: 'Unauthenticated', reason: 'auth', method: 'allocate', client: '198.51.100.1:40001' },
  );
  assert.deepEqual(
    (({ client, transport, user, ports, lifetime }) => ({ client, transport, user, ports, lifetime }))(alloc[1]!),
    { client: '198.51.100.1:40001', transport: 'udp', user: 'alice', ports: { v4: port }, lifetime: 600 },
  );

  c.createPermission(peer);
  const [perm] = take();
  assert.equal(perm!.msg, 'permission installed');
  assert.equal(perm!.peer, '203.0.113.5');
  assert.equal(perm!.lifetime, 300);

  c.channelBind(0x4001, peer);
  const [bound] = take();
  assert.deepEqual(
    (({ msg, client, user, channel, peer: p, port: pt, lifetime }) => ({ msg, client, user, channel, peer: p, port: pt, lifetime }))(bound!),
    { msg: 'channel bound', client: '198.51.100.1:40001', user: 'alice', channel: 0x4001, peer: '203.0.113.5:6000', port, lifetime: 600 },
  );
  c.channelBind(0x4001, peer);
  assert.deepEqual(take().map((l) => l.msg), ['channel refreshed']);

  c.refresh(900);
  const [refreshed] = take();
  assert.equal(refreshed!.msg, 'allocation refreshed');
  assert.equal(refreshed!.lifetime, 900);

  // 300 s: the permission lapses and takes the bound channel off the data plane.
  h.advance(300_000);
  const lapsed = take();
  assert.deepEqual(lapsed.map((l) => [l.msg, l.reason]), [['permission expired', undefined], ['channel unbound', 'permission-expired']]);
  assert.equal(lapsed[0]!.peer, '203.0.113.5');
  // 600 s after the last ChannelBind the channel expires (told once, no second unbind line).
  h.advance(300_000);
  assert.deepEqual(take().map((l) => l.msg), ['channel expired']);
  // The allocation's own expiry: one line, "expired".
  h.advance(300_000);
  const end = take();
  assert.deepEqual(end.map((l) => l.msg), ['allocation expired']);
  assert.deepEqual(end[0]!.ports, { v4: port });
});

test('a client deleting its allocation: deleted, and its live channels unbound with it', () => {
  const { h, take } = setup();
  const c = h.client(c1);
  c.allocate();
  c.channelBind(0x4001, peer);
  take();
  c.refresh(0);
  assert.deepEqual(take().map((l) => [l.msg, l.reason]), [['allocation deleted', undefined], ['channel unbound', 'allocation-ended']]);
});

test('refusals carry the RFC code and the reason an operator looks for', () => {
  const { h, take } = setup();
  const c = h.client(c1);
  c.allocate();
  take();
  // Peer policy: loopback is denied by default.
  c.createPermission(addr('127.0.0.1', 9));
  const [denied] = take();
  assert.deepEqual(
    (({ msg, code, error, reason, detail, user, method }) => ({ msg, code, error, reason, detail, user, method }))(denied!),
    { msg: 'request refused', code: 403, error: 'Forbidden', reason: 'peer-policy', detail: 'peer 127.0.0.1 denied: loopback', user: 'alice', method: 'create-permission' },
  );
  // Wrong credentials on an existing allocation.
  const bob = h.client(c1, 'bob');
  bob.nonce = c.nonce;
  bob.request(METHOD.REFRESH, {});
  const [wrong] = take();
  assert.equal(wrong!.code, 441);
  assert.equal(wrong!.reason, 'auth');
  // A second Allocate on the same 5-tuple.
  c.request(METHOD.ALLOCATE, { requestedTransport: 17 });
  assert.equal(take()[0]!.code, 437);
});

test('quota refusals say so', () => {
  const lines: Line[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const h = new Harness({ maxAllocationsPerUser: 1, sessionLog: { logger, budget: new LineBudget(1000) } });
  h.client(c1).allocate();
  lines.length = 0;
  const second = h.client(addr('198.51.100.2', 40002));
  second.challenge();
  second.request(METHOD.ALLOCATE, { requestedTransport: 17 });
  const refused = lines.find((l) => l.code === 486)!;
  assert.equal(refused.reason, 'quota');
  assert.equal(refused.error, 'Allocation Quota Reached');
});

test('over the unauthenticated rate limit: the drop is a line with reason rate-limit', () => {
  const { h, take } = setup();
  const c = h.client(c1);
  c.challenge(); // takes the one token
  take();
  c.request(METHOD.ALLOCATE, { requestedTransport: 17 }, { auth: false });
  const [dropped] = take();
  assert.deepEqual((({ msg, reason, client }) => ({ msg, reason, client }))(dropped!), { msg: 'request dropped', reason: 'rate-limit', client: '198.51.100.1:40001' });
});

test('a request the codec refuses is a refusal line too', () => {
  const { h, take } = setup();
  // An unknown comprehension-required attribute: 420 from the codec.
  const msg = encodeMessage({ method: METHOD.ALLOCATE, cls: 'request', transactionId: new Uint8Array(12).fill(7), attributes: {} }, { fingerprint: false });
  const raw = Buffer.concat([Buffer.from(msg), Buffer.from([0x00, 0x2f, 0x00, 0x04, 1, 2, 3, 4])]);
  raw.writeUInt16BE(raw.length - 20, 2);
  h.input(new Uint8Array(raw), LISTEN4, c1);
  const [l] = take();
  assert.equal(l?.msg, 'request refused');
  assert.equal(l?.code, 420);
  assert.equal(l?.reason, 'bad-request');
});

test('lines a client triggers are bounded per source address per second; drops are counted; expiries are not bounded', () => {
  let now = 0;
  const { h, take, budget } = setup({ perSecond: 3, clock: () => now });
  const c = h.client(c1);
  c.allocate(); // 2 lines: refused 401, created
  for (let i = 0; i < 5; i++) c.createPermission(peer);
  assert.equal(take().length, 3);
  assert.equal(budget.suppressed, 4);
  // Another source has its own budget.
  const c2 = h.client(addr('198.51.100.2', 40002));
  c2.challenge();
  assert.equal(take().length, 1);
  // Next second: the budget is back.
  now += 1000;
  c.createPermission(peer);
  assert.equal(take().length, 1);
  // Expiry lines do not spend it.
  for (let i = 0; i < 3; i++) c.createPermission(peer);
  take();
  h.advance(300_000);
  assert.deepEqual(take().map((l) => l.msg), ['permission expired']);
});

test('above debug nothing is built: no line, no budget spent', () => {
  const { h, lines, budget } = setup({ level: 'info', perSecond: 1 });
  const c = h.client(c1);
  c.allocate();
  c.createPermission(peer);
  c.channelBind(0x4001, peer);
  h.advance(700_000);
  assert.equal(lines.length, 0);
  assert.equal(budget.suppressed, 0);
});
