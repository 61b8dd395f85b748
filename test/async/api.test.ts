import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { NodeDirectory, open, type Birch } from '../../api/index.js';
import { DATA_FILE, readMetas, readVerifiedPage } from '../../pager/data-file.js';
import { PAGE_SIZE, pageOffsetBytes } from '../../pager/page-format.js';
import type { PageNo } from '../../pager/ids.js';
import { freeTree } from '../../btree/tree.js';
import { decodeRoots } from '../../btree/roots-format.js';
import { FAULT_COUNTERS_BYTES, faultCounts } from '../../pager/faults.js';
import { isCode, rmDir, tmpDir } from '../helpers/index.js';

/** Every page of the default tree of the newest checkpoint, with its image, read from the data file. */
function treePages(dir: string): Map<number, Buffer> {
  const file = new NodeDirectory(dir).open(DATA_FILE, { create: false, readOnly: true });
  try {
    const read = (no: PageNo): Buffer => readVerifiedPage(file, no);
    const pages = new Map<number, Buffer>();
    freeTree(read, decodeRoots(readMetas(file).newest.roots).main, (no) => pages.set(no, read(no)));
    return pages;
  } finally {
    file.close();
  }
}

/** The pages of `images` whose bytes in the data file are no longer those. */
function changedPages(dir: string, images: Map<number, Buffer>): number[] {
  const file = new NodeDirectory(dir).open(DATA_FILE, { create: false, readOnly: true });
  try {
    const now = Buffer.alloc(PAGE_SIZE);
    return [...images].filter(([no, image]) => {
      file.read(pageOffsetBytes(no), now);
      return !now.equals(image);
    }).map(([no]) => no);
  } finally {
    file.close();
  }
}

/**
 * Runs a describe block's tests through each commit hand-off: the shared-memory ring (the default
 * wherever Atomics.waitAsync exists) and the postMessage fallback, which BIRCH_HANDOFF=messages
 * forces, as a runtime without Atomics.waitAsync would.
 */
function eachHandoff(title: string, body: (handoff: 'shared-memory' | 'messages') => void): void {
  for (const handoff of ['shared-memory', 'messages'] as const) {
    describe(`${title} (${handoff} hand-off)`, () => {
      const outer = process.env.BIRCH_HANDOFF;
      before(() => {
        if (handoff === 'messages') process.env.BIRCH_HANDOFF = 'messages';
        else delete process.env.BIRCH_HANDOFF;
      });
      after(() => {
        if (outer === undefined) delete process.env.BIRCH_HANDOFF;
        else process.env.BIRCH_HANDOFF = outer;
      });
      body(handoff);
    });
  }
}

