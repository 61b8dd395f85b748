// One thread's way of reading the data file: through the page cache every thread shares
// (shared-cache.ts), on a file descriptor of its own.
//
// The hot path, for the thread that serves reads: begin(), then pageAt(no) for each page, which
// returns the page's offset in `bytes` (a frame of the cache: no copy, no allocation), then end().
// A miss reads the page from disk straight into a free frame and verifies it there, once: a hit is
// never verified again (the bytes of a reachable page never change, and a frame is reused only
// after every thread left the epoch it could have found it in). Offsets are valid until end() or
// the next miss (a miss leaves the epoch while it reads), so a caller reads what it needs of one
// page before asking for the next.
//
// Safety rests on the checkpointer's free list: a page is reused only once no snapshot any thread
// serves can reach it, and the checkpointer drops a page's old image from the cache when it takes
// its number for a new page. So a cached image is never stale for a tree a reader reaches.
import type { FileBackend } from './backend.js';
import { BirchError } from '../platform/errors.js';
import type { PageNo } from './ids.js';
import { DATA_FILE, VerifiedRuns, readVerifiedPage } from './data-file.js';
import { KIND_OFFSET, PAGE_SIZE, PageKind, pageOffsetBytes, verifyPage, verifyPageAt } from './page-format.js';
import type { SharedPageCache } from './shared-cache.js';

/**
 * Where tree code reads pages from: the shared cache (PageReader, in place), or private page
 * buffers (PrivatePages: the checkpointer's pages, tools). One search and one cursor serve both.
 */
export interface PageSource {
  /** The memory the offset returned by the last pageAt() points into. */
  readonly bytes: Buffer;
  /** Brackets a read: offsets from pageAt() are valid until end() or the next miss. */
  begin(): void;
  end(): void;
  /** Page `no`'s offset in `bytes`. */
  pageAt(no: number): number;
  /** Whether `no` can be had without a disk read (read-ahead asks before it reads a run). */
  cached(no: number): boolean;
  /** Reads pages first .. first + count - 1 ahead, in one read, where that helps. */
  readRun(first: number, count: number): void;
}

/** A PageSource over a function that returns a page of its own (offset 0). */
export class PrivatePages implements PageSource {
  bytes: Buffer = Buffer.alloc(0);
  readonly #read: (no: PageNo) => Buffer;
  constructor(read: (no: PageNo) => Buffer) {
    this.#read = read;
  }
  begin(): void {}
  end(): void {}
  pageAt(no: number): number {
    this.bytes = this.#read(no as PageNo);
    return 0;
  }
  cached(): boolean {
    return true;
  }
  readRun(): void {}
}

/**
 * Pages for one long scan (an export thread walking a whole tree): read from disk in runs into a
 * private buffer, never into the shared cache, so that a scan neither evicts what other threads
 * keep hot nor pays to fill frames it will not read again. A page is verified when the walk first
 * reaches it; pages of a run that the walk never reaches (free pages, pages a checkpoint is
 * writing) are never looked at. Offsets are valid until the next readRun() or miss.
 */
export class ScanPages implements PageSource {
  bytes: Buffer;
  readonly #file: FileBackend;
  readonly #run = Buffer.allocUnsafeSlow(MAX_READ_RUN_PAGES * PAGE_SIZE);
  /** The run in `#run`: pages runFirst .. runFirst + runCount - 1; `#verified` marks those checked. */
  #runFirst = -1;
  #runCount = 0;
  readonly #verified = new Uint8Array(MAX_READ_RUN_PAGES);
  /** A page read on its own (a branch, a leaf outside the run): the last SINGLE_PAGES of them, kept. */
  readonly #single = new Map<number, Buffer>();

  constructor(file: FileBackend) {
    this.#file = file;
    this.bytes = this.#run;
  }

  begin(): void {}
  end(): void {}

