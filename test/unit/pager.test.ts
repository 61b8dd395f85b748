import assert from 'node:assert/strict';
import { readU64, writeU64 } from '../../pager/bytes.js';
import { RunSet, FreeList, decodeFreeList, initBitmapPage, markPages, setBitmapNext, BITMAP_BITS_PER_PAGE } from '../../pager/freelist.js';
import { PAGE_SIZE, PageKind, initPage, sealPage, verifyPage } from '../../pager/page-format.js';
import { META_PAGES, encodeMeta, decodeMeta, ROOTS_SIZE, FORMAT_VERSION, VERSION_OFFSET, encodeFileHeader, type DbState } from '../../pager/meta-format.js';
import { checkpointId, pageNo, seq, type PageNo } from '../../pager/ids.js';
import { DATA_FILE, DataFile, createDataFile, readMetas } from '../../pager/data-file.js';
import { checksum } from '../../pager/checksum.js';
import { BirchError, CorruptionError, MemoryDirectory } from '../../api/index.js';
import type { MemoryFile } from '../../pager/backend.js';

function flip(buf: Buffer, off: number): void {
  buf[off] = (buf[off] as number) ^ 0x5a;
}

describe('pager: byte helpers', () => {
  it('round-trips u64 values up to 2^53-1 and rejects larger ones', () => {
    const b = Buffer.alloc(8);
    for (const v of [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]) {
      writeU64(b, 0, v);
      assert.equal(readU64(b, 0), v);
    }
    assert.throws(() => writeU64(b, 0, 2 ** 53));
    b.writeUInt32LE(0, 0);
    b.writeUInt32LE(0x200000, 4); // exactly 2^53
    assert.throws(() => readU64(b, 0, { file: 'f', pageNo: 7 }), (e: unknown) => e instanceof CorruptionError && e.code === 'CORRUPTION' && e.site.file === 'f' && e.site.pageNo === 7 && e.site.offset === 0);
  });
});

describe('pager: page checksums', () => {
  it('detects a flipped bit anywhere in a page, naming the page', () => {
    const page = Buffer.alloc(PAGE_SIZE);
    initPage(page, pageNo(7), PageKind.Leaf);
    page.write('payload', 100);
    sealPage(page);
    verifyPage(page, 7);
    for (const off of [0, 5, 100, PAGE_SIZE - 1]) {
      const bad = Buffer.from(page);
      bad[off] = (bad[off] as number) ^ 0x10;
      assert.throws(() => verifyPage(bad, 7), (e: unknown) => e instanceof CorruptionError && e.site.pageNo === 7);
    }
  });
  it('detects a page written at the wrong place', () => {
    const page = Buffer.alloc(PAGE_SIZE);
    initPage(page, pageNo(7), PageKind.Leaf);
    sealPage(page);
    assert.throws(() => verifyPage(page, 8), /page number 7/);
  });
  it('an all-zero page is not a valid page', () => {
    assert.throws(() => verifyPage(Buffer.alloc(PAGE_SIZE), 3), CorruptionError);
  });
});

describe('pager: meta pages', () => {
  const state = (id: number, sq = id * 10): DbState => ({ checkpointId: checkpointId(id), seq: seq(sq), pageCount: 100, freeRoot: pageNo(9), roots: Buffer.alloc(ROOTS_SIZE, id) });
  it('round-trips the state, in the slot of its checkpoint id', () => {
    const page = encodeMeta(state(41));
    const m = decodeMeta(page, META_PAGES[1] as PageNo, 'f');
    assert.ok(!(m instanceof CorruptionError));
    assert.equal(m.checkpointId, 41);
    assert.equal(m.seq, 410);
    assert.equal(m.pageCount, 100);
    assert.deepEqual(m.roots, Buffer.alloc(ROOTS_SIZE, 41));
    assert.ok(decodeMeta(page, META_PAGES[0] as PageNo, 'f') instanceof CorruptionError, 'a meta read at the other slot is refused');
  });
  it('opening picks the newest valid meta, falls back to the other, and refuses a file with neither', () => {
    const dir = new MemoryDirectory();
    createDataFile(dir, state(0));
    const data = DataFile.open(dir);
    data.writeMeta(state(1));
    data.writeMeta(state(2));
    data.close();
    const file = dir.files.get(DATA_FILE) as MemoryFile;
    assert.equal(readMetas(file).newest.checkpointId, 2);
    assert.equal(readMetas(file).older?.checkpointId, 1);
    // Meta 2 sits in slot 0 (page 1): damaged, the other one wins.
    flip(file.data, 1 * PAGE_SIZE + 50);
    assert.equal(readMetas(file).newest.checkpointId, 1);
    assert.equal(readMetas(file).older, undefined);
    flip(file.data, 2 * PAGE_SIZE + 50);
    assert.throws(() => readMetas(file), (e: unknown) => e instanceof CorruptionError && /neither meta/.test(e.message));
  });
  it('settle makes both metas hold the newest trees, under the next checkpoint id', () => {
    const dir = new MemoryDirectory();
    createDataFile(dir, state(0));
    const data = DataFile.open(dir);
    const written = state(1);
    data.writeMeta(written);
    data.settle();
    // Read back from the file, not from the DataFile's own copy: both slots must hold what was written.
    const file = dir.files.get(DATA_FILE) as MemoryFile;
    const onDisk = readMetas(file);
    assert.equal(onDisk.newest.checkpointId, 2);
    assert.equal(onDisk.older?.checkpointId, 1);
    for (const m of [onDisk.newest, onDisk.older as DbState]) {
      assert.equal(m.seq, written.seq, `meta ${m.checkpointId}: seq`);
      assert.equal(m.pageCount, written.pageCount, `meta ${m.checkpointId}: page count`);
      assert.equal(m.freeRoot, written.freeRoot, `meta ${m.checkpointId}: free list root`);
      assert.deepEqual(m.roots, written.roots, `meta ${m.checkpointId}: tree roots`);
    }
    const before = Buffer.from(file.data);
    data.settle();
    assert.equal(readMetas(file).newest.checkpointId, 2, 'settled metas are left alone');
    assert.ok(file.data.equals(before), 'settling settled metas writes nothing');
    data.close();
  });
  it('refuses a data file of another format version, naming both versions', () => {
    const dir = new MemoryDirectory();
    createDataFile(dir, state(0));
    const file = dir.files.get(DATA_FILE) as MemoryFile;
    // A format 2 file header: the version field rewritten, the page re-sealed.
    const header = encodeFileHeader();
    header.writeUInt32LE(2, VERSION_OFFSET);
    header.writeUInt32LE(checksum(header, 4, PAGE_SIZE), 0);
    file.write(0, header);
    assert.throws(() => readMetas(file), (e: unknown) => e instanceof BirchError && e.code === 'FORMAT_UNSUPPORTED' && e.message.includes('format version 2') && e.message.includes(`version ${FORMAT_VERSION}`));
  });
});