eachHandoff('async API: group commit through the writer thread', (handoff) => {
  let dir: string;
  let db: Birch;
  beforeEach(async () => {
    dir = tmpDir('birch-async');
    db = await open(dir);
  });
  afterEach(async () => {
    await db.close();
    rmDir(dir);
  });

  it('stats() names the hand-off in use', () => {
    assert.equal(db.stats().implementation.handoff, handoff);
  });

  it('1,000 concurrent callers: every promise settles, every acknowledged write is readable, order per caller holds', async function () {
    this.timeout(120_000);
    const CALLERS = 1000;
    const ROUNDS = 5;
    const acked = new Map<string, string>();
    const caller = async (c: number): Promise<void> => {
      for (let r = 0; r < ROUNDS; r++) {
        if (r % 2 === 0) {
          await db.put(`c${c}-r${r}`, `v${r}`);
          acked.set(`c${c}-r${r}`, `v${r}`);
        } else {
          await db.batch([
            { type: 'put', key: `c${c}-r${r}`, value: `v${r}` },
            { type: 'put', key: `c${c}-last`, value: String(r) },
          ]);
          acked.set(`c${c}-r${r}`, `v${r}`);
        }
        // Read-your-writes on this thread, right after the await.
        assert.equal(db.get(`c${c}-r${r}`)?.toString(), `v${r}`);
      }
      // Order: three batches issued back to back without waiting; the last one issued wins.
      const p = [1, 2, 3].map((n) => db.put(`c${c}-order`, String(n)));
      await Promise.all(p);
      acked.set(`c${c}-order`, '3');
    };
    const results = await Promise.allSettled(Array.from({ length: CALLERS }, (_, c) => caller(c)));
    const failed = results.filter((r) => r.status === 'rejected');
    assert.equal(failed.length, 0, String((failed[0] as PromiseRejectedResult | undefined)?.reason));
    for (const [k, v] of acked) assert.equal(db.get(k)?.toString(), v, k);
    const s = db.stats();
    console.log(`      ${s.writer.batches} batches in ${s.writer.commits} commits: ${s.writer.batchesPerCommit.toFixed(1)} batches per commit`);
    assert.equal(s.writer.batches, CALLERS * (ROUNDS + 3));
    assert.ok(s.writer.batchesPerCommit > 10, 'concurrent batches are merged');
    assert.ok(db.check().ok);
  });

  it('isolates a failing batch: only its caller rejects, the rest of the merged commit lands', async () => {
    await db.put('counter', '1');
    const outcomes = await Promise.allSettled([
      db.put('a', '1'),
      db.batch([{ type: 'put', key: 'cond', value: 'x' }], { ifMatch: [{ key: 'counter', value: '2' }] }),
      db.put('b', '2'),
      db.dropTree('no-such-tree'),
      db.batch([{ type: 'put', key: 'cond2', value: 'y' }, { type: 'del', key: 'a' }], { ifMatch: [{ key: 'counter', value: '1' }, { key: 'absent', value: undefined }] }),
      db.put('c', '3'),
    ]);
    assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    assert.ok(isCode('CONDITION_FAILED')((outcomes[1] as PromiseRejectedResult).reason));
    assert.ok(isCode('TREE_NOT_FOUND')((outcomes[3] as PromiseRejectedResult).reason));
    assert.equal(db.get('cond'), undefined, 'a rejected batch writes nothing');
    assert.equal(db.get('cond2')?.toString(), 'y');
    assert.equal(db.get('a'), undefined, 'the conditional batch ran after put(a)');
    assert.equal(db.get('b')?.toString(), '2');
    assert.equal(db.get('c')?.toString(), '3');
  });

  it('regression: a batch of no operations (a check of conditions only) settles in order and leaves no gap in the journal', async () => {
    await db.put('a', '1');
    await db.batch([]);
    await db.batch([], { ifMatch: [{ key: 'a', value: '1' }] });
    await assert.rejects(db.batch([], { ifMatch: [{ key: 'a', value: '2' }] }), isCode('CONDITION_FAILED'));
    const [first, check, after] = await Promise.allSettled([db.put('a', '2'), db.batch([], { ifMatch: [{ key: 'a', value: '2' }] }), db.put('b', '3')]);
    assert.deepEqual([first.status, check.status, after.status], ['fulfilled', 'fulfilled', 'fulfilled'], 'the check saw the put issued before it');
    await db.close();
    db = await open(dir);
    assert.equal(db.get('a')?.toString(), '2');
    assert.equal(db.get('b')?.toString(), '3', 'batches after the empty ones survive a reopen (the journal has no gap)');
    assert.deepEqual(db.stats({ trees: false }).recovery.journalStops, []);
  });

  it('read-modify-write with ifMatch: concurrent increments never lose an update', async () => {
    await db.put('n', '0');
    const incr = async (): Promise<number> => {
      for (let attempt = 1; ; attempt++) {
        const cur = db.get('n')?.toString() ?? '0';
        try {
          await db.batch([{ type: 'put', key: 'n', value: String(Number(cur) + 1) }], { ifMatch: [{ key: 'n', value: cur }] });
          return attempt;
        } catch (e) {
          if (!isCode('CONDITION_FAILED')(e)) throw e;
        }
      }
    };
    const attempts = await Promise.all(Array.from({ length: 50 }, incr));
    assert.equal(db.get('n')?.toString(), '50');
    assert.ok(attempts.some((a) => a > 1), 'some increments had to retry');
  });

  it('snapshots and range iterations see one commit and hold back page reuse until released', async () => {
    // First-fit allocation: once the snapshot is released, the lowest free pages (the ones it held)
    // are the next a checkpoint takes.
    await db.close();
    db = await open(dir, { allocation: { policy: 'first-fit' } });
    const keyOf = (i: number): string => `k${String(i).padStart(3, '0')}`;
    const value = (v: string): string => v.padEnd(400, '.');
    /** Rewrites every key and checkpoints: every page of the tree before it is freed. */
    const rewrite = async (v: string): Promise<void> => {
      await db.batch(Array.from({ length: 300 }, (_, i) => ({ type: 'put' as const, key: keyOf(i), value: value(v) })));
      await db.checkpoint();
    };
    for (let i = 0; i < 300; i++) await db.put(keyOf(i), value('old'));
    // Checkpointed, so that the snapshot reads pages of the data file, not the write buffer.
    await db.checkpoint();
    const held = treePages(dir);
    assert.ok(held.size > 10, `the tree has ${held.size} pages`);
    const tSnap0 = Date.now();
    const snap = db.snapshot();
    const tSnap1 = Date.now();
    const it = db.range({ prefix: 'k' });
    const first = it.next();
    assert.equal(first.done, false);
    for (let round = 0; round < 3; round++) await rewrite(`new${round}`);
    assert.deepEqual(changedPages(dir, held), [], 'a page the snapshot reads was reused while the snapshot was held');
    const rest = [...it];
    assert.equal(rest.length, 299);
    assert.ok(rest.every(([, v]) => v.toString() === value('old')), 'the iteration kept its snapshot');
    assert.equal(snap.get('k100')?.toString(), value('old'));
    assert.equal(db.get('k100')?.toString(), value('new2'));
    const t0 = Date.now();
    const s = db.stats();
    const t1 = Date.now();
    assert.equal(s.snapshots.live, 1);
    assert.equal(s.snapshots.oldestSeq, snap.seq);
    // The generation that was active when the snapshot was taken took the first rewrite, was
    // checkpointed and dropped, and lives on for the snapshot alone.
    assert.equal(s.snapshots.heldGenerations, 1);
    assert.ok(s.snapshots.heldBytes > 300 * 400, `held ${s.snapshots.heldBytes} bytes`);
    // The age lies between the clock readings around snapshot() and around stats().
    const age = s.snapshots.oldestAgeMs;
    assert.ok(age !== null && age >= t0 - tSnap1 && age <= t1 - tSnap0, `oldestAgeMs ${String(age)} is outside [${t0 - tSnap1}, ${t1 - tSnap0}]`);
    const pagesWhileHeld = s.dataFile.pageCount;
    snap.release();
    assert.equal(db.stats().snapshots.live, 0);
    assert.deepEqual([db.stats().snapshots.heldGenerations, db.stats().snapshots.heldBytes], [0, 0]);
    assert.equal(db.stats().snapshots.oldestAgeMs, null);
    assert.throws(() => snap.get('k1'), isCode('TXN_CLOSED'));
    for (let round = 3; round < 6; round++) await rewrite(`new${round}`);
    assert.ok(changedPages(dir, held).length > 0, 'the pages the snapshot held are reused once it is released');
    assert.ok(db.stats().dataFile.pageCount <= pagesWhileHeld, 'after the release, checkpoints reuse freed pages instead of growing the file');
    assert.ok(db.check().ok);
  });

  it('named trees through the handle, and ops that name a tree', async () => {
    const albums = db.tree('albums');
    await albums.put('a1', 'Blue Train');
    await db.batch([{ type: 'put', key: 'a2', value: 'Giant Steps', tree: 'albums' }, { type: 'put', key: 'x', value: 'default' }]);
    assert.deepEqual(db.trees(), ['albums']);
    assert.deepEqual([...albums.range()].map(([k, v]) => `${k}=${v}`), ['a1=Blue Train', 'a2=Giant Steps']);
    assert.equal(db.get('a1'), undefined);
    assert.equal(db.get('a1', { tree: 'missing' }), undefined);
    await db.dropTree('albums');
    assert.deepEqual(db.trees(), []);
    assert.equal(albums.get('a1'), undefined);
  });

  it('rejects bad input with typed errors before anything is queued', async () => {
    await assert.rejects(db.put('', 'v'), isCode('KEY_INVALID'));
    await assert.rejects(db.put(7 as unknown as string, 'v'), isCode('KEY_INVALID'));
    await assert.rejects(db.put('k', null as unknown as string), isCode('VALUE_INVALID'));
    await assert.rejects(db.batch('nope' as unknown as []), isCode('BAD_OPTION'));
    await assert.rejects(db.batch([{ type: 'upsert', key: 'k' } as unknown as { type: 'del'; key: string }]), isCode('BAD_OPTION'));
    await assert.rejects(db.put('k', 'v', { tree: '' }), isCode('TREE_NAME_INVALID'));
    await assert.rejects(db.batch([], { ifMatch: 'x' as unknown as [] }), isCode('BAD_OPTION'));
    assert.equal(db.stats().writer.batches, 0);
  });

  it('copies the caller\'s buffers: changing them after put() changes nothing', async () => {
    const key = Buffer.from('mutable-key');
    const value = Buffer.from('original');
    const p = db.put(key, value);
    key.write('XXXXXXX');
    value.write('CHANGED!');
    await p;
    assert.equal(db.get('mutable-key')?.toString(), 'original');
  });

  it('reuses the batch arena\'s chunks only once nothing reads them: a snapshot held across checkpoints reads its values intact', async () => {
    await db.close();
    // Two free chunks of 4 MiB kept for reuse (half of checkpointBytes).
    db = await open(dir, { checkpointBytes: 16 << 20 });
    const key = (i: number): string => `r${String(i).padStart(6, '0')}`;
    const val = (tag: string, i: number): string => `${tag}:${i}:`.padEnd(200, tag);
    // About 3.5 MB of encoded batches a round: most of one arena chunk.
    const round = async (tag: string): Promise<void> => {
      for (let b = 0; b < 160; b++) await db.batch(Array.from({ length: 100 }, (_, j) => ({ type: 'put' as const, key: key(b * 100 + j), value: val(tag, b * 100 + j) })));
    };
    await round('a');
    const snap = db.snapshot(); // pins the generation holding round a, whose values lie in the arena
    await round('b');
    await db.checkpoint();
    let free = 0;
    for (const tag of ['c', 'd', 'e', 'f', 'g', 'h']) {
      await round(tag);
      await db.checkpoint();
      free = Math.max(free, db.stats().memory.arenaFreeBytes);
    }
    assert.ok(free > 0, 'chunks that nothing read were kept for reuse');
    for (let i = 0; i < 16000; i += 7) assert.equal(snap.get(key(i))?.toString(), val('a', i), `snapshot read of ${key(i)}`);
    let n = 0;
    for (const [k, v] of snap.range({ prefix: 'r' })) {
      assert.equal(v.toString(), val('a', Number(k.toString().slice(1))));
      n++;
    }
    assert.equal(n, 16000);
    snap.release();
    await round('i');
    await db.checkpoint();
    for (let i = 0; i < 16000; i += 13) assert.equal(db.get(key(i))?.toString(), val('i', i));
  });

  it('applies backpressure past maxQueuedBytes and still settles every write', async () => {
    await db.close();
    db = await open(dir, { maxQueuedBytes: 64 * 1024 });
    let sawWaiting = 0;
    const writes = Array.from({ length: 400 }, (_, i) => db.put(`bp${i}`, Buffer.alloc(2000, i % 256)));
    sawWaiting = db.stats().writer.waitingBatches;
    await Promise.all(writes);
    assert.ok(sawWaiting > 0, 'writes past the bound waited');
    assert.equal(db.get('bp399')?.[0], 399 % 256);
  });

  it('close() settles queued writes, then refuses everything with DB_CLOSED', async () => {
    const pending = Array.from({ length: 100 }, (_, i) => db.put(`late${i}`, 'v'));
    const closing = db.close();
    await assert.rejects(db.put('after', 'close'), isCode('DB_CLOSED'));
    await closing;
    await Promise.all(pending);
    assert.throws(() => db.get('late1'), isCode('DB_CLOSED'));
    await db.close(); // twice is fine
    db = await open(dir);
    assert.equal(db.get('late99')?.toString(), 'v');
  });

  it('a second open of the same directory fails with DB_LOCKED', async () => {
    await assert.rejects(open(dir), isCode('DB_LOCKED'));
  });
});

