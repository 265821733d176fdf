// The pending-Allocate state machine on its own: ports taken and freed in
// the pools, open-port / close-port outputs, tokens, retries, the deadline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PendingAllocations, type PendingStart } from '../../../src/relay/server/pending-allocations.ts';
import { PortPool } from '../../../src/relay/server/port-pool.ts';
import type { Family, Output } from '../../../src/relay/server/types.ts';
import { seededRandom } from './harness.ts';

const TIMEOUT = 5000;

function setup(opts: { portAttempts?: number; range?: { min: number; max: number } } = {}) {
  const out: Output[] = [];
  const range = opts.range ?? { min: 50000, max: 50099 };
  const pools = { 4: new PortPool(range), 6: new PortPool(range) };
  const p = new PendingAllocations<string>({
    pools,
    random: seededRandom(7),
    portAttempts: opts.portAttempts ?? 3,
    portOpenTimeout: TIMEOUT,
    emit: (o) => out.push(o),
  });
  /** Outputs since the last call. */
  const take = (): Output[] => out.splice(0);
  return { p, pools, take };
}

function request(families: Family[], extra: Partial<PendingStart<string>> = {}): PendingStart<string> {
  return { fiveTuple: `5t-${families.join('')}-${extra.username ?? 'u'}`, username: 'u', families, reservedPort: undefined, even: false, reserve: false, context: 'ctx', ...extra };
}

function opens(outs: Output[]): Array<{ token: number; family: Family; port: number }> {
  return outs.map((o) => {
    assert.equal(o.kind, 'open-port');
    return o as { kind: 'open-port'; token: number; family: Family; port: number };
  });
}

test('start takes one port per family and asks for each to be opened, with distinct tokens', () => {
  const { p, pools, take } = setup();
  const pending = p.start(request([4, 6]), 0)!;
  const o = opens(take());
  assert.deepEqual(o.map((x) => x.family), [4, 6]);
  assert.notEqual(o[0]!.token, o[1]!.token);
  assert.ok(pools[4].isTaken(o[0]!.port) && pools[6].isTaken(o[1]!.port));
  assert.equal(p.size, 1);
  assert.equal(p.countOf('u'), 1);
  assert.equal(p.of(pending.fiveTuple), pending);
  assert.equal(p.nextDeadline(), TIMEOUT);
});

test('complete once every port is open; the ports stay taken and nothing is emitted', () => {
  const { p, pools, take } = setup();
  p.start(request([4, 6]), 0);
  const [o4, o6] = opens(take());
  assert.equal(p.portOpened(o4!.token, true), undefined); // still waiting for IPv6
  const settled = p.portOpened(o6!.token, true)!;
  assert.equal(settled.outcome, 'complete');
  assert.equal(settled.pending.context, 'ctx');
  assert.deepEqual(settled.pending.ports.map((s) => [s.family, s.port, s.opened]), [[4, o4!.port, true], [6, o6!.port, true]]);
  assert.deepEqual(take(), []);
  assert.ok(pools[4].isTaken(o4!.port) && pools[6].isTaken(o6!.port));
  assert.equal(p.size, 0);
  assert.equal(p.countOf('u'), 0);
  assert.equal(p.nextDeadline(), undefined);
  assert.equal(p.portOpened(o4!.token, true), undefined); // a late duplicate: unknown token
});

test('a failed open retries another port with a new token, up to portAttempts, then fails', () => {
  const { p, pools, take } = setup({ portAttempts: 2 });
  p.start(request([4]), 0);
  const [first] = opens(take());
  assert.equal(p.portOpened(first!.token, false), undefined);
  const [second] = opens(take());
  assert.notEqual(second!.port, first!.port);
  assert.notEqual(second!.token, first!.token);
  assert.ok(!pools[4].isTaken(first!.port));
  const settled = p.portOpened(second!.token, false)!;
  assert.equal(settled.outcome, 'failed');
  assert.deepEqual(take(), []); // the failed port is freed; nothing left to close
  assert.equal(pools[4].used, 0);
  assert.equal(p.size, 0);
});

