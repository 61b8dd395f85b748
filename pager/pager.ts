// The pager: the data file, the page cache, committed page images that the data file does not hold
// yet, the free list, and the page-level half of a write transaction (allocation, copy-on-write,
// freeing). It knows nothing of keys, trees or the journal.
//
// Where the newest committed image of a page lives, checked in this order:
//   1. `unflushed`: pages committed (and journaled) since the last data-file flush;
//   2. the page cache;
//   3. the data file, verified against its checksum on every read.
// Invariant: a committed page is never modified in place. A page number is reused only after the
// free list released it, i.e. when no live snapshot can reach the old image; its cached image is
// dropped when the new image is installed.
import { FatalIoError, BirchError, CorruptionError } from './errors.js';
import type { DirectoryBackend, FileBackend } from './backend.js';
import { PageCache } from './cache.js';
import { FreeList, bitmapPagesFor, decodeFreeList, initBitmapPage, markPages, setBitmapNext, type AllocationOptions } from './freelist.js';
import { pageNo, txnId, type PageNo, type TxnId } from './ids.js';
import { META_PAGES, ROOTS_SIZE, checkFileHeader, decodeMeta, encodeFileHeader, encodeMeta, type DbState } from './meta-format.js';
import { FIRST_DATA_PAGE, PAGE_NO_OFFSET, PAGE_SIZE, PageKind, initPage, pageOffsetBytes, sealPage, verifyPage } from './page-format.js';
import { writeU32 } from './bytes.js';

export const DATA_FILE = 'data.birch';

/**
 * Page `no` of the data file, read from `file` and verified against its checksum: the one way
 * every thread reads a page from disk. A failed read is a typed IO error; a bad page a
 * CorruptionError naming it.
 */
export function readVerifiedPage(file: FileBackend, no: PageNo): Buffer {
  const buf = Buffer.allocUnsafe(PAGE_SIZE);
  try {
    file.read(pageOffsetBytes(no), buf);
  } catch (err) {
    throw new BirchError('IO', `cannot read page ${no} of ${DATA_FILE}`, { cause: err });
  }
  verifyPage(buf, no, DATA_FILE);
  return buf;
}

/**
 * A page-sized buffer with its own memory, not zeroed: callers initialise or overwrite it whole.
 * (Buffer.from(page) would take Node's generic array-like path, measured at about 1.3 us a page.)
 */
function newPageBuffer(): Buffer {
  return Buffer.allocUnsafeSlow(PAGE_SIZE);
}

/**
 * A flush writes through at most this many dead pages between live ones rather than start a
 * second write. (Reuse waits for the metas, so new pages often come from the end of the file,
 * where live and dead pages interleave: writing every dead page between live ones wrote several
 * times the live set.)
 */
const DEAD_GAP_WRITTEN = 2;

/** The data file grows by this fraction of its size, clamped to [GROW_MIN, GROW_MAX] bytes. */
const GROW_FRACTION = 1 / 8;
const GROW_MIN_BYTES = 1 << 20;
const GROW_MAX_BYTES = 64 << 20;

export interface PagerOptions {
  cacheBytes: number;
  allocation: AllocationOptions;
}

export interface FlushStats {
  flushes: number;
  pagesFlushed: number;
  writeRuns: number;
  lastWriteRuns: number;
  lastPages: number;
}

export class Pager {
  readonly dir: DirectoryBackend;
  readonly file: FileBackend;
  readonly cache: PageCache;
  readonly freeList: FreeList;
  /** The newest committed state (it may be ahead of the data file's meta). */
  state: DbState;
  /** The state the data file's newest meta records. */
  flushedState: DbState;
  /** Pages of the current on-disk free list, freed by the next commit that rewrites it. */
  freeListPages: PageNo[];
  readonly unflushed = new Map<number, Buffer>();
  /** The data file's length, kept here so that stats need no fstat. */
  fileBytes: number;
  readonly flushStats: FlushStats = { flushes: 0, pagesFlushed: 0, writeRuns: 0, lastWriteRuns: 0, lastPages: 0 };
  #metaSlot: number;
  /**
   * The txn of the older of the two metas. The journal must keep every record after it: if the
   * newest meta is ever found damaged, opening falls back to the older one and replays from there.
   * So a page freed after it may be the base of a delta that replay needs (journal/format.ts): it
   * must not be reused, and so overwritten, until this passes the txn that freed it.
   */
  olderMetaTxn: number;
  #flushing: Promise<void> | undefined;
  /** The flush in progress: pages it need not write (#markFreedUpTo). */
  readonly #freedUpTo = new Set<number>();
  /** Bumped by every flush; a background flush that finds it changed after an await stops there. */
  #generation = 0;
  #closed = false;