eachHandoff('async API: a failed journal write or sync is fatal for the handle', () => {
  for (const op of ['write', 'sync'] as const) {
    it(`a failed ${op} rejects the writes of that commit and every later one with FATAL_IO; reopening recovers`, async () => {
      const dir = tmpDir('birch-fatal');
      try {
        let db = await open(dir);
        for (let i = 0; i < 20; i++) await db.put(`before${i}`, 'v');
        await db.close();
        // Counted from the open, by every thread: a new 64 KiB journal segment takes 16 writes of
        // zeros and a sync, then its header (a write and a sync); the first record is write 18,
        // sync 3. Once it is written the idle writer prepares the next segment (16 writes, then a
        // sync), which the test waits for, so that from then on each record is one write and one
        // sync. ACKED writes go one record each, acknowledged one after the other (the first
        // before the spare segment, the others after it); the fault hits the next record, which
        // holds the 200 writes issued together (one turn). Not sticky: a retry would succeed, so
        // this also shows none happens.
        const ACKED = 10;
        const counters = new SharedArrayBuffer(FAULT_COUNTERS_BYTES);
        db = await open(dir, { journalSegmentSize: 64 * 1024, faults: { op, n: (op === 'write' ? 34 : 4) + ACKED, sticky: false, counters } });
        await db.put('acked0', 'a'.repeat(100));
        while (faultCounts(counters).sync < 4) await sleep(1);
        assert.deepEqual(faultCounts(counters), { write: 34, sync: 4 }, 'the spare segment made as counted above');
        for (let i = 1; i < ACKED; i++) await db.put(`acked${i}`, 'a'.repeat(100));
        const outcomes = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => db.put(`during${i}`, 'x'.repeat(100))));
        const what = op === 'write' ? /writing the journal record of batches/ : /syncing the journal/;
        outcomes.forEach((o, i) => {
          assert.equal(o.status, 'rejected', `write ${i} of the failed commit resolved`);
          const reason = (o as PromiseRejectedResult).reason as Error;
          assert.ok(isCode('FATAL_IO')(reason) && what.test(reason.message), String(reason));
        });
        await assert.rejects(db.put('after', 'x'), isCode('FATAL_IO'));
        assert.equal(db.get('before19')?.toString(), 'v', 'reads go on');
        assert.equal(db.get(`acked${ACKED - 1}`)?.toString(), 'a'.repeat(100), 'reads go on');
        // A batch whose record was written but not synced must never become visible.
        outcomes.forEach((_, i) => assert.equal(db.get(`during${i}`), undefined, `rejected write ${i} is visible`));
        await db.close();
        db = await open(dir);
        for (let i = 0; i < 20; i++) assert.equal(db.get(`before${i}`)?.toString(), 'v');
        for (let i = 0; i < ACKED; i++) assert.equal(db.get(`acked${i}`)?.toString(), 'a'.repeat(100), `acknowledged write acked${i} survived`);
        // A failed write left no record; a record whose sync failed may have reached the file, and
        // its batches, never acknowledged, may then be replayed.
        if (op === 'write') outcomes.forEach((_, i) => assert.equal(db.get(`during${i}`), undefined, `rejected write ${i} is visible after reopening`));
        assert.equal(db.get('after'), undefined);
        assert.ok(db.check().ok);
        await db.close();
      } finally {
        rmDir(dir);
      }
    });
  }
});

