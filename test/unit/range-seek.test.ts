// seek() on range iterators: repositioning within the range's bounds, over the tree and the
// write buffer merged, forward and reverse, after the end, within a limit; checked against a
// sorted model of the same keys.
import assert from 'node:assert/strict';
import type { Birch } from '../../api/index.js';
import { memDb, rng } from '../helpers/index.js';

const k = (i: number): Buffer => Buffer.from(`k${String(i).padStart(4, '0')}`);

/** Keys 0..399 step 2 checkpointed into the tree, then odd keys 1..199 and deletes of every 10th in the buffer. */
async function mixed(): Promise<{ db: Birch; model: Map<string, string> }> {
  const { db } = await memDb({ checkpointBytes: 2 ** 40 });
  const model = new Map<string, string>();
  await db.batch(Array.from({ length: 200 }, (_, j) => ({ type: 'put' as const, key: k(2 * j), value: `t${2 * j}` })));
  for (let j = 0; j < 200; j++) model.set(k(2 * j).toString(), `t${2 * j}`);
  await db.checkpoint();
  await db.batch(Array.from({ length: 100 }, (_, j) => ({ type: 'put' as const, key: k(2 * j + 1), value: `b${2 * j + 1}` })));
  for (let j = 0; j < 100; j++) model.set(k(2 * j + 1).toString(), `b${2 * j + 1}`);
  await db.batch(Array.from({ length: 40 }, (_, j) => ({ type: 'del' as const, key: k(10 * j) })));
  for (let j = 0; j < 40; j++) model.delete(k(10 * j).toString());
  return { db, model };
}

const take = (it: Iterator<[Buffer, Buffer]>, n: number): string[] => {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = it.next();
    if (r.done === true) break;
    out.push(r.value[0].toString());
  }
  return out;
};

describe('range seek', () => {
  it('moves to the first key at or after the target (reverse: at or before), matching a model at random targets', async () => {
    const { db, model } = await mixed();
    const keys = [...model.keys()].sort();
    const snap = db.snapshot();
    const rand = rng(11);
    for (const reverse of [false, true]) {
      const it = snap.range({ reverse });
      for (let trial = 0; trial < 200; trial++) {
        const target = `k${String(Math.floor(rand() * 420)).padStart(4, '0')}${rand() < 0.3 ? 'x' : ''}`;
        it.seek(Buffer.from(target));
        const want = reverse ? keys.filter((x) => x <= target).reverse().slice(0, 3) : keys.filter((x) => x >= target).slice(0, 3);
        assert.deepEqual(take(it, 3), want, `seek to ${target}${reverse ? ', reverse' : ''}`);
      }
    }
    snap.release();
    await db.close();
  });

  it('stays within the range: a target before it starts at its start, one past it yields nothing; it restarts an ended range', async () => {
    const { db, model } = await mixed();
    const keys = [...model.keys()].sort();
    const snap = db.snapshot();
    const it = snap.range({ gte: k(100), lt: k(120) });
    const inRange = keys.filter((x) => x >= k(100).toString() && x < k(120).toString());
    assert.deepEqual(take(it, 100), inRange, 'the whole range');
    assert.equal(it.next().done, true);
    it.seek(k(0));
    assert.deepEqual(take(it, 100), inRange, 'a target before the range: from its start again');
    it.seek(k(300));
    assert.equal(it.next().done, true, 'a target past the range: nothing');
    it.seek(k(111));
    assert.deepEqual(take(it, 100), inRange.filter((x) => x >= k(111).toString()));
    const rev = snap.range({ gt: k(100), lte: k(120), reverse: true });
    rev.seek(k(500));
    assert.deepEqual(take(rev, 2), keys.filter((x) => x > k(100).toString() && x <= k(120).toString()).reverse().slice(0, 2));
    snap.release();
    await db.close();
  });

  it('counts what it yielded toward the limit across seeks, and reads the snapshot it was opened on', async () => {
    const { db } = await mixed();
    const snap = db.snapshot();
    const it = snap.range({ limit: 5 });
    assert.equal(take(it, 3).length, 3);
    it.seek(k(1));
    assert.deepEqual(take(it, 10), [k(1), k(2)].map(String), 'two more: the limit of five');
    it.seek(k(3));
    assert.equal(it.next().done, true, 'the limit holds after another seek');
    // Writes after the snapshot are not seen by a seek.
    const it2 = snap.range();
    await db.put(k(5), 'new');
    await db.del(k(3));
    it2.seek(k(3));
    assert.deepEqual(take(it2, 3), [k(3), k(4), k(5)].map(String), "the deleted key is still there");
    snap.release();
    assert.throws(() => it2.seek(k(1)), (e: Error & { code?: string }) => e.code === 'TXN_CLOSED');
    await db.close();
  });

  it('db.range() seeks on the snapshot its first step takes, and refuses once it has ended (its snapshot is released)', async () => {
    const { db } = await mixed();
    const it = db.range({ lt: k(20) });
    it.seek(k(15));
    assert.deepEqual(take(it, 2), [k(15), k(16)].map(String));
    it.seek('k0003');
    assert.deepEqual(take(it, 2), [k(3), k(4)].map(String), 'a string target is UTF-8');
    assert.deepEqual(take(it, 100).length, 14, 'to the end: k5..k19 less k10');
    assert.throws(() => it.seek(k(1)), (e: Error & { code?: string }) => e.code === 'TXN_CLOSED');
    const snap = db.snapshot();
    assert.throws(() => snap.range().seek(42 as unknown as string), (e: Error & { code?: string }) => e.code === 'KEY_INVALID');
    snap.release();
    await db.close();
  });
});
