// Checkpoints through the public API, on a memory disk (the writer and checkpointer on this
// thread): snapshots across checkpoints, deferred page reuse, tree drops, recovery, compaction.
import assert from 'node:assert/strict';
import { MemoryDirectory, open, type Birch } from '../../api/index.js';
import type { MemoryFile } from '../../pager/backend.js';
import { readMetas } from '../../pager/data-file.js';
import { decodeFreeList } from '../../pager/freelist.js';
import { PAGE_SIZE } from '../../pager/page-format.js';
import { assertClean, key, memDb, rng } from '../helpers/index.js';

const value = (i: number, round: number): string => `v${round}-${i}-`.padEnd(90, 'x');

async function writeRound(db: Birch, n: number, round: number, tree?: string): Promise<void> {
  for (let t = 0; t < n / 100; t++) {
    await db.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: key(t * 100 + i), value: value(t * 100 + i, round), ...(tree === undefined ? {} : { tree }) })));
  }
}

describe('checkpoints: readers, page reuse, trees, recovery and compaction', () => {
  it('snapshots and iterations keep their batch across checkpoints that publish new trees and drop the frozen buffer', async () => {
    const { db } = await memDb({ checkpointBytes: 64 * 1024 });
    await writeRound(db, 2000, 0);
    const snap = db.snapshot();
    const it = db.range({ limit: 1500 });
    assert.equal(it.next().value?.[1].toString(), value(0, 0));
    const before = db.stats({ trees: false }).checkpoints.count;
    for (let round = 1; round <= 4; round++) await writeRound(db, 2000, round);
    assert.ok(db.stats({ trees: false }).checkpoints.count >= before + 4, 'checkpoints ran meanwhile');
    const rest = [...it];
    assert.equal(rest.length, 1499);
    assert.ok(rest.every(([k, v]) => v.toString() === value(Number(k.toString()), 0)), 'the iteration kept its batch');
    for (let i = 0; i < 2000; i += 97) assert.equal(snap.get(key(i))?.toString(), value(i, 0));
    assert.equal(db.get(key(5))?.toString(), value(5, 4));
    snap.release();
    await db.checkpoint();
    assertClean(db);
    await db.close();
  });

  it('reuses a freed page only once no snapshot reads the trees it belonged to', async () => {
    const { db } = await memDb({ checkpointBytes: 2 ** 40 });
    await writeRound(db, 3000, 0);
    await db.checkpoint();
    const grow = async (rounds: number, from: number): Promise<number> => {
      const start = db.stats({ trees: false }).dataFile.pageCount;
      for (let r = from; r < from + rounds; r++) {
        await writeRound(db, 3000, r);
        await db.checkpoint();
      }
      return db.stats({ trees: false }).dataFile.pageCount - start;
    };
    // Warm up: two checkpoints before freed pages come back (both metas must pass the one that freed them).
    await grow(3, 1);
    const snap = db.snapshot();
    // The first two rounds reuse pages freed up to the snapshot's checkpoint; from then on every
    // page a round frees is one the snapshot reads, and each round takes new pages.
    const pinned = await grow(6, 10);
    snap.release();
    await grow(3, 20); // the pages held for the snapshot come back
    const free = await grow(4, 30);
    const tree = db.stats({ trees: true }).trees[0];
    assert.ok(tree !== undefined);
    const treePages = tree.leafPages + tree.branchPages;
    console.log(`      every round rewrites the tree (${treePages} pages): the file grew ${pinned} pages in 6 rounds with a snapshot held, ${free} in 4 rounds after its release`);
    assert.ok(pinned >= 3 * treePages, 'with a snapshot held, nothing it reads is reused: the file grows by the tree each round');
    assert.ok(free <= treePages / 4, 'released, freed pages are reused and the file stops growing');
    assertClean(db);
    await db.close();
  });

  it('drops the cached images of the pages a checkpoint freed once no reader reads the trees they belonged to, and not before', async () => {
    const { db } = await memDb({ checkpointBytes: 2 ** 40 });
    const N = 3000;
    const readAll = (from: { get(k: string): Buffer | undefined }, round: number): void => {
      for (let i = 0; i < N; i++) assert.equal(from.get(key(i))?.toString(), value(i, round));
    };
    // Every round rewrites every leaf and reads every key, so each tree is cached whole; the
    // checkpoint installs a new image for each cached leaf it replaces (warm stays warm).
    const round = async (r: number): Promise<void> => {
      await writeRound(db, N, r);
      await db.checkpoint();
      readAll(db, r);
    };
    for (let r = 0; r < 3; r++) await round(r);
    const tree = db.stats({ trees: true }).trees[0];
    assert.ok(tree !== undefined);
    const treePages = tree.leafPages + tree.branchPages;
    const cachedPages = (): number => db.stats({ trees: false }).cache.bytes / PAGE_SIZE;
    let most = 0;
    for (let r = 3; r < 9; r++) {
      await round(r);
      most = Math.max(most, cachedPages());
    }
    console.log(`      every round rewrites the tree (${treePages} pages): at most ${most} pages cached after a round`);
    // The newest tree, the one before it (its images go when the next checkpoint starts), and the
    // free-space bitmap; kept until their numbers were taken again, older trees made it three or more.
    assert.ok(most <= 2 * treePages + 8, `${most} pages cached for a tree of ${treePages}`);
    // A snapshot keeps the images of the trees it reads: its reads stay hits across checkpoints.
    const snap = db.snapshot();
    for (let r = 9; r < 12; r++) await round(r);
    const before = db.stats({ trees: false }).cache;
    readAll(snap, 8);
    const after = db.stats({ trees: false }).cache;
    assert.equal(after.misses - before.misses, 0, 'the snapshot read every page from the cache');
    snap.release();
    assertClean(db);
    await db.close();
  });

  it('a dropped tree: gone at once for new readers, whole for snapshots older than the drop, across checkpoints and a re-creation', async () => {
    const { db } = await memDb({ checkpointBytes: 32 * 1024 });
    await writeRound(db, 1000, 0, 'albums');
    await db.checkpoint();
    await writeRound(db, 500, 1, 'albums'); // in the buffer, over the tree
    const old = db.snapshot();
    await db.dropTree('albums');
    assert.deepEqual(db.trees(), []);
    assert.equal(db.get(key(1), { tree: 'albums' }), undefined);
    assert.deepEqual(old.trees(), ['albums']);
    assert.equal(old.get(key(1), { tree: 'albums' })?.toString(), value(1, 1));
    await db.put('again', 'new', { tree: 'albums' });
    await db.checkpoint();
    assert.deepEqual([...db.range({ tree: 'albums' })].map(([k, v]) => `${k}=${v}`), ['again=new']);
    assert.equal([...old.range({ tree: 'albums' })].length, 1000, 'the snapshot still reads the dropped tree');
    assert.equal(old.get(key(999), { tree: 'albums' })?.toString(), value(999, 0));
    old.release();
    await db.checkpoint();
    assertClean(db);
    await db.close();
  });

  it('recovery replays what the journal holds past the last checkpoint, and reports it', async () => {
    const h = await memDb({ checkpointBytes: 2 ** 40 });
    await writeRound(h.db, 1000, 0);
    await h.db.checkpoint();
    await writeRound(h.db, 700, 1);
    const db = await h.crash();
    assert.ok(db.stats({ trees: false }).dataFile.bytes > 0, 'the data file is reported from the open on');
    const r = db.stats({ trees: false }).recovery;
    assert.equal(r.batches, 7);
    assert.equal(r.ops, 700);
    assert.ok(r.ms > 0, 'the replay is timed');
    assert.equal(db.get(key(600))?.toString(), value(600, 1));
    assert.equal(db.get(key(800))?.toString(), value(800, 0));
    await db.close();
  });

  it('regression: a checkpoint that starts while a turn of batches is not yet sent puts the boundary after them (a record straddled it: INTERNAL under load)', async () => {
    const { db } = await memDb({ checkpointBytes: 16 * 1024 });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 2000 }, async (_, c) => {
        for (let n = 0; n < 10; n++) await db.put(`c${c}-${n % 3}`, `value ${n} `.repeat(4));
      }),
    );
    const failed = outcomes.filter((o) => o.status === 'rejected');
    assert.equal(failed.length, 0, String((failed[0] as PromiseRejectedResult | undefined)?.reason));
    assert.ok(db.stats({ trees: false }).checkpoints.count >= 5, 'checkpoints ran among the batches');
    await db.checkpoint();
    assertClean(db);
    await db.close();
  });

  it('regression: a free page between the leaves a checkpoint reads ahead may hold anything (read-ahead verified every page of a run)', async () => {
    const dir = new MemoryDirectory();
    const db = await open('p', { backend: dir, checkpointBytes: 2 ** 40 });
    await writeRound(db, 5000, 0);
    await db.checkpoint();
    await writeRound(db, 5000, 1);
    await db.checkpoint();
    await writeRound(db, 5000, 2);
    await db.checkpoint(); // the pages the first checkpoint wrote are free now, between the tree's
    // Garbage in every free page below the end of the file: what a torn write leaves.
    const file = dir.files.get('data.birch') as MemoryFile;
    const state = readMetas(file).newest;
    const read = (no: number): Buffer => file.data.subarray(no * PAGE_SIZE, (no + 1) * PAGE_SIZE);
    const { runs } = decodeFreeList(state.freeRoot, state.pageCount, (no) => read(no));
    let garbled = 0;
    for (const [start, len] of runs.runs()) for (let p = start; p < start + len; p++, garbled++) read(p).fill(0x5a);
    assert.ok(garbled > 100);
    await writeRound(db, 5000, 3);
    await db.checkpoint();
    assert.equal(db.get(key(4999))?.toString(), value(4999, 3));
    assertClean(db);
    await db.close();
  });

  it('close() gives back the space of freed pages: after random rewrites the file is about the size of what it holds', async () => {
    const dir = new MemoryDirectory();
    const opts = { backend: dir, checkpointBytes: 256 * 1024 };
    let db = await open('c', opts);
    const rand = rng(3);
    for (let round = 0; round < 8; round++) {
      await db.batch(Array.from({ length: 4000 }, () => {
        const i = Math.floor(rand() * 20000);
        return { type: 'put' as const, key: key(i), value: value(i, round) };
      }));
    }
    await db.checkpoint();
    const s = db.stats({ trees: true });
    const treePages = s.trees.reduce((n, t) => n + t.leafPages + t.branchPages + t.overflowPages, 0);
    const before = s.dataFile.pageCount;
    await db.close();
    const size = (dir.files.get('data.birch') as MemoryFile).size / PAGE_SIZE;
    console.log(`      ${treePages} tree pages: ${before} pages in use before close, ${size} after`);
    assert.ok(before > 1.5 * treePages, 'the workload left the file with room to give back');
    assert.ok(size <= 1.1 * treePages + 8, `the file keeps ${size} pages for ${treePages} tree pages`);
    assert.deepEqual(dir.list().filter((n) => n.startsWith('journal-')), [], 'no journal segment is left');
    db = await open('c', opts);
    assertClean(db);
    const n = [...db.range()].length;
    assert.equal(n, s.trees[0]?.entries);
    await db.close();
  });
});
