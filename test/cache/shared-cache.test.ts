// The page cache every thread shares (pager/shared-cache.ts): its epochs, pins and bound, and two
// threads evicting from it at once. Every frame handed out is checked byte by byte against the
// page asked for, and, with verifyHits (the test build), every hit is checksummed as it is found.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { NodeDirectory } from '../../pager/backend.js';
import { PAGE_SIZE, PageKind, initPage, sealPage, verifyPageAt } from '../../pager/page-format.js';
import type { PageNo } from '../../pager/ids.js';
import { PageReader } from '../../pager/reader.js';
import { MAX_CACHE_BYTES, SharedPageCache } from '../../pager/shared-cache.js';
import { rmDir, tmpDir } from '../helpers/index.js';
import { checkFrame, expectedPage, type EvictionReport } from './eviction-pages.js';

const FILE = 'pages.bin';

/** A file of `pages` pages: 0..2 zero (never cached), then expectedPage(no) for each number. */
function writePages(dir: string, pages: number): void {
  const buf = Buffer.alloc(pages * PAGE_SIZE);
  for (let no = 3; no < pages; no++) expectedPage(no).copy(buf, no * PAGE_SIZE);
  fs.writeFileSync(path.join(dir, FILE), buf);
}

/** A reader of the test file on its own slot of `cache` (one per simulated thread). */
function readerOn(dir: string, cache: SharedPageCache): PageReader {
  const view = SharedPageCache.attach(cache.init);
  view.useSlot(cache.reserveSlot());
  return new PageReader(new NodeDirectory(dir).open(FILE, { create: false, readOnly: true }), view);
}

function read(r: PageReader, no: number): { off: number; bytes: Buffer } {
  const off = r.pageAt(no);
  return { off, bytes: r.bytes };
}

