// The contract of getView(), the zero-copy read, exactly as the README states it:
//  - guaranteed: the view's bytes stay the value's until the next read on this thread, whatever
//    the other threads do meanwhile (the checkpointer evicting every other frame of a 16-frame
//    cache, checkpoints that rewrite the value, free its page and reuse the page's number);
//  - not guaranteed: after the next read the frame may be reused, and the view shows another
//    page's bytes (this test makes it happen, so that nobody mistakes the view for a copy);
//  - values in the write buffer are views of the batch's bytes; values on overflow pages are
//    copied into one buffer that the next such read reuses.
import assert from 'node:assert/strict';
import { BirchError, open, type Birch } from '../../api/index.js';
import { rmDir, tmpDir } from '../helpers/index.js';

const KEYS = 2000;
const key = (i: number): string => `k${String(i).padStart(5, '0')}`;
const value = (i: number, round: number): Buffer => Buffer.from(`value ${i} of round ${round} `.padEnd(90, '.'));

async function fill(db: Birch, round: number): Promise<void> {
  for (let t = 0; t < KEYS; t += 200) {
    await db.batch(Array.from({ length: 200 }, (_, j) => ({ type: 'put' as const, key: key(t + j), value: value(t + j, round) })));
  }
  await db.checkpoint();
}

describe('getView: the zero-copy read', () => {
  let dir: string;
  let db: Birch;
  beforeEach(async () => {
    dir = tmpDir('birch-view');
    // 16 frames, and page numbers reused as soon as the free list allows.
    db = await open(dir, { cacheSize: 16 * 4096, allocation: { policy: 'first-fit' }, checkpointBytes: 1 << 20 });
    await fill(db, 0);
  });
  afterEach(async () => {
    await db.close();
    rmDir(dir);
  });

  it('keeps its bytes until the next read on this thread, through evictions and checkpoints that free and reuse its page', async () => {
    // Every leaf read once: the 16 frames hold leaves that readers wanted, so each checkpoint
    // below installs the leaves that replace them, evicting on its own thread.
    for (let i = 0; i < KEYS; i++) assert.deepEqual(db.get(key(i)), value(i, 0));
    const view = db.getView(key(777));
    assert.ok(view !== undefined);
    const expected = Buffer.from(view);
    assert.deepEqual(expected, value(777, 0));
    const before = db.stats().cache.evictions;
    // No read on this thread from here: three rounds rewrite every key (the value's leaf is freed
    // and, first-fit, its page number taken again), each checkpoint reading and evicting through
    // the 16 frames on the checkpointer's thread.
    for (let round = 1; round <= 3; round++) await fill(db, round);
    const s = db.stats();
    assert.ok(s.cache.evictions - before > 0, `${s.cache.evictions - before} evictions meanwhile`);
    assert.ok(s.checkpoints.count >= 4);
    assert.deepEqual(view, expected, 'the view still holds the value it was read with');
    assert.deepEqual(db.get(key(777)), value(777, 3), 'while the database has moved on');
  });

  it('may show another page once this thread reads again (it is not a copy)', () => {
    const view = db.getView(key(3));
    assert.ok(view !== undefined);
    const expected = Buffer.from(view);
    let changed = false;
    // Reads of keys far from it fill the 16 frames many times over: the unpinned frame is reused.
    for (let i = KEYS - 1; i > KEYS / 2 && !changed; i--) {
      assert.deepEqual(db.get(key(i)), value(i, 0));
      changed = !view.equals(expected);
    }
    assert.ok(changed, 'after later reads the old view showed other bytes');
  });

  it('reads the write buffer in place, copies overflow values into one reused buffer, and works on snapshots', async () => {
    await db.put('buffered', 'in the write buffer');
    assert.equal(db.getView('buffered')?.toString(), 'in the write buffer');
    assert.equal(db.getView('absent'), undefined);
    await db.batch([
      { type: 'put', key: 'big1', value: Buffer.alloc(5000, 1) },
      { type: 'put', key: 'big2', value: Buffer.alloc(5000, 2) },
    ]);
    await db.checkpoint();
    const big1 = db.getView('big1');
    assert.deepEqual(big1, Buffer.alloc(5000, 1));
    const big2 = db.getView('big2');
    assert.deepEqual(big2, Buffer.alloc(5000, 2));
    assert.deepEqual(big1, Buffer.alloc(5000, 2), 'the next overflow read reused the buffer the first view showed');
    const snap = db.snapshot();
    await db.put(key(5), 'changed');
    assert.deepEqual(snap.getView(key(5)), value(5, 0));
    assert.equal(db.getView(key(5))?.toString(), 'changed');
    snap.release();
    assert.throws(() => snap.getView(key(5)), (e: unknown) => e instanceof BirchError && e.code === 'TXN_CLOSED');
  });

  it('keeps a view of the write buffer through checkpoints that reuse the arena chunk its batch lies in, until the next read', async () => {
    await db.close();
    // Two free arena chunks of 4 MiB kept for reuse (half of checkpointBytes).
    db = await open(dir, { checkpointBytes: 16 << 20 });
    await db.put('held', 'a value read in place from the write buffer');
    const view = db.getView('held');
    assert.ok(view !== undefined);
    const expected = Buffer.from(view);
    // No read on this thread from here: about 3.5 MB of batches a round, each round checkpointed,
    // so that chunks fill, their generations are dropped and free chunks are written again.
    let free = 0;
    for (let round = 0; round < 6; round++) {
      for (let b = 0; b < 160; b++) {
        await db.batch(Array.from({ length: 100 }, (_, j) => ({ type: 'put' as const, key: `r${round}-${b}-${j}`, value: Buffer.alloc(200, 0x41 + round) })));
      }
      await db.checkpoint();
      free = Math.max(free, db.stats().memory.arenaFreeBytes);
    }
    assert.ok(free > 0, 'chunks were kept for reuse');
    assert.deepEqual(view, expected, 'the view changed before the next read');
  });
});
