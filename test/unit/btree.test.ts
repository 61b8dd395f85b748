import assert from 'node:assert/strict';
import { BirchError, Database, MAX_KEY_BYTES, MAX_INLINE_LEAF_CELL, type RangeOptions } from '../../engine/index.js';
import { assertClean, key, memDb, rng } from '../helpers/index.js';

function fill(db: Database, n: number, perTxn: number, gen: (i: number) => Buffer, value: Buffer): void {
  for (let t = 0; t < n / perTxn; t++) {
    db.write((w) => {
      for (let i = 0; i < perTxn; i++) w.put(gen(t * perTxn + i), value);
    });
  }
}

const k16 = (i: number): Buffer => Buffer.from(String(i).padStart(16, '0'));

describe('engine: B+Tree splits and merges', () => {
  it('grows past one page and keeps every key readable in order', () => {
    const { db } = memDb();
    const rand = rng(1);
    const keys = Array.from({ length: 5000 }, (_, i) => key(i));
    const shuffled = [...keys].sort(() => rand() - 0.5);
    fill(db, shuffled.length, 250, (i) => Buffer.from(shuffled[i] as string), Buffer.alloc(40, 1));
    assertClean(db);
    assert.ok((db.stats().trees[0]?.depth ?? 0) >= 2);
    const seen = db.read((r) => [...r.range()].map(([k]) => k.toString()));
    assert.deepEqual(seen, keys);
    db.close();
  });

  it('merges underfull pages when keys are deleted, down to an empty tree', () => {
    const { db } = memDb();
    fill(db, 4000, 500, (i) => Buffer.from(key(i)), Buffer.alloc(60, 2));
    const before = db.stats().trees[0]?.leafPages ?? 0;
    db.write((w) => {
      for (let i = 0; i < 4000; i++) if (i % 10 !== 0) w.del(key(i));
    });
    assertClean(db);
    const after = db.stats().trees[0]?.leafPages ?? 0;
    assert.ok(after < before / 3, `leaves should merge: ${before} -> ${after}`);
    db.write((w) => {
      for (let i = 0; i < 4000; i += 10) assert.equal(w.del(key(i)), true);
    });
    assertClean(db);
    assert.deepEqual(db.stats().trees[0], { name: null, entries: 0, depth: 0, leafPages: 0, branchPages: 0, overflowPages: 0, leafFill: 0 });
    db.close();
  });

  for (const [name, gen] of [
    ['ascending', (i: number) => k16(i)],
    ['descending', (i: number) => k16(1_000_000 - i)],
    ['8 interleaved ascending streams', (i: number) => Buffer.concat([Buffer.from([0x41 + (i % 8)]), k16(Math.floor(i / 8)).subarray(1)])],
  ] as const) {
    it(`leaves pages at least 90% full after 1,000,000 ${name} keys`, () => {
      const { db } = memDb({ sync: false, checkpointBytes: 2 ** 40 });
      fill(db, 1_000_000, 2000, gen, Buffer.alloc(16, 3));
      const t = db.stats().trees[0];
      assert.ok(t !== undefined);
      console.log(`      ${name}: leaf fill ${(t.leafFill * 100).toFixed(1)}%, depth ${t.depth}, ${t.leafPages} leaves`);
      assert.equal(t.entries, 1_000_000);
      assert.ok(t.leafFill >= 0.9, `fill ${t.leafFill}`);
      db.close();
    });
  }
});

