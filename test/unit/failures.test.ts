import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Database, MAX_VALUE_BYTES } from '../../engine/index.js';
import { FaultyDirectory } from '../helpers/faulty.js';
import { assertClean, isCode, key, rmDir, tmpDir } from '../helpers/index.js';


describe('failures: a failed journal write or sync is fatal for the handle', () => {
  for (const op of ['write', 'sync'] as const) {
    it(`a failed journal ${op} rejects the commit, poisons the handle, and reopening recovers`, () => {
      const dir = new FaultyDirectory();
      const opts = { backend: dir, journalSegmentSize: 128 * 1024 };
      const db = Database.open('f', opts);
      for (let t = 0; t < 5; t++) db.write((w) => w.put(key(t), `v${t}`));
      dir.failAt = { op, n: 1, sticky: false };
      assert.throws(() => db.write((w) => w.put('lost', 'x')), isCode('FATAL_IO'));
      // Sticky: no retry, even though the next I/O would succeed.
      assert.throws(() => db.write((w) => w.put('after', 'x')), isCode('FATAL_IO'));
      assert.throws(() => db.beginWrite(), isCode('FATAL_IO'));
      assert.equal(db.read((r) => r.get(key(4)))?.toString(), 'v4', 'reads still work');
      db.close();
      dir.failAt = undefined;
      const db2 = Database.open('f', opts);
      for (let t = 0; t < 5; t++) assert.equal(db2.read((r) => r.get(key(t)))?.toString(), `v${t}`);
      assert.equal(db2.read((r) => r.get('after')), undefined);
      assertClean(db2);
      db2.write((w) => w.put('again', 'works'));
      db2.close();
    });
  }

  it('a failed data-file sync during a checkpoint poisons the handle; reopening recovers', async () => {
    const dir = new FaultyDirectory();
    const opts = { backend: dir, journalSegmentSize: 128 * 1024 };
    const db = Database.open('f', opts);
    for (let t = 0; t < 5; t++) db.write((w) => w.put(key(t), `v${t}`));
    dir.failAt = { op: 'sync', n: 2, sticky: true }; // journal sync passes, data-file sync fails
    await assert.rejects(db.checkpoint(), isCode('FATAL_IO'));
    assert.throws(() => db.write((w) => w.put('x', 'y')), isCode('FATAL_IO'));
    db.close();
    dir.failAt = undefined;
    const db2 = Database.open('f', opts);
    for (let t = 0; t < 5; t++) assert.equal(db2.read((r) => r.get(key(t)))?.toString(), `v${t}`);
    assertClean(db2);
    db2.close();
  });
});

describe('failures: bad input and closed handles', () => {
  it('refuses a value over the limit without writing anything', () => {
    const dir = tmpDir();
    try {
      const db = Database.open(dir);
      const w = db.beginWrite();
      assert.throws(() => w.put('k', Buffer.alloc(MAX_VALUE_BYTES + 1)), isCode('VALUE_INVALID'));
      w.commit();
      assert.equal(db.txnId, 0);
      db.close();
    } finally {
      rmDir(dir);
    }
  });

  it('throws typed errors for a closed database, a second writer and bad options', () => {
    const dir = tmpDir();
    try {
      assert.throws(() => Database.open(dir, { cacheSize: -1 }), isCode('BAD_OPTION'));
      assert.throws(() => Database.open(dir, { sync: 'yes' as unknown as boolean }), isCode('BAD_OPTION'));
      const db = Database.open(dir);
      const w = db.beginWrite();
      assert.throws(() => db.beginWrite(), isCode('WRITE_TXN_ACTIVE'));
      w.abort();
      const r = db.beginRead();
      assert.throws(() => db.read((x) => [...x.range({ limit: -1 })]), isCode('BAD_OPTION'));
      assert.throws(() => db.read((x) => [...x.range({ gte: 5 as unknown as string })]), isCode('BAD_OPTION'));
      db.close();
      db.close(); // closing twice is harmless
      assert.throws(() => r.get('k'), isCode('DB_CLOSED'));
      assert.throws(() => db.beginRead(), isCode('DB_CLOSED'));
      assert.throws(() => db.beginWrite(), isCode('DB_CLOSED'));
    } finally {
      rmDir(dir);
    }
  });
});

describe('pager: a database many times larger than the cache', () => {
  it('reads and writes correctly with a 64 KiB cache and a 5 MiB database, within the bound', async () => {
    const dir = tmpDir();
    try {
      const db = Database.open(dir, { cacheSize: 64 * 1024, checkpointBytes: 256 * 1024, journalSegmentSize: 1 << 20 });
      for (let t = 0; t < 50; t++) {
        db.write((w) => {
          for (let i = 0; i < 100; i++) w.put(key(t * 100 + i), Buffer.alloc(1000, (t * 100 + i) % 251));
        });
        await new Promise((r) => setImmediate(r));
      }
      await db.checkpoint();
      db.read((r) => {
        for (let i = 0; i < 5000; i += 37) assert.equal(r.get(key(i))?.[0], i % 251);
        assert.equal([...r.range()].length, 5000);
      });
      const s = db.stats();
      assert.ok(s.cache.bytes <= 64 * 1024, `cache holds ${s.cache.bytes} bytes`);
      assert.ok(s.cache.misses > 1000);
      assert.ok(s.dataFile.flushes > 1);
      assertClean(db);
      db.close();
    } finally {
      rmDir(dir);
    }
  });
});

describe('failures: creating a database', () => {
  it('a crash while creating the data file leaves a directory that opens as a new database', () => {
    const dir = tmpDir();
    try {
      // What a crash halfway through creation leaves: a partial temporary file, no data file.
      fs.writeFileSync(path.join(dir, 'data.birch.creating'), Buffer.alloc(100, 1));
      const db = Database.open(dir);
      db.write((w) => w.put('k', 'v'));
      db.close();
      const db2 = Database.open(dir);
      assert.equal(db2.read((r) => r.get('k'))?.toString(), 'v');
      db2.close();
    } finally {
      rmDir(dir);
    }
  });

  it('refuses a data file that is not a birchdb file, with a typed error', () => {
    const dir = tmpDir();
    try {
      fs.writeFileSync(path.join(dir, 'data.birch'), Buffer.alloc(3 * 4096, 0x41));
      assert.throws(() => Database.open(dir), isCode('CORRUPTION'));
    } finally {
      rmDir(dir);
    }
  });
});