describe('pager: RunSet and free list', () => {
  it('coalesces adjacent pages into runs', () => {
    const r = new RunSet();
    for (const p of [5, 7, 6, 10, 9, 3]) r.add(p);
    assert.deepEqual([...r.runs()], [[3, 1], [5, 3], [9, 2]]);
    assert.equal(r.pages, 6);
    assert.throws(() => r.add(6), /twice/);
  });
  it('defers reuse of a page until nothing can read the checkpoint before the one that freed it', () => {
    const fl = new FreeList();
    fl.addPending(5, [pageNo(20), pageNo(21)]);
    fl.release(4);
    assert.equal(fl.free.pages, 0, 'a reader of checkpoint 4 can still read pages checkpoint 5 freed');
    fl.release(5);
    assert.equal(fl.free.pages, 2);
  });
  it('gives back a free tail of the file, and only a free one', () => {
    const fl = new FreeList();
    fl.addFree(10, 5);
    fl.addFree(30, 10);
    assert.equal(fl.tailStart(40), 30);
    assert.equal(fl.free.pages, 15, 'tailStart changes nothing');
    assert.equal(fl.trimTail(40), 30);
    assert.equal(fl.free.pages, 5);
    assert.equal(fl.trimTail(30), 30, 'page 29 is in use: nothing to give back');
    fl.addPending(7, [pageNo(29)]);
    assert.equal(fl.trimTail(30), 30, 'a pending page is not free yet');
  });
  it('runs-first prefers long runs and the file end over scattered pages', () => {
    const fl = new FreeList({ policy: 'runs-first', minRunPages: 4, scatterLimit: 0.5 });
    for (const p of [3, 5, 7]) fl.free.add(p);
    for (let p = 20; p < 26; p++) fl.free.add(p);
    assert.equal(fl.take(1, 1000), 20);
    assert.equal(fl.take(1, 1000), 21, 'continues the run it took from');
    assert.equal(fl.take(5, 1000), undefined, 'no run long enough: grow the file rather than scatter');
    assert.equal(fl.take(1, 1000), 22);
    const scattered = new FreeList({ policy: 'runs-first', minRunPages: 4, scatterLimit: 0.5 });
    for (const p of [3, 5, 7]) scattered.free.add(p);
    assert.equal(scattered.take(1, 1000), undefined, '3 scattered pages in a 1000-page file: grow instead');
    assert.equal(scattered.take(1, 5), 3, 'past the scatter limit they are reused, lowest first');
  });
  it('first-fit takes the lowest page', () => {
    const fl = new FreeList({ policy: 'first-fit', minRunPages: 1, scatterLimit: 0 });
    for (const p of [9, 4, 30]) fl.free.add(p);
    assert.equal(fl.take(1, 100), 4);
  });
  it('keeps the free-space bitmap across a chain of pages and reads it back as runs', () => {
    const pageCount = BITMAP_BITS_PER_PAGE * 2 + 100;
    const chain = [50, 51, 52].map((n, k) => {
      const buf = Buffer.alloc(PAGE_SIZE);
      initBitmapPage(buf, pageNo(n), k);
      return { no: pageNo(n), buf };
    });
    setBitmapNext(chain[0]!.buf, pageNo(51));
    setBitmapNext(chain[1]!.buf, pageNo(52));
    const bufs = chain.map((c) => c.buf);
    const expected = new RunSet();
    // Single pages, a run across a page boundary, a run of whole bytes, and one cleared again.
    for (let i = 0; i < 300; i++) expected.add(1000 + i * 3);
    expected.addRun(BITMAP_BITS_PER_PAGE - 5, 17);
    expected.addRun(BITMAP_BITS_PER_PAGE * 2 + 8, 64);
    for (const [start, len] of expected.runs()) markPages(bufs, start, len, true);
    markPages(bufs, 3000, 1, true);
    markPages(bufs, 3000, 1, false);
    for (const c of chain) sealPage(c.buf);
    const byNo = new Map(chain.map((c) => [c.no as number, c.buf]));
    const back = decodeFreeList(pageNo(50), pageCount, (no) => byNo.get(no) as Buffer);
    assert.deepEqual([...back.runs.runs()], [...expected.runs()]);
    assert.deepEqual(back.pages, [50, 51, 52]);
    assert.throws(() => decodeFreeList(pageNo(50), BITMAP_BITS_PER_PAGE * 2 + 70, (no) => byNo.get(no) as Buffer), /past the end of the file/);
    assert.throws(() => decodeFreeList(pageNo(51), pageCount, (no) => byNo.get(no) as Buffer), /claims to start/);
  });
});