describe('async API: a write is acknowledged only once its commit is synced', () => {
  it('with every sync failing from the first commit on, no write resolves and none becomes visible', async () => {
    const dir = tmpDir('birch-unsynced');
    try {
      let db = await open(dir);
      await db.put('seed', 'v');
      await db.close();
      // Counted from the open: syncs 1 and 2 make a new journal segment; 3 is the first record's
      // (the message check below pins that down).
      db = await open(dir, { journalSegmentSize: 64 * 1024, faults: { op: 'sync', n: 3, sticky: true } });
      const outcomes = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => db.put(`k${i}`, 'v')));
      outcomes.forEach((o, i) => {
        assert.equal(o.status, 'rejected', `write ${i} resolved though no commit was ever synced`);
        const reason = (o as PromiseRejectedResult).reason as Error;
        assert.ok(isCode('FATAL_IO')(reason) && /syncing the journal/.test(reason.message), reason.message);
        assert.equal(db.get(`k${i}`), undefined, `unsynced write ${i} is visible`);
      });
      await db.close(); // releases the handle; the failure was reported to every write
    } finally {
      rmDir(dir);
    }
  });
});

describe('regressions', () => {
  it('regression: 1,000,000 batches admitted in one turn are handed to the writer together and all settle (queue.push(...batches) on such a turn overflowed the writer\'s stack)', async function () {
    this.timeout(120_000);
    const dir = tmpDir('birch-many');
    const db = await open(dir);
    try {
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 1_000_000; i++) writes.push(db.put(`k${i}`, 'v'));
      // None waits for backpressure: all were admitted in this turn, whose hand-off to the writer
      // is one message (how many messages the writer received is not observable from here).
      assert.equal(db.stats({ trees: false }).writer.waitingBatches, 0, 'some batches were held back to a later turn');
      await Promise.all(writes);
      assert.equal(db.stats({ trees: false }).writer.batches, 1_000_000);
      assert.equal(db.get('k0')?.toString(), 'v');
      assert.equal(db.get('k999999')?.toString(), 'v');
    } finally {
      await db.close();
      rmDir(dir);
    }
  });
});