  private constructor(dir: DirectoryBackend, file: FileBackend, opts: PagerOptions, state: DbState, metaSlot: number, olderMetaTxn: number) {
    this.olderMetaTxn = olderMetaTxn;
    this.dir = dir;
    this.file = file;
    this.cache = new PageCache(opts.cacheBytes);
    this.freeList = new FreeList(opts.allocation);
    this.state = state;
    this.flushedState = state;
    this.#metaSlot = metaSlot;
    this.freeListPages = [];
    this.fileBytes = file.length();
  }

  /** Opens the data file in `dir`, creating it if absent. */
  static open(dir: DirectoryBackend, opts: PagerOptions): Pager {
    if (!dir.exists(DATA_FILE)) Pager.#create(dir);
    const file = dir.open(DATA_FILE, { create: false });
    try {
      const header = Buffer.alloc(PAGE_SIZE);
      file.read(0, header);
      checkFileHeader(header, DATA_FILE);
      let best: { state: DbState; slot: number } | undefined;
      let older = 0;
      const problems: string[] = [];
      for (let slot = 0; slot < 2; slot++) {
        const buf = Buffer.alloc(PAGE_SIZE);
        file.read(pageOffsetBytes(META_PAGES[slot] as number), buf);
        const meta = decodeMeta(buf, META_PAGES[slot] as PageNo, DATA_FILE);
        if (meta instanceof CorruptionError) problems.push(meta.message);
        else if (best === undefined || meta.txnId > best.state.txnId) {
          if (best !== undefined) older = best.state.txnId;
          best = { state: meta, slot };
        } else older = meta.txnId;
      }
      if (best === undefined) throw new CorruptionError(`neither meta page is valid: ${problems.join('; ')}`, { file: DATA_FILE });
      // The free list is not read here: until the journal is replayed, the data file may hold
      // pages of an interrupted flush over pages the meta's free list used (see loadFreeList).
      return new Pager(dir, file, opts, best.state, best.slot, older);
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /**
   * Creates the data file under a temporary name and renames it into place once complete, so a
   * crash during creation leaves either no data file (created afresh next time) or a whole one.
   */
  static #create(dir: DirectoryBackend): void {
    const state: DbState = { txnId: txnId(0), journalTxnId: txnId(0), pageCount: FIRST_DATA_PAGE, freeRoot: pageNo(0), roots: Buffer.alloc(ROOTS_SIZE) };
    const tmp = `${DATA_FILE}.creating`;
    const file = dir.open(tmp, { create: true });
    try {
      file.setLength(0);
      file.write(0, encodeFileHeader());
      // Both slots hold txn 0 so that the first flush may overwrite either.
      file.write(pageOffsetBytes(META_PAGES[0] as number), encodeMeta(META_PAGES[0] as PageNo, state));
      file.write(pageOffsetBytes(META_PAGES[1] as number), encodeMeta(META_PAGES[1] as PageNo, state));
      file.sync();
    } finally {
      file.close();
    }
    dir.rename(tmp, DATA_FILE);
    dir.syncDirectory();
  }

  /**
   * Reads the committed state's free list. Call once, after journal replay: a flush interrupted by
   * a crash may have overwritten pages that only the meta's older state used (its free-list pages
   * among them); the replayed images, which take precedence over the data file, cover every one.
   */
  loadFreeList(): void {
    const { runs, pages } = decodeFreeList(this.state.freeRoot, this.state.pageCount, (no) => this.readPage(no));
    for (const [start, len] of runs.runs()) this.freeList.addFree(start, len);
    this.freeListPages = pages;
  }

  /** Replaces the committed state after recovery replayed journal records on top of the data file. */
  installRecovered(state: DbState, pages: Map<number, Buffer>): void {
    for (const [no, buf] of pages) {
      this.unflushed.set(no, buf);
      this.cache.delete(no);
    }
    this.state = state;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The newest committed image of page `no`. Shared: never modify it. */
  readPage(no: PageNo): Buffer {
    const u = this.unflushed.get(no);
    if (u !== undefined) return u;
    const c = this.cache.get(no);
    if (c !== undefined) return c;
    const buf = this.readPageFromDisk(no);
    this.cache.set(no, buf);
    return buf;
  }

  /** Reads and verifies page `no` from the data file, bypassing every in-memory copy. */
  readPageFromDisk(no: PageNo): Buffer {
    if (this.#closed) throw new BirchError('DB_CLOSED', 'the database is closed');
    return readVerifiedPage(this.file, no);
  }

  beginTxn(id: TxnId): PageTxn {
    return new PageTxn(this, id);
  }

  /** Makes a committed transaction's pages the newest images; called after its journal record is durable. */
  install(state: DbState, dirty: Map<number, Buffer>, freed: PageNo[], freeListPages: PageNo[]): void {
    for (const [no, buf] of dirty) {
      this.unflushed.set(no, buf);
      this.cache.delete(no);
    }
    this.freeList.addPending(state.txnId, freed);
    this.freeListPages = freeListPages;
    this.state = state;
  }

  get unflushedBytes(): number {
    return this.unflushed.size * PAGE_SIZE;
  }

  get flushing(): boolean {
    return this.#flushing !== undefined;
  }

  /**
   * Brings the data file up to the newest committed state: the newest image of every changed page,
   * sorted by page number, each contiguous stretch in one write; a data-file sync; then a meta in
   * the other slot and a second sync. The caller must have made the journal durable first (the
   * write-ahead rule). Commits may go on meanwhile; their pages wait for the next flush.
   */
  async flushAsync(oldestReader: number = this.state.txnId): Promise<TxnId> {
    while (this.#flushing !== undefined) await this.#flushing;
    const state = this.state;
    if (state.txnId === this.flushedState.txnId) return state.txnId;
    const generation = ++this.#generation;
    const superseded = (): boolean => this.#closed || this.#generation !== generation;
    this.#markFreedUpTo(Math.min(state.txnId, oldestReader));
    const images = this.#writeImages();
    const run = (async () => {
      await this.#syncDataFile();
      if (superseded()) return;
      this.#writeMeta(state);
      await this.#syncDataFile();
      if (superseded()) return;
      this.#finishFlush(state, images);
    })();
    this.#flushing = run;
    try {
      await run;
    } finally {
      this.#flushing = undefined;
    }
    return state.txnId;
  }

  /**
   * The same as flushAsync, blocking: used at open (after recovery) and at close. It supersedes a
   * background flush in flight, which then writes no meta of its own.
   */
  flushSync(oldestReader: number = this.state.txnId): TxnId {
    this.#generation++;
    const state = this.state;
    if (state.txnId === this.flushedState.txnId) return state.txnId;
    this.#markFreedUpTo(Math.min(state.txnId, oldestReader));
    const images = this.#writeImages();
    this.#syncDataFileSync();
    this.#writeMeta(state);
    this.#syncDataFileSync();
    this.#finishFlush(state, images);
    return state.txnId;
  }

  /**
   * Makes both meta slots record the flushed state, so that no recovery starts before it and every
   * page free in it may be overwritten (see olderMetaTxn). Used at open: the free list read from
   * the data file does not say which of its pages were freed after the older meta.
   */
  settleMetas(): void {
    if (this.olderMetaTxn === this.flushedState.txnId) return;
    this.#writeMeta(this.flushedState);
    this.#syncDataFileSync();
  }

  /**
   * Pages freed by txns up to `upTo` (the flushed state, or the oldest reader if older): pending
   * still, so that the metas can move past them before reuse (journal/format.ts), but no reader
   * can reach them and no recovery reads them from the data file (one that needs the image
   * rebuilds it from the record that wrote it). A flush need not write them. Random writes make
   * many: skipping them more than halved the pages flushed (measured, concurrent benchmark).
   */
  #markFreedUpTo(upTo: number): void {
    this.#freedUpTo.clear();
    for (const [txn, pages] of this.freeList.pending) {
      if (txn > upTo) break;
      for (const p of pages) this.#freedUpTo.add(p);
    }
  }

  #isDead(no: number): boolean {
    return this.#freedUpTo.has(no) || this.freeList.free.has(no);
  }

  /**
   * Writes the images; returns what it took from `unflushed` so that the flush can drop exactly
   * those. Dead pages (#isDead) are not written, except a few between live ones at consecutive
   * numbers (one longer write beats two writes).
   */
  #writeImages(): [number, Buffer][] {
    const images = [...this.unflushed.entries()].sort((a, b) => a[0] - b[0]);
    const dead = (k: number): boolean => this.#isDead((images[k] as [number, Buffer])[0]);
    let runs = 0;
    let pages = 0;
    try {
      this.#growTo(this.state.pageCount);
      const no = (k: number): number => (images[k] as [number, Buffer])[0];
      let k = 0;
      while (k < images.length) {
        if (dead(k)) {
          k++;
          continue;
        }
        // One write from live page k through the last live page reachable over consecutive page
        // numbers and gaps of at most DEAD_GAP_WRITTEN dead pages.
        let end = k + 1;
        for (let m = k + 1; m < images.length && no(m) === no(m - 1) + 1; m++) {
          if (!dead(m)) end = m + 1;
          else if (m - end + 1 > DEAD_GAP_WRITTEN) break;
        }
        this.file.writev(pageOffsetBytes(no(k)), images.slice(k, end).map((e) => e[1]));
        runs++;
        pages += end - k;
        k = end;
      }
      this.flushStats.flushes++;
      this.flushStats.pagesFlushed += pages;
      this.flushStats.writeRuns += runs;
      this.flushStats.lastWriteRuns = runs;
      this.flushStats.lastPages = pages;
    } catch (err) {
      throw new FatalIoError(`writing ${DATA_FILE} failed`, err);
    }
    return images;
  }

  #growTo(pages: number): void {
    const need = pageOffsetBytes(pages);
    const have = this.fileBytes;
    if (need <= have) return;
    const step = Math.min(GROW_MAX_BYTES, Math.max(GROW_MIN_BYTES, Math.floor(have * GROW_FRACTION)));
    const target = Math.max(need, Math.ceil((have + step) / GROW_MIN_BYTES) * GROW_MIN_BYTES);
    this.file.setLength(Math.min(target, Math.max(need, have + step)));
    this.fileBytes = this.file.length();
  }

