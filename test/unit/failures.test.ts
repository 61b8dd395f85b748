import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { open, MAX_VALUE_BYTES } from '../../api/index.js';
import { FaultyDirectory } from '../helpers/faulty.js';
import { assertClean, isCode, key, rmDir, tmpDir } from '../helpers/index.js';

describe('failures: a failed checkpoint is fatal for the handle, and the journal still holds everything', () => {
  for (const op of ['write', 'sync'] as const) {
    it(`a failed data-file ${op} during a checkpoint poisons writes; reopening recovers every acknowledged batch`, async () => {
      const dir = new FaultyDirectory();
      const opts = { backend: dir, journalSegmentSize: 128 * 1024, checkpointBytes: 2 ** 40 };
      const db = await open('f', opts);
      for (let t = 0; t < 5; t++) await db.put(key(t), `v${t}`);
      // Every write and sync from now on fails: the checkpoint meets it first.
      dir.failAt = { op, n: 1, sticky: true };
      await assert.rejects(db.checkpoint(), (e: unknown) => isCode('FATAL_IO')(e) && /data\.birch/.test((e as Error).message));
      await assert.rejects(db.put('x', 'y'), isCode('FATAL_IO'));
      assert.equal(db.get(key(4))?.toString(), 'v4', 'reads go on');
      // Closing releases the handle; it writes nothing more (the failure was reported already).
      const writes = dir.counts.write;
      await db.close();
      assert.equal(dir.counts.write, writes);
      dir.failAt = undefined;
      const db2 = await open('f', opts);
      for (let t = 0; t < 5; t++) assert.equal(db2.get(key(t))?.toString(), `v${t}`);
      assert.equal(db2.get('x'), undefined);
      await db2.checkpoint();
      assertClean(db2);
      await db2.close();
    });
  }
});

describe('failures: bad input', () => {
  it('refuses a value over the limit without writing anything', async () => {
    const dir = new FaultyDirectory();
    const db = await open('v', { backend: dir });
    const writes = dir.counts.write;
    await assert.rejects(db.put('k', Buffer.alloc(MAX_VALUE_BYTES + 1)), isCode('VALUE_INVALID'));
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(db.seq, 0);
    assert.equal(dir.counts.write, writes, 'nothing reached the disk');
    await db.close();
  });
});

describe('pager: a database many times larger than the cache', () => {
  it('reads and writes correctly with a 64 KiB cache and a 5 MiB database, within the bound', async () => {
    const dir = tmpDir();
    try {
      const db = await open(dir, { cacheSize: 64 * 1024, checkpointBytes: 256 * 1024, journalSegmentSize: 1 << 20 });
      for (let t = 0; t < 50; t++) await db.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: key(t * 100 + i), value: Buffer.alloc(1000, (t * 100 + i) % 251) })));
      await db.checkpoint();
      for (let i = 0; i < 5000; i += 37) assert.equal(db.get(key(i))?.[0], i % 251);
      assert.equal([...db.range()].length, 5000);
      const s = db.stats();
      assert.ok(s.cache.bytes <= 64 * 1024, `cache holds ${s.cache.bytes} bytes`);
      assert.ok(s.cache.misses > 1000);
      assert.ok(s.checkpoints.count > 5, `${s.checkpoints.count} checkpoints`);
      assertClean(db);
      await db.close();
    } finally {
      rmDir(dir);
    }
  });
});

describe('failures: creating a database', () => {
  it('a crash while creating the data file leaves a directory that opens as a new database', async () => {
    const dir = tmpDir();
    try {
      // What a crash halfway through creation leaves: a partial temporary file, no data file.
      fs.writeFileSync(path.join(dir, 'data.birch.creating'), Buffer.alloc(100, 1));
      const db = await open(dir);
      await db.put('k', 'v');
      await db.close();
      const db2 = await open(dir);
      assert.equal(db2.get('k')?.toString(), 'v');
      await db2.close();
    } finally {
      rmDir(dir);
    }
  });

  it('refuses a data file that is not a birchdb file, with a typed error', async () => {
    const dir = tmpDir();
    try {
      fs.writeFileSync(path.join(dir, 'data.birch'), Buffer.alloc(3 * 4096, 0x41));
      await assert.rejects(open(dir), isCode('CORRUPTION'));
      await assert.rejects(open(dir), isCode('CORRUPTION'), 'the lock was released by the refused open');
    } finally {
      rmDir(dir);
    }
  });
});
