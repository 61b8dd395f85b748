// The cases FORMAT.md settles for a reader that meets them: a new file's metas with no bitmap
// (freeRoot 0), and every 64-bit field holding 2^53 or more. A damaged on-disk field is a
// CorruptionError (code CORRUPTION) naming its file and, where there is one, its page; a meta
// that has one is invalid and the other meta opens; a journal record that has one ends its
// segment's scan like any other invalid record. Each image is made by the public API on a memory
// disk, then one field is changed and its checksum made valid again, so that only the field's
// value is wrong.
import assert from 'node:assert/strict';
import { CorruptionError, MemoryDirectory, open } from '../../api/index.js';
import type { MemoryFile } from '../../pager/backend.js';
import { DATA_FILE, readMetas } from '../../pager/data-file.js';
import { PAGE_SIZE, sealPage } from '../../pager/page-format.js';
import { STATE_CHECKPOINT_ID, STATE_OFFSET, STATE_ROOTS, STATE_SEQ, metaPageOf } from '../../pager/meta-format.js';
import { checksum } from '../../pager/checksum.js';
import { DESC_ENTRIES_OFFSET, ROOTS_MAIN, TREE_DESC_SIZE, decodeCatalogValue } from '../../btree/roots-format.js';
import { JOURNAL_SEED, RECORD_HEADER_SIZE, REC_FIRST_SEQ_OFFSET, REC_HEADER_SUM_OFFSET, REC_SEG_SEQ_OFFSET, SEGMENT_DATA_OFFSET, SEGMENT_HEADER_END, SEG_CHECKSUM_OFFSET, SEG_MAGIC_OFFSET, SEG_SEQ_OFFSET } from '../../journal/format.js';
import { listJournal } from '../../journal/journal.js';
import { count, leafValue } from '../../btree/node.js';

const OPTS = { journalSegmentSize: 128 * 1024 };
const TWO_53_HI = 0x200000; // the high half of 2^53

function file(dir: MemoryDirectory, name: string): MemoryFile {
  const f = dir.files.get(name);
  assert.ok(f !== undefined, `${name} exists`);
  return f;
}

function readPage(f: MemoryFile, no: number): Buffer {
  const p = Buffer.alloc(PAGE_SIZE);
  f.read(no * PAGE_SIZE, p);
  return p;
}

/** Sets the high half of the u64 at `off` of page `no` to 2^53's and seals the page again. */
function poisonPageU64(f: MemoryFile, no: number, off: number): void {
  const p = readPage(f, no);
  p.writeUInt32LE(TWO_53_HI, off + 4);
  sealPage(p);
  f.write(no * PAGE_SIZE, p);
}

async function expectCorruption(p: Promise<unknown>, what: RegExp, site: { file?: string; pageNo?: number }): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof CorruptionError, `a CorruptionError, not ${String(e)}`);
    assert.equal(e.code, 'CORRUPTION');
    assert.match(e.message, what);
    if (site.file !== undefined) assert.equal(e.site.file, site.file);
    if (site.pageNo !== undefined) assert.equal(e.site.pageNo, site.pageNo);
    return true;
  });
}

/** A closed database: both metas hold the same state (settled), one named tree. */
async function closedImage(): Promise<MemoryDirectory> {
  const dir = new MemoryDirectory();
  const db = await open('d', { ...OPTS, backend: dir });
  await db.batch(Array.from({ length: 50 }, (_, i) => ({ type: 'put' as const, key: `k${i}`, value: `v${i}` })));
  await db.put('t1', 'named', { tree: 'albums' });
  await db.close();
  return dir;
}