describe('pager: the shared page cache', () => {
  let dir: string;
  before(() => {
    dir = tmpDir('birch-cache');
    writePages(dir, 600);
  });
  after(() => rmDir(dir));

  it('holds at most its bound, hits without reading the disk again, and misses read the page in place', () => {
    const cache = SharedPageCache.create(32 * PAGE_SIZE, { verifyHits: true });
    const r = readerOn(dir, cache);
    for (let no = 3; no < 200; no++) {
      r.begin();
      const { off, bytes } = read(r, no);
      assert.equal(checkFrame(bytes, off, no), undefined);
      assert.equal(bytes, r.cache.bytes, 'read into a frame, not a private page');
      r.end();
      assert.ok(cache.occupancy().frames <= 32, `${cache.occupancy().frames} frames in use`);
    }
    assert.equal(r.misses, 197);
    r.begin();
    read(r, 199);
    r.end();
    assert.equal(r.hits, 1, 'the last page read is still cached');
    assert.ok(cache.occupancy().evictions >= 197 - 32, 'pages were evicted to stay within the bound');
  });

  it('evicts by CLOCK: a page used all along stays, a page not used since it came in goes', () => {
    const cache = SharedPageCache.create(16 * PAGE_SIZE);
    const r = readerOn(dir, cache);
    for (let no = 10; no < 60; no++) {
      r.begin();
      read(r, no);
      read(r, 3);
      r.end();
    }
    const hitsBefore = r.hits;
    r.begin();
    read(r, 3);
    r.end();
    assert.equal(r.hits, hitsBefore + 1, 'page 3, read between every other read, is still cached');
    r.begin();
    read(r, 11);
    r.end();
    assert.equal(r.hits, hitsBefore + 1, 'page 11, read once 48 reads ago, is not');
  });

  it('never reuses a frame that a thread inside an epoch may be reading, and reuses it once that thread has left', () => {
    const cache = SharedPageCache.create(16 * PAGE_SIZE);
    const a = readerOn(dir, cache);
    const b = readerOn(dir, cache);
    b.begin();
    const held = read(b, 100);
    // Another thread reads many other pages: page 100 is evicted long before this ends.
    for (let no = 200; no < 400; no++) {
      a.begin();
      const { off, bytes } = read(a, no);
      assert.equal(checkFrame(bytes, off, no), undefined, `page ${no} read while b holds an epoch`);
      a.end();
    }
    assert.equal(checkFrame(held.bytes, held.off, 100), undefined, 'the frame b found is intact while b is inside its epoch');
    b.end();
    let reused = false;
    for (let no = 400; no < 500 && !reused; no++) {
      a.begin();
      read(a, no);
      a.end();
      reused = checkFrame(held.bytes, held.off, 100) !== undefined;
    }
    assert.ok(reused, 'once b left its epoch the frame went back into use');
  });

  it('keeps a pinned frame as it is, even after its page number is given a new image, until it is unpinned', () => {
    const cache = SharedPageCache.create(16 * PAGE_SIZE);
    const r = readerOn(dir, cache);
    r.begin();
    const held = read(r, 50);
    r.cache.pin(held.off);
    r.end();
    r.cache.remove(50);
    for (let no = 100; no < 300; no++) {
      r.begin();
      read(r, no);
      r.end();
    }
    assert.equal(checkFrame(held.bytes, held.off, 50), undefined, 'pinned: intact through 200 evictions and its own removal');
    r.cache.unpin(held.off);
    let reused = false;
    for (let no = 300; no < 400 && !reused; no++) {
      r.begin();
      read(r, no);
      r.end();
      reused = checkFrame(held.bytes, held.off, 50) !== undefined;
    }
    assert.ok(reused, 'unpinned, the frame is reused');
  });

  it('reads into a private page when no frame can be had, and a released slot no longer holds frames back', () => {
    const cache = SharedPageCache.create(16 * PAGE_SIZE);
    const a = readerOn(dir, cache);
    const b = readerOn(dir, cache);
    // b stays inside an epoch (a thread that died there): everything a evicts stays in limbo.
    b.begin();
    let privateReads = 0;
    for (let no = 3; no < 103; no++) {
      a.begin();
      const { off, bytes } = read(a, no);
      if (bytes !== a.cache.bytes) privateReads++;
      assert.equal(checkFrame(bytes, off, no), undefined, `page ${no}`);
      a.end();
    }
    assert.ok(privateReads > 50, `${privateReads} of 100 reads were private while no frame could be reused`);
    cache.releaseSlot(b.cache.slot);
    let framed = 0;
    for (let no = 103; no < 203; no++) {
      a.begin();
      const { bytes } = read(a, no);
      if (bytes === a.cache.bytes) framed++;
      a.end();
    }
    assert.ok(framed > 90, `${framed} of 100 reads went through frames again once the slot was released`);
  });

  it('a thread that ended holding the lock leaves the cache disabled, not locked: reads still come right, from disk', () => {
    const cache = SharedPageCache.create(32 * PAGE_SIZE, { verifyHits: true });
    const r = readerOn(dir, cache);
    for (let no = 3; no < 20; no++) {
      r.begin();
      read(r, no);
      r.end();
    }
    // Another thread takes the lock and ends without releasing it (a worker terminated mid-claim).
    const dead = SharedPageCache.attach(cache.init);
    const slot = cache.reserveSlot();
    dead.useSlot(slot);
    dead.holdLockForTests();
    assert.equal(cache.disabled, false);
    cache.releaseSlot(slot);
    assert.equal(cache.disabled, true);
    const hits = r.hits;
    for (let no = 3; no < 100; no++) {
      r.begin();
      const { off, bytes } = read(r, no);
      assert.equal(checkFrame(bytes, off, no), undefined, `page ${no}`);
      r.end();
    }
    assert.equal(r.hits, hits, 'no hit once disabled: every read from disk');
    // The lock is free again: the operations that take it return.
    cache.install(5, expectedPage(5));
    cache.remove(5);
    assert.equal(cache.claim(), -1);
  });

  it('reads frames past the first 2 GiB of its memory (offsets of 2^31 and more)', function () {
    // A 1 GB database filled a default-size cache past 2 GiB, and sizes and offsets taken with
    // `>> 2` turned negative. Growing the buffer commits no memory until a page is touched.
    const cache = SharedPageCache.create(MAX_CACHE_BYTES);
    const frames = cache.init.frames as SharedArrayBuffer & { grow?: (n: number) => void; growable?: boolean };
    const off = 2 ** 31 + 2 * PAGE_SIZE;
    if (frames.growable === true && frames.grow !== undefined) frames.grow(off + PAGE_SIZE);
    const other = SharedPageCache.attach(cache.init);
    assert.ok(other.bytes.length >= off + PAGE_SIZE);
    const page = Buffer.alloc(PAGE_SIZE);
    initPage(page, 77 as PageNo, PageKind.Leaf);
    page.fill(0x5a, 64);
    sealPage(page);
    page.copy(other.bytes, off);
    verifyPageAt(other.bytes, other.words, off, 77);
    other.bytes[off + 100] = (other.bytes[off + 100] as number) ^ 1;
    assert.throws(() => verifyPageAt(other.bytes, other.words, off, 77), { code: 'CORRUPTION' });
  });

  it('under two threads evicting at once, never hands out a frame that does not hold the page asked for', async function () {
    this.timeout(120_000);
    const pages = 4000;
    const big = tmpDir('birch-cache-threads');
    try {
      writePages(big, pages);
      // 64 frames for 4,000 pages: nearly every read misses and evicts; installs and removals (as
      // the checkpointer makes them) edit the table under both readers.
      const cache = SharedPageCache.create(64 * PAGE_SIZE, { verifyHits: true });
      const workerSlot = cache.reserveSlot();
      const rounds = 150_000;
      const worker = new Worker(new URL('./eviction-worker.js', import.meta.url), {
        workerData: { dir: big, file: FILE, cache: cache.init, slot: workerSlot, pages, rounds, seed: 7 },
      });
      const fromWorker = new Promise<EvictionReport>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      const r = readerOn(big, cache);
      const mine: EvictionReport = { reads: 0, wrong: 0, installs: 0, removes: 0, firstWrong: '' };
      let s = 11;
      for (let i = 0; i < rounds; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        const no = 3 + (s % (pages - 3));
        if ((s >>> 8) % 16 === 0) {
          cache.install(no, expectedPage(no));
          mine.installs++;
          continue;
        }
        r.begin();
        try {
          const { off, bytes } = read(r, no);
          const problem = checkFrame(bytes, off, no);
          mine.reads++;
          if (problem !== undefined) {
            mine.wrong++;
            if (mine.firstWrong === '') mine.firstWrong = problem;
          }
        } finally {
          r.end();
        }
      }
      const theirs = await fromWorker;
      await worker.terminate();
      const occ = cache.occupancy();
      console.log(`      main: ${mine.reads} reads (${r.misses} misses), ${mine.installs} installs; worker: ${theirs.reads} reads, ${theirs.installs} installs, ${theirs.removes} removals; ${occ.evictions} evictions`);
      assert.equal(mine.wrong, 0, mine.firstWrong);
      assert.equal(theirs.wrong, 0, theirs.firstWrong);
      assert.ok(mine.reads > rounds / 2 && theirs.reads > rounds / 2, 'both threads read');
      assert.ok(occ.evictions > rounds, `${occ.evictions} evictions: the threads evicted under each other`);
      assert.ok(occ.frames <= 64);
    } finally {
      rmDir(big);
    }
  });
});