  cached(no: number): boolean {
    return (no >= this.#runFirst && no < this.#runFirst + this.#runCount) || this.#single.has(no);
  }

  pageAt(no: number): number {
    const k = no - this.#runFirst;
    if (k >= 0 && k < this.#runCount) {
      if (this.#verified[k] === 0) {
        verifyPage(this.#run.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE), no, DATA_FILE);
        this.#verified[k] = 1;
      }
      this.bytes = this.#run;
      return k * PAGE_SIZE;
    }
    let page = this.#single.get(no);
    if (page === undefined) {
      page = readVerifiedPage(this.#file, no as PageNo);
      // Branches are read again at every descent: keep a few (a walk holds one path of them).
      if (this.#single.size >= SCAN_SINGLE_PAGES) this.#single.delete(this.#single.keys().next().value as number);
      this.#single.set(no, page);
    }
    this.bytes = page;
    return 0;
  }

  readRun(first: number, count: number): void {
    count = Math.min(count, MAX_READ_RUN_PAGES);
    if (count <= 1) return;
    // Forgotten first: a read that fails half-way leaves the buffer part old, part new.
    this.#runCount = 0;
    try {
      this.#file.read(pageOffsetBytes(first), this.#run, 0, count * PAGE_SIZE);
    } catch (err) {
      throw new BirchError('IO', `cannot read pages ${first}..${first + count - 1} of ${DATA_FILE}`, { cause: err, site: { file: DATA_FILE, pageNo: first } });
    }
    this.#runFirst = first;
    this.#runCount = count;
    this.#verified.fill(0);
  }

  close(): void {
    this.#file.close();
  }
}

/** Pages a scan keeps that it read one at a time: more than a tree's depth. */
const SCAN_SINGLE_PAGES = 16;

/** Pages read with one read when a range walks leaves that sit in a run (readRun). */
export const MAX_READ_RUN_PAGES = 32;
/** Private pages for reads when the cache has no frame to give (every one in use by some thread). */
const SCRATCH_PAGES = 4;

export class PageReader implements PageSource {
  readonly cache: SharedPageCache;
  readonly #file: FileBackend;
  /** Reads served by the cache and from disk (this thread's). */
  hits = 0;
  misses = 0;
  /** The memory the offset returned by the last pageAt() points into: the cache's frames, or a private page. */
  bytes: Buffer;
  #scratch: Buffer | undefined;
  #scratchNext = 0;
  #run: Buffer | undefined;
  #closed = false;

  constructor(file: FileBackend, cache: SharedPageCache) {
    this.#file = file;
    this.cache = cache;
    this.bytes = cache.bytes;
  }

  /** Starts a read: offsets from pageAt() are valid until end() (or the next miss). */
  begin(): void {
    if (this.#closed) throw new BirchError('DB_CLOSED', 'the database is closed');
    this.cache.enter();
  }

  end(): void {
    this.cache.exit();
  }

  cached(no: number): boolean {
    return this.cache.lookup(no) >= 0;
  }

  /** Page `no`'s offset in `bytes` (read `bytes` after this call). Between begin() and end(). */
  pageAt(no: number): number {
    const off = this.cache.lookup(no);
    if (off >= 0) {
      this.hits++;
      this.bytes = this.cache.bytes;
      return off;
    }
    return this.#miss(no);
  }

  /** A miss: the page read from disk into a free frame, verified there, then published. */
  #miss(no: number): number {
    this.misses++;
    const cache = this.cache;
    // Out of the epoch for the read: other threads may reuse what they evict meanwhile.
    cache.exit();
    let off = cache.claim();
    if (off < 0) {
      // Every frame is in use or still visible to a thread inside an epoch: read privately.
      const page = this.#scratchPage();
      try {
        this.#read(no, page, 0);
        verifyPage(page.subarray(0, PAGE_SIZE), no, DATA_FILE);
      } finally {
        cache.enter();
      }
      this.bytes = page;
      return 0;
    }
    let frames = cache.bytes;
    try {
      this.#read(no, frames, off);
      verifyPageAt(frames, cache.words, off, no, DATA_FILE);
    } catch (err) {
      cache.unclaim(off);
      cache.enter();
      throw err;
    }
    // Back in the epoch before the frame is published: from then on other threads may evict it,
    // and they will wait for this thread to leave the epoch before reusing it.
    cache.enter();
    off = cache.publish(no, off);
    frames = cache.bytes;
    this.bytes = frames;
    return off;
  }

  #read(no: number, into: Buffer, offset: number): void {
    if (this.#closed) throw new BirchError('DB_CLOSED', 'the database is closed');
    try {
      this.#file.read(pageOffsetBytes(no), into, offset, PAGE_SIZE);
    } catch (err) {
      throw new BirchError('IO', `cannot read page ${no} of ${DATA_FILE}`, { cause: err, site: { file: DATA_FILE, pageNo: no } });
    }
  }

  #scratchPage(): Buffer {
    this.#scratch ??= Buffer.alloc(SCRATCH_PAGES * PAGE_SIZE);
    const k = this.#scratchNext;
    this.#scratchNext = (k + 1) % SCRATCH_PAGES;
    // A view per use: the caller may still read the page it was handed before this one.
    return this.#scratch.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
  }

  /**
   * Reads pages first .. first + count - 1 that are not cached with one read and caches them (a
   * range about to walk leaves that sit in a run). Between begin() and end(); like a miss, it
   * leaves the epoch while it reads, so offsets found before it are not valid after it.
   */
  readRun(first: number, count: number): void {
    // A run takes at most an eighth of the cache, so that it cannot evict its own first pages.
    count = Math.min(count, MAX_READ_RUN_PAGES, this.cache.maxFrames >> 3);
    if (count <= 1) return;
    const cache = this.cache;
    cache.exit();
    try {
      this.#run ??= Buffer.alloc(MAX_READ_RUN_PAGES * PAGE_SIZE);
      const run = this.#run.subarray(0, count * PAGE_SIZE);
      try {
        this.#file.read(pageOffsetBytes(first), run, 0, run.length);
      } catch (err) {
        throw new BirchError('IO', `cannot read pages ${first}..${first + count - 1} of ${DATA_FILE}`, { cause: err, site: { file: DATA_FILE, pageNo: first } });
      }
      for (let k = 0; k < count; k++) {
        const page = run.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
        // A page of the run that is not a tree page of this snapshot (free, or already cached) is
        // left alone: only pages that verify as themselves are cached; the others are read when
        // (if) the walk reaches them, and fail there if they are damaged.
        const kind = page[KIND_OFFSET];
        if (kind !== PageKind.Leaf && kind !== PageKind.Branch) continue;
        try {
          verifyPage(page, first + k, DATA_FILE);
        } catch {
          continue;
        }
        this.misses++;
        const off = cache.claim();
        if (off < 0) break;
        page.copy(cache.bytes, off);
        cache.enter();
        cache.publish(first + k, off);
        cache.exit();
      }
    } finally {
      cache.enter();
    }
  }

  /**
   * A private copy of page `no` (for a thread that keeps pages across many reads: the
   * checkpointer). Read from disk on a miss, and cached then if `cacheIf` says so of its kind.
   * Outside begin()/end().
   */
  copyPage(no: PageNo, cacheIf?: (kind: number) => boolean): { page: Buffer; hit: boolean } {
    const cache = this.cache;
    cache.enter();
    const off = cache.lookup(no);
    if (off >= 0) {
      const page = Buffer.allocUnsafeSlow(PAGE_SIZE);
      cache.bytes.copy(page, 0, off, off + PAGE_SIZE);
      cache.exit();
      this.hits++;
      return { page, hit: true };
    }
    cache.exit();
    this.misses++;
    const page = this.readFromDisk(no);
    if (cacheIf?.(page[KIND_OFFSET] as number) === true) cache.install(no, page);
    return { page, hit: false };
  }

  /** For the verifier: pages read afresh from disk in runs, bypassing the cache (data-file.ts VerifiedRuns). */
  verifiedRuns(pageCount: number): VerifiedRuns {
    if (this.#closed) throw new BirchError('DB_CLOSED', 'the database is closed');
    return new VerifiedRuns(this.#file, pageCount);
  }

  /** For the verifier: read afresh from disk, bypassing the cache. */
  readFromDisk(no: PageNo): Buffer {
    if (this.#closed) throw new BirchError('DB_CLOSED', 'the database is closed');
    return readVerifiedPage(this.#file, no);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}
