import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PortPool, randomInt, type RandomSource } from '../../../src/relay/server/port-pool.ts';

function counterRandom(seed = 1): RandomSource {
  let x = seed >>> 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      out[i] = x >>> 24;
    }
    return out;
  };
}

test('randomInt stays in range', () => {
  const r = counterRandom();
  for (let i = 0; i < 1000; i++) {
    const v = randomInt(r, 7);
    assert.ok(v >= 0 && v < 7);
  }
  assert.equal(randomInt(r, 1), 0);
});

test('pick returns every free port before running out, then undefined', () => {
  const pool = new PortPool({ min: 50000, max: 50009 });
  const r = counterRandom(7);
  const got = new Set<number>();
  for (let i = 0; i < 10; i++) {
    const p = pool.pick(r);
    assert.ok(p !== undefined && p >= 50000 && p <= 50009 && !got.has(p));
    got.add(p);
    pool.take(p);
  }
  assert.equal(pool.pick(r), undefined);
  pool.release(50004);
  assert.equal(pool.pick(r), 50004);
});

test('even and paired picks', () => {
  const pool = new PortPool({ min: 50001, max: 50006 }); // even: 50002, 50004, 50006
  const r = counterRandom(3);
  for (let i = 0; i < 50; i++) assert.equal(pool.pick(r, { even: true })! % 2, 0);
  // pair needs p+1 <= max: 50006 cannot pair
  pool.take(50003);
  for (let i = 0; i < 50; i++) assert.equal(pool.pick(r, { pair: true }), 50004);
  pool.take(50005);
  assert.equal(pool.pick(r, { pair: true }), undefined);
  assert.ok([50002, 50004, 50006].includes(pool.pick(r, { even: true })!));
});

test('a range with no even port', () => {
  const pool = new PortPool({ min: 50001, max: 50001 });
  assert.equal(pool.pick(counterRandom(), { even: true }), undefined);
  assert.equal(pool.pick(counterRandom()), 50001);
});