  async #syncDataFile(): Promise<void> {
    try {
      await this.file.syncAsync();
    } catch (err) {
      if (this.#closed) return;
      throw new FatalIoError(`syncing ${DATA_FILE} failed`, err);
    }
  }

  #syncDataFileSync(): void {
    try {
      this.file.sync();
    } catch (err) {
      throw new FatalIoError(`syncing ${DATA_FILE} failed`, err);
    }
  }

  #writeMeta(state: DbState): void {
    const slot = 1 - this.#metaSlot;
    const flushed: DbState = { ...state, journalTxnId: state.txnId };
    try {
      this.file.write(pageOffsetBytes(META_PAGES[slot] as number), encodeMeta(META_PAGES[slot] as PageNo, flushed));
    } catch (err) {
      throw new FatalIoError(`writing the meta page of ${DATA_FILE} failed`, err);
    }
    // The slot written last now holds `state`; the other keeps the meta that was newest until now.
    this.olderMetaTxn = this.flushedState.txnId;
    this.#metaSlot = slot;
  }

  #finishFlush(state: DbState, images: [number, Buffer][]): void {
    for (const [no, buf] of images) {
      // A later commit may have installed a newer image of the same page meanwhile: keep that one.
      if (this.unflushed.get(no) === buf) {
        this.unflushed.delete(no);
        if (!this.#isDead(no)) this.cache.set(no, buf);
      }
    }
    this.flushedState = { ...state, journalTxnId: state.txnId };
    this.#freedUpTo.clear();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.file.close();
  }
}