describe('engine: values and overflow pages', () => {
  it('keeps 1,100-byte values inline: 10,000 of them take at most 1.3x their raw size', () => {
    const { db } = memDb({ sync: false });
    const value = Buffer.alloc(1100, 9);
    fill(db, 10_000, 500, (i) => k16(i), value);
    const s = db.stats();
    const raw = 10_000 * (16 + 1100);
    const used = (s.trees[0]?.leafPages ?? 0) + (s.trees[0]?.branchPages ?? 0) + (s.trees[0]?.overflowPages ?? 0);
    const ratio = (used * 4096) / raw;
    // Every page the data file uses: the tree, free and pending pages, metas and free list.
    const fileRatio = (s.dataFile.pageCount * 4096) / raw;
    console.log(`      10,000 x 1,100 B: ${used} tree pages, ${ratio.toFixed(3)}x raw; ${s.dataFile.pageCount} file pages, ${fileRatio.toFixed(3)}x`);
    assert.equal(s.trees[0]?.overflowPages, 0);
    assert.ok(fileRatio <= 1.3, `space ratio ${fileRatio}`);
    db.close();
  });

  it('shifts cells to a neighbour before splitting: random-order 1,100-byte values take under 1.5x', () => {
    const { db } = memDb({ sync: false });
    const rand = rng(11);
    const ids = Array.from({ length: 10_000 }, (_, i) => i);
    for (let i = ids.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [ids[i], ids[j]] = [ids[j] as number, ids[i] as number];
    }
    fill(db, 10_000, 500, (i) => k16(ids[i] as number), Buffer.alloc(1100, 9));
    const t = db.stats().trees[0];
    assert.ok(t !== undefined);
    const ratio = ((t.leafPages + t.branchPages) * 4096) / (10_000 * (16 + 1100));
    console.log(`      random order: ${t.leafPages + t.branchPages} tree pages, ${ratio.toFixed(3)}x raw (plain mid-point splits: about 1.7x)`);
    assert.ok(ratio < 1.5, `space ratio ${ratio}`);
    assertClean(db);
    db.close();
  });

  it('stores values of every size from 0 bytes to 64 MiB, across the overflow threshold', () => {
    const { db, reopen } = memDb({ journalSegmentSize: 1 << 20 });
    const sizes = [0, 1, 100, MAX_INLINE_LEAF_CELL - 20, MAX_INLINE_LEAF_CELL, 4084, 4085, 100_000, 1 << 20];
    const rand = rng(7);
    const values = sizes.map((n) => Buffer.from(Array.from({ length: Math.min(n, 4096) }, () => Math.floor(rand() * 256))).subarray(0, n));
    const big = (n: number): Buffer => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i += 4096) b.writeUInt32LE(i, i);
      return b;
    };
    const full = values.map((v, i) => (v.length < (sizes[i] as number) ? big(sizes[i] as number) : v));
    db.write((w) => full.forEach((v, i) => w.put(key(i), v)));
    assertClean(db);
    const db2 = reopen();
    full.forEach((v, i) => assert.ok(db2.read((r) => r.get(key(i)))?.equals(v), `size ${sizes[i]}`));
    // Replace and delete overflow values: their pages are freed, nothing leaks.
    db2.write((w) => {
      w.put(key(7), 'small now');
      w.del(key(8));
    });
    assertClean(db2);
    const huge = big(64 * 1024 * 1024);
    db2.write((w) => w.put('huge', huge));
    assertClean(db2);
    const db3 = reopen();
    assert.ok(db3.read((r) => r.get('huge'))?.equals(huge));
    db3.close();
  });

  it('rejects bad keys and values with typed errors and writes nothing', () => {
    const { db } = memDb();
    db.write((w) => w.put('keep', 'me'));
    const txn = db.txnId;
    const cases: [unknown, unknown, string][] = [
      ['', 'v', 'KEY_INVALID'],
      [Buffer.alloc(MAX_KEY_BYTES + 1, 1), 'v', 'KEY_INVALID'],
      [42, 'v', 'KEY_INVALID'],
      [null, 'v', 'KEY_INVALID'],
      [{}, 'v', 'KEY_INVALID'],
      ['k', 42, 'VALUE_INVALID'],
      ['k', undefined, 'VALUE_INVALID'],
    ];
    for (const [k, v, code] of cases) {
      const w = db.beginWrite();
      assert.throws(() => w.put(k as string, v as string), (e: unknown) => e instanceof BirchError && e.code === code, `${String(k)} -> ${code}`);
      w.commit();
    }
    assert.equal(db.txnId, txn, 'failed puts wrote nothing');
    db.write((w) => w.put(Buffer.alloc(MAX_KEY_BYTES, 1), 'max key is fine'));
    assertClean(db);
    db.close();
  });
});

describe('engine: range iteration', () => {
  const { db } = memDb();
  const keys = Array.from({ length: 3000 }, (_, i) => key(i * 2, 6));
  before(() => fill(db, keys.length, 1000, (i) => Buffer.from(keys[i] as string), Buffer.from('v')));
  after(() => db.close());
  const range = (opts: RangeOptions): string[] => db.read((r) => [...r.range(opts)].map(([k]) => k.toString()));

  it('honours gt/gte/lt/lte in both directions', () => {
    assert.deepEqual(range({ gte: '000010', lt: '000016' }), ['000010', '000012', '000014']);
    assert.deepEqual(range({ gt: '000010', lte: '000016' }), ['000012', '000014', '000016']);
    assert.deepEqual(range({ gt: '000011', lt: '000015', reverse: true }), ['000014', '000012']);
    assert.deepEqual(range({ gte: '000010', lte: '000014', reverse: true }), ['000014', '000012', '000010']);
    assert.deepEqual(range({ gte: '9' }), []);
    assert.equal(range({}).length, 3000);
    assert.deepEqual(range({ reverse: true }), [...keys].reverse());
  });
  it('honours prefix and limit, across page boundaries', () => {
    assert.deepEqual(range({ prefix: '00002' }), ['000020', '000022', '000024', '000026', '000028']);
    assert.deepEqual(range({ prefix: '0001', limit: 3, reverse: true }), ['000198', '000196', '000194']);
    assert.equal(range({ prefix: '00' }).length, 3000);
    assert.deepEqual(range({ limit: 0 }), []);
    assert.equal(range({ gte: '001000', limit: 700 }).length, 700);
  });
});

