// Ranges over a tree and the write buffer (db/range.ts), without threads: a step that throws
// ends the range.
import assert from 'node:assert/strict';
import { RangeIterator } from '../../db/range.js';
import { Generation } from '../../db/buffer.js';
import type { TreeCursor } from '../../btree/cursor.js';
import { OP_PUT, opBytes, writeOp } from '../../journal/format.js';

/** A cursor over keys k0..k(n-1) that fails once, on its refill number `failAt` (counted from 1). */
function failingCursor(n: number, failAt: number): { cursor: TreeCursor; refills: () => number } {
  let at = 0;
  let refills = 0;
  const cursor = {
    next(keys: Buffer[], values: Buffer[], max: number): number {
      refills++;
      if (refills === failAt) throw new Error('read failed');
      let k = 0;
      for (; k < Math.min(max, 2) && at < n; k++, at++) {
        keys.push(Buffer.from(`k${at}`));
        values.push(Buffer.from(`v${at}`));
      }
      return k;
    },
  } as unknown as TreeCursor;
  return { cursor, refills: () => refills };
}

const SPAN = { lower: undefined, upper: undefined, reverse: false, limit: Infinity };

describe('range iterator', () => {
  it('ends after a step that throws: the next step reports the end and reads nothing more', () => {
    const { cursor, refills } = failingCursor(10, 2);
    const it = new RangeIterator({ buffered: [], seq: 1, cursor: () => cursor }, SPAN, () => undefined);
    assert.deepEqual([it.next().value, it.next().value].map((e) => e?.[0].toString()), ['k0', 'k1']);
    assert.throws(() => it.next(), /read failed/);
    assert.deepEqual(it.next(), { done: true, value: undefined });
    assert.equal(refills(), 2, 'no read after the failed one');
  });

  it('ends after a throwing step while merging the write buffer too', () => {
    const gen = new Generation();
    const buf = Buffer.alloc(opBytes(0, 2, 2));
    writeOp(buf, 0, OP_PUT, undefined, Buffer.from('k5'), Buffer.from('b5'));
    gen.write('', buf, 9, 2, 2, 1, 1);
    const { cursor, refills } = failingCursor(10, 2);
    const t = gen.trees.get('');
    assert.ok(t !== undefined);
    const it = new RangeIterator({ buffered: [t], seq: 1, cursor: () => cursor }, SPAN, () => undefined);
    assert.equal(it.next().value?.[0].toString(), 'k0');
    assert.equal(it.next().value?.[0].toString(), 'k1');
    assert.throws(() => it.next(), /read failed/);
    assert.deepEqual(it.next(), { done: true, value: undefined });
    assert.equal(refills(), 2);
  });
});