/**
 * The page-level half of one write transaction. Pages it allocates are its own ("dirty") and are
 * modified in place; every other page is committed and is copied to a new number before a change.
 * Nothing here touches shared state until `Pager.install`, except taking pages out of the free
 * list, which `rollback` undoes.
 */
export class PageTxn {
  readonly id: TxnId;
  readonly #pager: Pager;
  readonly dirty = new Map<number, Buffer>();
  /**
   * For a dirty page copied from a committed one: that page and its committed image (the journal
   * stores the dirty page as its differences from it). Pages allocated blank have no entry.
   */
  readonly bases = new Map<number, { no: number; img: Buffer }>();
  /** Committed pages this txn freed: pending until no snapshot older than this txn remains. */
  readonly freed: PageNo[] = [];
  /** Pages this txn allocated and freed again: reusable at once, since nothing else saw them. */
  readonly #local: PageNo[] = [];
  readonly #taken: [number, number][] = [];
  readonly #startPageCount: number;
  pageCount: number;
  newFreeListPages: PageNo[] = [];

  constructor(pager: Pager, id: TxnId) {
    this.#pager = pager;
    this.id = id;
    this.pageCount = pager.state.pageCount;
    this.#startPageCount = this.pageCount;
  }

  page(no: PageNo): Buffer {
    return this.dirty.get(no) ?? this.#pager.readPage(no);
  }

