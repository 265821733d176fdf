// The driver hands the server a monotonic `now`: a wall-clock step of hours
// (Date.now jumping) neither expires allocations early nor stretches them.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { METHOD } from '../../../src/relay/stun/index.ts';
import { Driver, type DatapathPort, type SansIoServer } from '../../../src/relay/transport/driver.ts';
import { monotonicClock } from '../../../src/relay/transport/clock.ts';
import type { Output } from '../../../src/relay/server/types.ts';
import { Harness, addr, decodeOk, type TurnClient } from '../server/harness.ts';

const HOUR = 3_600_000;

/** Date.now() from here on reads the real time plus `clock.step`. */
function steppableWallClock(t: TestContext): { step: number } {
  const real = Date.now.bind(Date);
  const clock = { step: 0 };
  t.mock.method(Date, 'now', () => real() + clock.step);
  return clock;
}

/** Records what the driver sends and the port-open requests it forwards. */
class RecordingPort implements DatapathPort {
  readonly sent: Uint8Array[] = [];
  opens: number[] = [];
  send(_from: unknown, _to: unknown, data: Uint8Array): void {
    this.sent.push(data);
  }
  openPort(token: number): void {
    this.opens.push(token);
  }
  closePort(): void {}
  onEvent(): void {}
}

function allocateThrough(driver: Driver, port: RecordingPort, c: TurnClient, lifetime: number): void {
  driver.datagram(c.build(METHOD.ALLOCATE, { requestedTransport: 17 }, { auth: false }), c.local, c.address);
  c.nonce = decodeOk(port.sent.pop()!).attributes.nonce;
  driver.datagram(c.build(METHOD.ALLOCATE, { requestedTransport: 17, lifetime }), c.local, c.address);
  const opens = port.opens;
  port.opens = [];
  for (const token of opens) driver.portOpened(token, true);
  assert.equal(decodeOk(port.sent.pop()!).cls, 'success');
}

test('monotonicClock reads like the wall clock at its start and ignores later wall-clock steps', (t) => {
  const wall = steppableWallClock(t);
  const clock = monotonicClock();
  const before = clock();
  assert.ok(Math.abs(before - Date.now()) < 1000);
  wall.step = 3 * HOUR;
  assert.ok(clock() - before < 1000);
  wall.step = -3 * HOUR;
  assert.ok(clock() >= before);
});

test('a wall-clock step forward of hours does not expire an allocation early (driver on the monotonic clock)', async (t) => {
  const wall = steppableWallClock(t);
  const h = new Harness();
  const port = new RecordingPort();
  const driver = new Driver(h.server, port);
  t.after(() => driver.close());
  const a = h.client(addr('198.51.100.1', 40001));
  const b = h.client(addr('198.51.100.2', 40001));
  allocateThrough(driver, port, a, 600);
  allocateThrough(driver, port, b, 700);
  assert.equal(h.server.stats().allocations, 2);
  wall.step = 3 * HOUR;
  // A deletes its allocation: the driver re-arms its timer for B's deadline, set before the step.
  driver.datagram(a.build(METHOD.REFRESH, { lifetime: 0 }), a.local, a.address);
  assert.equal(decodeOk(port.sent.pop()!).cls, 'success');
  await sleep(50);
  assert.equal(h.server.stats().allocations, 1, "B's 700 s lifetime did not end with the step");
});

test('the server sees elapsed time only, whichever way the wall clock steps', (t) => {
  const wall = steppableWallClock(t);
  const seen: number[] = [];
  const server: SansIoServer = {
    handleDatagram: (_d, _l, _r, now) => void seen.push(now),
    portOpened: () => {},
    handleTimeout: () => {},
    nextDeadline: () => undefined,
    pollOutput: (): Output | undefined => undefined,
  };
  const driver = new Driver(server, new RecordingPort());
  t.after(() => driver.close());
  const from = addr('198.51.100.1', 1);
  for (const step of [0, 3 * HOUR, -3 * HOUR]) {
    wall.step = step;
    driver.datagram(new Uint8Array(20), { family: 4, port: 3478 }, from);
  }
  assert.ok(seen[2]! - seen[0]! >= 0 && seen[2]! - seen[0]! < 1000, `now moved by ${seen[1]! - seen[0]!} then ${seen[2]! - seen[1]!} ms`);
  assert.ok(seen[1]! - seen[0]! < 1000);
});