describe('format: a new file, and 64-bit fields of 2^53 or more', () => {
  it('a new database has two metas with freeRoot 0 and no bitmap page; closed empty it stays so; the first checkpoint writes the bitmap', async () => {
    const dir = new MemoryDirectory();
    let db = await open('d', { ...OPTS, backend: dir });
    let metas = readMetas(file(dir, DATA_FILE));
    assert.deepEqual([metas.newest.checkpointId, metas.older?.checkpointId], [1, 0]);
    for (const m of [metas.newest, metas.older]) {
      assert.equal(m?.freeRoot, 0);
      assert.equal(m?.pageCount, 3);
    }
    await db.close();
    assert.equal(file(dir, DATA_FILE).size, 3 * PAGE_SIZE, 'header and two metas, nothing else');
    metas = readMetas(file(dir, DATA_FILE));
    assert.deepEqual([metas.newest.checkpointId, metas.newest.freeRoot, metas.older?.freeRoot], [1, 0, 0]);

    db = await open('d', { ...OPTS, backend: dir });
    assert.deepEqual(db.check().errors, []);
    await db.put('a', 'b');
    await db.checkpoint();
    const after = readMetas(file(dir, DATA_FILE)).newest;
    assert.notEqual(after.freeRoot, 0, 'the first checkpoint writes a bitmap chain');
    assert.ok(after.freeRoot >= 3);
    await db.close();
    db = await open('d', { ...OPTS, backend: dir });
    assert.equal(db.get('a')?.toString(), 'b');
    await db.close();

    // FORMAT.md's example: created, written once, closed: checkpoint 2 merges, 3 settles, and
    // nothing is pending or free, so no empty checkpoint follows.
    const fresh = new MemoryDirectory();
    const once = await open('d', { ...OPTS, backend: fresh });
    await once.put('a', 'b');
    await once.close();
    assert.equal(readMetas(file(fresh, DATA_FILE)).newest.checkpointId, 3);
  });

  it('a meta whose checkpoint id or seq holds 2^53 is invalid: the other meta opens', async () => {
    for (const field of [STATE_CHECKPOINT_ID, STATE_SEQ]) {
      const dir = await closedImage();
      const f = file(dir, DATA_FILE);
      const newest = readMetas(f).newest;
      poisonPageU64(f, metaPageOf(newest.checkpointId), STATE_OFFSET + field);
      const metas = readMetas(f);
      assert.equal(metas.older, undefined, 'only one meta is valid now');
      assert.equal(metas.newest.checkpointId, newest.checkpointId - 1);
      const db = await open('d', { ...OPTS, backend: dir });
      assert.equal(db.get('k7')?.toString(), 'v7');
      assert.equal(db.get('t1', { tree: 'albums' })?.toString(), 'named');
      assert.deepEqual(db.check().errors, []);
      await db.close();
    }
  });

  it('both metas damaged so: the open is refused with CORRUPTION naming the data file and both pages', async () => {
    const dir = await closedImage();
    const f = file(dir, DATA_FILE);
    poisonPageU64(f, 1, STATE_OFFSET + STATE_SEQ);
    poisonPageU64(f, 2, STATE_OFFSET + STATE_SEQ);
    await expectCorruption(open('d', { ...OPTS, backend: dir }), /neither meta page is valid.*page 1.*page 2|neither meta page is valid.*page 2.*page 1/, { file: DATA_FILE });
  });

  it("a tree descriptor in a meta counting 2^53 entries makes that meta invalid: the other opens, and is not overwritten by settling", async () => {
    const dir = await closedImage();
    const f = file(dir, DATA_FILE);
    const newest = readMetas(f).newest;
    poisonPageU64(f, metaPageOf(newest.checkpointId), STATE_OFFSET + STATE_ROOTS + ROOTS_MAIN + DESC_ENTRIES_OFFSET);
    for (let round = 0; round < 2; round++) {
      // Twice: the first open settles the metas from the intact one, the second opens what it left.
      const db = await open('d', { ...OPTS, backend: dir });
      assert.equal(db.get('k7')?.toString(), 'v7');
      assert.equal(db.get('t1', { tree: 'albums' })?.toString(), 'named');
      assert.deepEqual(db.check().errors, []);
      await db.close();
    }
  });

  it("both metas' descriptors damaged so: the open is refused with CORRUPTION naming the data file and the damage", async () => {
    const dir = await closedImage();
    const f = file(dir, DATA_FILE);
    for (const no of [1, 2]) poisonPageU64(f, no, STATE_OFFSET + STATE_ROOTS + ROOTS_MAIN + DESC_ENTRIES_OFFSET);
    await expectCorruption(open('d', { ...OPTS, backend: dir }), /neither meta page is valid.*default tree's descriptor counts 2\^53 or more entries/, { file: DATA_FILE });
  });

  it("a catalog entry counting 2^53 entries is refused with CORRUPTION naming the tree, on reads and in check()", async () => {
    const dir = await closedImage();
    const f = file(dir, DATA_FILE);
    const metas = readMetas(f);
    // One named tree: the catalog is one leaf, its root.
    const catalogRoot = metas.newest.roots.readUInt32LE(16);
    const leaf = readPage(f, catalogRoot);
    assert.equal(count(leaf), 1);
    const { at } = leafValue(leaf, 0);
    leaf.writeUInt32LE(TWO_53_HI, at + DESC_ENTRIES_OFFSET + 4);
    sealPage(leaf);
    f.write(catalogRoot * PAGE_SIZE, leaf);
    const db = await open('d', { ...OPTS, backend: dir });
    assert.equal(db.get('k1')?.toString(), 'v1', 'the default tree is unharmed');
    assert.throws(() => db.get('t1', { tree: 'albums' }), (e: unknown) => e instanceof CorruptionError && e.code === 'CORRUPTION' && /descriptor of tree 'albums' counts 2\^53/.test(e.message) && e.site.file === DATA_FILE);
    assert.ok(db.check().errors.some((m) => /descriptor of tree 'albums' counts 2\^53/.test(m)), 'check() reports it');
    // Deciding a batch reads the catalog too: a condition or a drop on the tree refuses that batch
    // with the CorruptionError, and writes nothing.
    const corrupt = (e: unknown): boolean => e instanceof CorruptionError && /descriptor of tree 'albums'/.test(e.message);
    await assert.rejects(db.batch([{ type: 'put', key: 'x', value: 'y' }], { ifMatch: [{ key: 't1', value: 'named', tree: 'albums' }] }), corrupt);
    await assert.rejects(db.dropTree('albums'), corrupt);
    assert.equal(db.get('x'), undefined);
    await db.put('k1', 'still writable');
    assert.equal(db.get('k1')?.toString(), 'still writable');
    await db.close().catch(() => undefined);
  });

  it('a catalog value of another length than a descriptor is CORRUPTION naming the tree', () => {
    for (const n of [0, TREE_DESC_SIZE - 1, TREE_DESC_SIZE + 1]) {
      assert.throws(() => decodeCatalogValue(Buffer.alloc(n), 'albums', { file: DATA_FILE }), (e: unknown) => e instanceof CorruptionError && e.site.file === DATA_FILE && e.message.includes(`descriptor of tree 'albums' has ${n} bytes, not ${TREE_DESC_SIZE}`));
    }
    assert.deepEqual(decodeCatalogValue(Buffer.alloc(TREE_DESC_SIZE), 'albums'), { root: 0, depth: 0, entries: 0 });
  });

  it('a journal segment header holding a segSeq of 2^53 refuses the open with CORRUPTION naming the segment', async () => {
    const dir = new MemoryDirectory();
    const db = await open('d', { ...OPTS, backend: dir, checkpointBytes: 2 ** 40 });
    await db.put('a', '1');
    const image = dir.clone();
    await db.close();
    const seg = listJournal(image).find((s) => s.records.length > 0);
    assert.ok(seg !== undefined);
    const f = file(image, seg.segment);
    const h = Buffer.alloc(SEGMENT_HEADER_END);
    f.read(0, h);
    h.writeUInt32LE(TWO_53_HI, SEG_SEQ_OFFSET + 4);
    h.writeUInt32LE(checksum(h, SEG_MAGIC_OFFSET, SEGMENT_HEADER_END, JOURNAL_SEED), SEG_CHECKSUM_OFFSET);
    f.write(0, h);
    await expectCorruption(open('d', { ...OPTS, backend: image }), /64-bit field at offset 16 holds 2\^53 or more/, { file: seg.segment });
  });

  it('a journal record holding a sequence number of 2^53 is invalid: the scan ends before it, the batches before it replay', async () => {
    for (const field of [REC_SEG_SEQ_OFFSET, REC_FIRST_SEQ_OFFSET]) {
      const dir = new MemoryDirectory();
      const db = await open('d', { ...OPTS, backend: dir, checkpointBytes: 2 ** 40 });
      await db.put('a', '1');
      await db.put('b', '2');
      await db.put('c', '3');
      const image = dir.clone();
      await db.close();
      const seg = listJournal(image).find((s) => s.records.length > 0);
      assert.ok(seg !== undefined && seg.records.length === 3, 'three records, one a batch');
      const third = seg.records[2];
      assert.ok(third !== undefined);
      const f = file(image, seg.segment);
      const h = Buffer.alloc(RECORD_HEADER_SIZE);
      f.read(third.offset, h);
      h.writeUInt32LE(TWO_53_HI, field + 4);
      h.writeUInt32LE(checksum(h, REC_SEG_SEQ_OFFSET, RECORD_HEADER_SIZE, JOURNAL_SEED), REC_HEADER_SUM_OFFSET);
      f.write(third.offset, h);
      assert.ok(third.offset >= SEGMENT_DATA_OFFSET);
      const again = await open('d', { ...OPTS, backend: image });
      assert.deepEqual(['a', 'b', 'c'].map((k) => again.get(k)?.toString()), ['1', '2', undefined]);
      assert.equal(again.stats().recovery.batches, 2);
      await again.close();
    }
  });

});