  isDirty(no: PageNo): boolean {
    return this.dirty.has(no);
  }

  allocate(kind: PageKind): { no: PageNo; buf: Buffer } {
    const local = this.#local.pop();
    const no = local ?? this.#takeRun(1);
    const buf = newPageBuffer();
    initPage(buf, no, kind);
    this.dirty.set(no, buf);
    this.bases.delete(no);
    return { no, buf };
  }

  /** `n` contiguous new pages (for overflow values); returns the first. */
  allocateRun(n: number, kind: PageKind): PageNo {
    const first = n === 1 && this.#local.length > 0 ? (this.#local.pop() as PageNo) : this.#takeRun(n);
    for (let i = 0; i < n; i++) {
      const buf = newPageBuffer();
      initPage(buf, pageNo(first + i), kind);
      this.dirty.set(first + i, buf);
      this.bases.delete(first + i);
    }
    return first;
  }

  #takeRun(n: number): PageNo {
    const p = this.#pager.freeList.take(n, this.pageCount);
    if (p !== undefined) {
      this.#taken.push([p, n]);
      return p;
    }
    const first = this.pageCount;
    if (first + n > 0xffff_ffff) throw new BirchError('FATAL_IO', 'the data file reached its 2^32-page limit');
    this.pageCount += n;
    return pageNo(first);
  }

  /** A writable image of page `no`: itself if dirty, else a copy at a new page number. */
  writable(no: PageNo): { no: PageNo; buf: Buffer } {
    const d = this.dirty.get(no);
    if (d !== undefined) return { no, buf: d };
    const src = this.#pager.readPage(no);
    const local = this.#local.pop();
    const fresh = local ?? this.#takeRun(1);
    const buf = newPageBuffer();
    src.copy(buf);
    writeU32(buf, PAGE_NO_OFFSET, fresh);
    this.dirty.set(fresh, buf);
    this.bases.set(fresh, { no, img: src });
    this.freed.push(no);
    return { no: fresh, buf };
  }

  free(no: PageNo): void {
    if (this.dirty.delete(no)) {
      this.bases.delete(no);
      this.#local.push(no);
    }
    else this.freed.push(no);
  }

  /**
   * Writes the free-space bitmap for commit (freelist.ts): a copy of each committed bitmap page
   * (so the journal stores only the changed bytes), with this txn's changes applied: pages it took
   * from the free list are in use, pages it freed (the old bitmap pages among them) and pages it
   * allocated and freed again are not. Returns the chain's first page.
   */
  writeFreeList(): PageNo {
    const old = this.#pager.freeListPages;
    const chain: { no: PageNo; buf: Buffer }[] = old.map((no) => this.writable(no));
    // Copying or adding a bitmap page may grow the file past what the chain covers.
    while (chain.length < bitmapPagesFor(this.pageCount)) {
      const page = this.allocate(PageKind.FreeList);
      initBitmapPage(page.buf, page.no, chain.length);
      chain.push(page);
    }
    for (let k = 0; k < chain.length; k++) setBitmapNext((chain[k] as { buf: Buffer }).buf, k + 1 < chain.length ? (chain[k + 1] as { no: PageNo }).no : 0);
    const bufs = chain.map((c) => c.buf);
    // Taken first: a page taken and then freed again within this txn ends up free.
    for (const [start, n] of this.#taken) markPages(bufs, start, n, false);
    for (const p of this.freed) markPages(bufs, p, 1, true);
    for (const p of this.#local) markPages(bufs, p, 1, true);
    this.newFreeListPages = chain.map((c) => c.no);
    return (chain[0] as { no: PageNo }).no;
  }

  /** Seals every dirty page; returns them sorted by page number, as the journal wants them. */
  sealAll(): Map<number, Buffer> {
    const sorted = new Map([...this.dirty.entries()].sort((a, b) => a[0] - b[0]));
    for (const buf of sorted.values()) sealPage(buf);
    return sorted;
  }

  /** Returns local pages to the free list directly (nothing outside this txn ever saw them). */
  releaseLocal(): void {
    for (const p of this.#local) this.#pager.freeList.addFree(p, 1);
    this.#local.length = 0;
  }

  /** Undoes this txn's effect on the free list (abort, or a failed commit). */
  rollback(): void {
    for (const [start, n] of this.#taken) this.#pager.freeList.addFree(start, n);
    this.#taken.length = 0;
    this.#local.length = 0;
    this.pageCount = this.#startPageCount;
    this.dirty.clear();
    this.bases.clear();
  }
}