test('a failure in one family closes and frees the port already open in the other', () => {
  const { p, pools, take } = setup({ portAttempts: 1 });
  p.start(request([4, 6]), 0);
  const [o4, o6] = opens(take());
  assert.equal(p.portOpened(o4!.token, true), undefined);
  assert.equal(p.portOpened(o6!.token, false)!.outcome, 'failed');
  assert.deepEqual(take(), [{ kind: 'close-port', family: 4, port: o4!.port }]);
  assert.equal(pools[4].used + pools[6].used, 0);
  assert.equal(p.portOpened(o4!.token, true), undefined);
});

test('no free port: nothing stays taken and nothing is pending', () => {
  const { p, pools, take } = setup({ range: { min: 50000, max: 50000 } });
  pools[6].take(50000);
  assert.equal(p.start(request([4, 6]), 0), undefined);
  assert.deepEqual(take(), []);
  assert.ok(!pools[4].isTaken(50000));
  assert.equal(p.size, 0);
  assert.equal(p.countOf('u'), 0);
  assert.equal(p.nextDeadline(), undefined);
});

test('EVEN-PORT with R: an even port and the next one are taken, and both freed on failure', () => {
  const { p, pools, take } = setup({ portAttempts: 1 });
  const pending = p.start(request([4], { even: true, reserve: true }), 0)!;
  const [o] = opens(take());
  assert.equal(o!.port % 2, 0);
  assert.equal(pending.ports[0]!.pairPort, o!.port + 1);
  assert.ok(pools[4].isTaken(o!.port) && pools[4].isTaken(o!.port + 1));
  p.portOpened(o!.token, false);
  assert.equal(pools[4].used, 0);
});

test('a reserved port is opened as given and never retried', () => {
  const { p, pools, take } = setup({ portAttempts: 3 });
  pools[4].take(50042); // held by the reservation
  p.start(request([4], { reservedPort: 50042 }), 0);
  const [o] = opens(take());
  assert.equal(o!.port, 50042);
  assert.equal(p.portOpened(o!.token, false)!.outcome, 'failed');
  assert.deepEqual(take(), []);
  assert.ok(!pools[4].isTaken(50042));
});

test('the deadline is set at start, retries do not move it, and reaching it fails with close-port', () => {
  const { p, pools, take } = setup();
  p.start(request([4]), 1000);
  const [first] = opens(take());
  p.portOpened(first!.token, false);
  const [second] = opens(take());
  assert.equal(p.nextDeadline(), 1000 + TIMEOUT);
  assert.equal(p.popExpired(1000 + TIMEOUT - 1), undefined);
  const expired = p.popExpired(1000 + TIMEOUT)!;
  assert.equal(expired.context, 'ctx');
  assert.deepEqual(take(), [{ kind: 'close-port', family: 4, port: second!.port }]);
  assert.equal(pools[4].used, 0);
  assert.equal(p.popExpired(1000 + TIMEOUT), undefined);
  assert.equal(p.portOpened(second!.token, true), undefined); // the open that completes too late
  assert.equal(p.size, 0);
});

test('pending Allocates are counted per user until they settle', () => {
  const { p, take } = setup();
  p.start(request([4], { username: 'a' }), 0);
  p.start(request([6], { username: 'a' }), 0);
  p.start(request([4], { username: 'b' }), 0);
  const o = opens(take());
  assert.equal(p.countOf('a'), 2);
  assert.equal(p.countOf('b'), 1);
  assert.equal(p.size, 3);
  p.portOpened(o[0]!.token, true);
  assert.equal(p.countOf('a'), 1);
  p.popExpired(TIMEOUT);
  p.popExpired(TIMEOUT);
  assert.equal(p.countOf('a') + p.countOf('b'), 0);
  assert.equal(p.size, 0);
});
