import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TimerHeap, type Timer } from '../../../src/relay/server/timer-heap.ts';

test('timers pop in deadline order and honour moves and cancels', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({ op: fc.constant('schedule' as const), id: fc.nat(20), at: fc.nat(1000) }),
          fc.record({ op: fc.constant('cancel' as const), id: fc.nat(20) }),
          fc.record({ op: fc.constant('pop' as const), now: fc.nat(1000) }),
        ),
        { maxLength: 200 },
      ),
      (ops) => {
        const heap = new TimerHeap<number>();
        const timers = new Map<number, Timer<number>>();
        const model = new Map<number, number>(); // id -> at
        for (const o of ops) {
          if (o.op === 'schedule') {
            let t = timers.get(o.id);
            if (!t) timers.set(o.id, (t = TimerHeap.timer(o.id)));
            heap.schedule(t, o.at);
            model.set(o.id, o.at);
          } else if (o.op === 'cancel') {
            const t = timers.get(o.id);
            if (t) heap.cancel(t);
            model.delete(o.id);
          } else {
            const popped: number[] = [];
            for (let t = heap.popDue(o.now); t; t = heap.popDue(o.now)) {
              assert.equal(t.index, -1);
              popped.push(t.at);
              assert.equal(model.get(t.item), t.at);
              model.delete(t.item);
            }
            assert.deepEqual(popped, [...popped].sort((a, b) => a - b));
            for (const at of model.values()) assert.ok(at > o.now);
          }
          assert.equal(heap.size, model.size);
          const min = model.size ? Math.min(...model.values()) : undefined;
          assert.equal(heap.peek(), min);
        }
      },
    ),
    { seed: 1, numRuns: 300 },
  );
});