describe('engine: snapshots and copy-on-write', () => {
  it('a snapshot sees exactly its commit, whatever commits after it', () => {
    const { db } = memDb();
    fill(db, 2000, 500, (i) => Buffer.from(key(i)), Buffer.from('old'));
    const snap = db.beginRead();
    const before = [...snap.range()].map(([k, v]) => `${k}=${v}`);
    for (let round = 0; round < 5; round++) {
      db.write((w) => {
        for (let i = 0; i < 2000; i += 3) w.put(key(i), `new${round}`);
        for (let i = 1; i < 2000; i += 7) w.del(key(i));
        w.put(`extra${round}`, 'x');
      });
    }
    assertClean(db);
    assert.deepEqual([...snap.range()].map(([k, v]) => `${k}=${v}`), before);
    assert.equal(snap.get(key(1))?.toString(), 'old');
    snap.release();
    assert.throws(() => snap.get('x'), (e: unknown) => e instanceof BirchError && e.code === 'TXN_CLOSED');
    db.close();
  });

  it('holds back page reuse while a snapshot is live, and reuses pages after', () => {
    const { db } = memDb();
    fill(db, 1000, 1000, (i) => Buffer.from(key(i)), Buffer.alloc(100));
    const snap = db.beginRead();
    for (let r = 0; r < 10; r++) db.write((w) => w.put(key(r), `r${r}`));
    const grownWithSnapshot = db.stats().dataFile.pageCount;
    assert.ok(db.stats().dataFile.pendingPages > 0);
    snap.release();
    for (let r = 0; r < 10; r++) db.write((w) => w.put(key(r), `s${r}`));
    assert.ok(db.stats().dataFile.pageCount <= grownWithSnapshot + 40, 'freed pages are reused once the snapshot is gone');
    assertClean(db);
    db.close();
  });

  it('an aborted write leaves no trace', () => {
    const { db } = memDb();
    db.write((w) => w.put('a', '1'));
    const stats = db.stats().dataFile.pageCount;
    const w = db.beginWrite();
    for (let i = 0; i < 500; i++) w.put(key(i), Buffer.alloc(200));
    w.abort();
    assert.equal(db.read((r) => r.get(key(1))), undefined);
    assert.equal(db.stats().dataFile.pageCount, stats);
    assertClean(db);
    assert.throws(() => w.put('b', '2'), (e: unknown) => e instanceof BirchError && e.code === 'TXN_CLOSED');
    db.close();
  });
});

describe('engine: named trees', () => {
  it('creates, lists, isolates and drops trees, freeing their pages', () => {
    const { db, reopen } = memDb();
    db.write((w) => {
      w.put('k', 'default');
      for (let i = 0; i < 3000; i++) w.put(key(i), Buffer.alloc(50), 'albums');
      w.put('k', 'artist', 'artists');
      assert.equal(w.createTree('empty'), true);
      assert.equal(w.createTree('empty'), false);
    });
    const db2 = reopen();
    assert.deepEqual(db2.trees(), ['albums', 'artists', 'empty']);
    db2.read((r) => {
      assert.equal(r.get('k')?.toString(), 'default');
      assert.equal(r.get('k', 'artists')?.toString(), 'artist');
      assert.equal(r.get('k', 'albums'), undefined);
      assert.equal(r.count('albums'), 3000);
      assert.throws(() => r.get('k', 'nope'), (e: unknown) => e instanceof BirchError && e.code === 'TREE_NOT_FOUND');
    });
    assertClean(db2);
    db2.write((w) => assert.equal(w.dropTree('albums'), true));
    assertClean(db2);
    assert.deepEqual(db2.trees(), ['artists', 'empty']);
    assert.ok(db2.stats().dataFile.freePages + db2.stats().dataFile.pendingPages > 20, 'the dropped tree\'s pages are free');
    assert.throws(() => db2.write((w) => w.put('k', 'v', '')), (e: unknown) => e instanceof BirchError && e.code === 'TREE_NAME_INVALID');
    db2.close();
  });
});
