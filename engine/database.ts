// The core database: opens a directory (data file + journal), recovers, and hands out read and
// write transactions. This is the synchronous, in-process API the writer thread drives.
//
// Commit, in order (each step's failure leaves the previous state published and intact):
//   1. fold touched trees into the catalog (WriteTxn.commit);
//   2. rewrite the free list: the old list's pages are freed, every free and pending page recorded;
//   3. seal (checksum) every dirty page;
//   4. one journal record: one vectored write, then fdatasync (with `sync`); failure here is fatal:
//      the handle refuses writes until reopened, and the free list is rolled back;
//   5. publish: the pages become the newest images, the state becomes the committed state, the
//      pages this txn freed wait in the free list until no older snapshot remains;
//   6. past `checkpointBytes` of unflushed pages, start a background data-file flush; past twice
//      that (the background flush cannot keep up), flush synchronously.
import { BirchError, FatalIoError } from '../pager/errors.js';
import { NodeDirectory, type DirectoryBackend } from '../pager/backend.js';
import { DEFAULT_ALLOCATION, type AllocationOptions } from '../pager/freelist.js';
import { pageNo, txnId, type PageNo, type TxnId } from '../pager/ids.js';
import { STATE_SIZE, decodeState, encodeState, type DbState } from '../pager/meta-format.js';
import { Pager, type PageTxn } from '../pager/pager.js';
import { PAGE_SIZE, verifyPage } from '../pager/page-format.js';
import { Journal } from '../journal/journal.js';
import type { ReadPage } from './btree.js';
import { decodeRoots, encodeRoots, type Roots } from './roots-format.js';
import { ReadTxn, WriteTxn, type TxnHost } from './txn.js';
import { checkDatabase, type CheckReport } from './verify.js';
import { collectStats, type DatabaseStats } from './stats.js';

export interface OpenOptions {
  /** fdatasync the journal before a commit returns (default true). Without it a crash may lose recent commits, never consistency. */
  sync?: boolean;
  /** Page cache size in bytes (default 64 MiB). */
  cacheSize?: number;
  /** Size of each preallocated journal segment (default 16 MiB). */
  journalSegmentSize?: number;
  /**
   * Committed-but-unflushed page bytes that start a background data-file flush (default 16 MiB).
   * At twice this, a commit flushes synchronously (backpressure), bounding memory and journal.
   */
  checkpointBytes?: number;
  /** The free-list allocation policy (pager/freelist.ts). */
  allocation?: Partial<AllocationOptions>;
  /** Storage to use instead of real files (tests). */
  backend?: DirectoryBackend;
  /** Hooks for a caller that mirrors commits elsewhere (the writer thread). */
  observer?: CommitObserver;
  /**
   * The caller already holds the directory lock (the async API takes it on the opening thread,
   * because fs-ext's native module must not be loaded by a second thread of the process).
   */
  lockHeld?: boolean;
}

/**
 * What the writer thread needs to keep the main thread's read view current, and to keep the
 * free list from reusing pages that the main thread's snapshots can still read.
 */
export interface CommitObserver {
  /**
   * After a commit is durable and published: its encoded state and its page images, ascending.
   * The images are committed: never modify them.
   */
  onCommit?(txnId: TxnId, state: Buffer, pages: ReadonlyMap<number, Buffer>): void;
  /** After a data-file flush: the data file now holds every page of every txn up to `txnId`. */
  onFlush?(txnId: TxnId): void;
  /** The oldest txn that readers outside this handle may still read. */
  snapshotFloor?(): number;
}

interface ResolvedOptions {
  sync: boolean;
  cacheSize: number;
  journalSegmentSize: number;
  checkpointBytes: number;
  allocation: AllocationOptions;
}

export const DEFAULTS = {
  sync: true,
  cacheSize: 64 * 1024 * 1024,
  journalSegmentSize: 16 * 1024 * 1024,
  checkpointBytes: 16 * 1024 * 1024,
} as const;

/** Unflushed pages past this multiple of checkpointBytes make a commit flush synchronously. */
const BACKPRESSURE_FACTOR = 2;

function resolveOptions(opts: OpenOptions): ResolvedOptions {
  if (typeof opts !== 'object' || opts === null) throw new BirchError('BAD_OPTION', 'options must be an object');
  const num = (name: keyof OpenOptions, v: unknown, def: number, min: number): number => {
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new BirchError('BAD_OPTION', `option ${name} must be a number >= ${min}`);
    return Math.floor(v);
  };
  if (opts.sync !== undefined && typeof opts.sync !== 'boolean') throw new BirchError('BAD_OPTION', 'option sync must be a boolean');
  const allocation = { ...DEFAULT_ALLOCATION, ...(opts.allocation ?? {}) };
  if (allocation.policy !== 'runs-first' && allocation.policy !== 'first-fit') throw new BirchError('BAD_OPTION', `unknown allocation policy ${String(allocation.policy)}`);
  return {
    sync: opts.sync ?? DEFAULTS.sync,
    cacheSize: num('cacheSize', opts.cacheSize, DEFAULTS.cacheSize, 0),
    journalSegmentSize: num('journalSegmentSize', opts.journalSegmentSize, DEFAULTS.journalSegmentSize, 64 * 1024),
    checkpointBytes: num('checkpointBytes', opts.checkpointBytes, DEFAULTS.checkpointBytes, 0),
    allocation,
  };
}

export interface CommitCounters {
  commits: number;
  pagesCommitted: number;
  lastCommitPages: number;
}

export class Database {
  readonly path: string;
  readonly #lock: { release(): void };
  readonly #pager: Pager;
  readonly #journal: Journal;
  readonly #opts: ResolvedOptions;
  readonly #observer: CommitObserver;
  /** txn id -> number of live read transactions pinned there. */
  readonly #snapshots = new Map<number, number>();
  #writer: WriteTxn | undefined;
  #fatal: BirchError | undefined;
  #closed = false;
  #background: Promise<void> | undefined;
  /** Journal bytes written when the newest completed flush started. */
  #journalBytesAtFlush = 0;
  readonly #counters: CommitCounters = { commits: 0, pagesCommitted: 0, lastCommitPages: 0 };
  readonly #host: TxnHost;

  private constructor(dir: DirectoryBackend, lock: { release(): void }, pager: Pager, journal: Journal, opts: ResolvedOptions, observer: CommitObserver) {
    this.#observer = observer;
    this.path = dir.path;
    this.#lock = lock;
    this.#pager = pager;
    this.#journal = journal;
    this.#opts = opts;
    const readPage: ReadPage = (no: PageNo) => this.#pager.readPage(no);
    this.#host = {
      readPage,
      assertOpen: () => this.#assertOpen(),
      releaseSnapshot: (t) => this.#releaseSnapshot(t),
      commitWrite: (w, pt, roots) => this.#commit(w, pt, roots),
      endWrite: (w) => {
        if (this.#writer === w) this.#writer = undefined;
      },
    };
  }

  /**
   * Opens (creating if needed) the database in directory `dir`, replaying the journal: the
   * database opens at the last intact commit.
   */
  static open(dir: string | DirectoryBackend, options: OpenOptions = {}): Database {
    const opts = resolveOptions(options);
    if (typeof dir !== 'string' && (typeof dir !== 'object' || dir === null || typeof dir.open !== 'function')) {
      throw new BirchError('BAD_OPTION', 'open() takes a directory path');
    }
    const backend = options.backend ?? (typeof dir === 'string' ? new NodeDirectory(dir) : dir);
    const lock = options.lockHeld === true ? { release: () => undefined } : backend.lock();
    let pager: Pager | undefined;
    let journal: Journal | undefined;
    try {
      pager = Pager.open(backend, { cacheBytes: opts.cacheSize, allocation: opts.allocation });
      const replayed = new Map<number, Buffer>();
      let last: DbState | undefined;
      const p = pager;
      journal = Journal.open(backend, { segmentBytes: opts.journalSegmentSize, sync: opts.sync }, pager.state.txnId, (rec) => {
        for (const [no, img] of rec.pages) replayed.set(no, img);
        last = decodeState(rec.state, 0);
      }, (no) => p.readPageFromDisk(pageNo(no)));
      if (last !== undefined) pager.installRecovered(last, replayed);
      pager.loadFreeList();
      if (last !== undefined) {
        // Bring the data file up to date now, so every journal segment can be reused and the
        // rejected tail (if any) is never read again.
        pager.flushSync();
      }
      pager.settleMetas();
      journal.release(pager.olderMetaTxn);
      return new Database(backend, lock, pager, journal, opts, options.observer ?? {});
    } catch (err) {
      journal?.close();
      pager?.close();
      lock.release();
      // An I/O failure while opening (creating the file, reading the journal) is reported typed;
      // nothing was acknowledged through this handle, so it is not FATAL_IO: opening again may work.
      if (err instanceof BirchError) throw err;
      throw new BirchError('IO', `opening ${backend.path} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new BirchError('DB_CLOSED', `database ${this.path} is closed`);
  }

  #assertWritable(): void {
    this.#assertOpen();
    if (this.#fatal !== undefined) throw new FatalIoError(`an earlier write failed (${this.#fatal.message})`, this.#fatal);
  }

  get #roots(): Roots {
    return decodeRoots(this.#pager.state.roots);
  }

  /** Pins the newest committed state until `release()`. */
  beginRead(): ReadTxn {
    this.#assertOpen();
    const t = this.#pager.state.txnId;
    this.#snapshots.set(t, (this.#snapshots.get(t) ?? 0) + 1);
    return new ReadTxn(this.#host, t, this.#roots);
  }

  #releaseSnapshot(t: TxnId): void {
    const n = (this.#snapshots.get(t) ?? 0) - 1;
    if (n <= 0) this.#snapshots.delete(t);
    else this.#snapshots.set(t, n);
  }

  /** The oldest txn any live read transaction sees (the newest committed one if none). */
  oldestSnapshot(): TxnId {
    let oldest = this.#pager.state.txnId as number;
    for (const t of this.#snapshots.keys()) oldest = Math.min(oldest, t);
    const floor = this.#observer.snapshotFloor?.();
    if (floor !== undefined) oldest = Math.min(oldest, floor);
    return txnId(oldest);
  }

  beginWrite(): WriteTxn {
    this.#assertWritable();
    if (this.#writer !== undefined) throw new BirchError('WRITE_TXN_ACTIVE', 'a write transaction is already open on this handle');
    // Pages freed after the older meta may be delta bases for a recovery: not reusable yet.
    this.#pager.freeList.release(txnId(Math.min(this.oldestSnapshot(), this.#pager.olderMetaTxn)));
    const pt = this.#pager.beginTxn(txnId(this.#pager.state.txnId + 1));
    const w = new WriteTxn(this.#host, pt, this.#roots);
    this.#writer = w;
    return w;
  }

  #commit(_w: WriteTxn, pt: PageTxn, roots: Roots): TxnId {
    this.#assertWritable();
    const prev = this.#pager.state;
    if (pt.dirty.size === 0 && pt.freed.length === 0) {
      pt.rollback();
      return prev.txnId;
    }
    let state: DbState;
    let stateBuf: Buffer;
    let pages: Map<number, Buffer>;
    try {
      const freeRoot = pt.writeFreeList();
      state = {
        txnId: pt.id,
        journalTxnId: this.#pager.flushedState.txnId,
        pageCount: pt.pageCount,
        freeRoot,
        roots: encodeRoots(roots),
      };
      pages = pt.sealAll();
      stateBuf = Buffer.alloc(STATE_SIZE);
      encodeState(state, stateBuf, 0);
      this.#journal.append(state.txnId, stateBuf, pages, pt.bases);
      this.#pager.install(state, pages, pt.freed, pt.newFreeListPages);
      pt.releaseLocal();
      this.#counters.commits++;
      this.#counters.pagesCommitted += pages.size;
      this.#counters.lastCommitPages = pages.size;
    } catch (err) {
      pt.rollback();
      if (err instanceof FatalIoError) this.#fatal = err;
      throw err;
    }
    // Published: from here on the commit stands, whatever an observer does.
    this.#observer.onCommit?.(state.txnId, stateBuf, pages);
    this.#maybeFlush();
    return state.txnId;
  }

  /**
   * How far the data file is behind: the larger of the unflushed page images held in memory and
   * the journal bytes written since the last completed flush (random writes rewrite the same pages
   * over and over, so the journal can run far ahead while the unflushed set stays small).
   */
  #backlogBytes(): number {
    return Math.max(
      this.#pager.unflushedBytes,
      this.#journal.stats.bytesWritten - this.#journalBytesAtFlush,
      // Freed pages wait for the metas to move past them (beginWrite): without flushes they
      // would never be reused and the file would grow.
      this.#pager.freeList.pendingAfter(this.#pager.olderMetaTxn) * PAGE_SIZE,
    );
  }

  #maybeFlush(): void {
    const unflushed = this.#backlogBytes();
    if (unflushed >= BACKPRESSURE_FACTOR * this.#opts.checkpointBytes) {
      // Backpressure: the background flush is not keeping up (or the caller never yields to the
      // event loop, so it cannot progress). Flush now, so that memory and journal stay bounded.
      // The commit is already durable: a failure here poisons the handle (checkpointSync records
      // it) and fails the next write, but must not report this commit as failed.
      try {
        this.checkpointSync();
      } catch {
        // recorded in #fatal
      }
      return;
    }
    if (this.#background !== undefined || unflushed < this.#opts.checkpointBytes) return;
    // A failure is recorded as fatal by checkpoint() itself; later writes report it.
    this.#background = this.checkpoint()
      .then(() => undefined, () => undefined)
      .finally(() => {
        this.#background = undefined;
      });
  }

  /**
   * Brings the data file up to the newest commit in the background (the data-file syncs run off
   * this thread); commits may continue meanwhile. Resolves with the txn the data file now holds.
   */
  async checkpoint(): Promise<TxnId> {
    this.#assertWritable();
    return this.#poisonOnIoFailure(async () => {
      this.#journal.sync(); // write-ahead: the journal is durable before the data file changes
      const journalBytes = this.#journal.stats.bytesWritten;
      const t = await this.#pager.flushAsync(this.oldestSnapshot());
      if (!this.#closed && this.#pager.flushedState.txnId >= t) {
        this.#journal.release(this.#pager.olderMetaTxn);
        this.#journalBytesAtFlush = Math.max(this.#journalBytesAtFlush, journalBytes);
        this.#observer.onFlush?.(t);
      }
      return t;
    });
  }

  /**
   * Runs an I/O step; a FatalIoError from it poisons the handle (every later write refuses) before
   * it propagates. Works for synchronous and asynchronous steps alike.
   */
  #poisonOnIoFailure<T>(step: () => T): T {
    const poison = (err: unknown): never => {
      if (err instanceof FatalIoError) this.#fatal = err;
      throw err;
    };
    try {
      const r = step();
      return (r instanceof Promise ? r.catch(poison) : r) as T;
    } catch (err) {
      return poison(err);
    }
  }

  /**
   * Makes every commit so far durable without blocking this thread: for a handle opened with
   * `sync: false` by a caller that acknowledges commits itself once this resolves (the writer
   * thread, which builds the next commit while the previous one syncs). A failure is fatal.
   */
  async syncJournal(): Promise<void> {
    this.#assertWritable();
    return this.#poisonOnIoFailure(() => this.#journal.syncAsync());
  }

  /** The same as syncJournal(), blocking: cheaper when there is nothing to do meanwhile. */
  syncJournalNow(): void {
    this.#assertWritable();
    this.#poisonOnIoFailure(() => this.#journal.sync());
  }

  /** The same as checkpoint(), blocking. */
  checkpointSync(): TxnId {
    this.#assertWritable();
    return this.#poisonOnIoFailure(() => {
      this.#journal.sync();
      const journalBytes = this.#journal.stats.bytesWritten;
      const t = this.#pager.flushSync(this.oldestSnapshot());
      this.#journal.release(this.#pager.olderMetaTxn);
      this.#journalBytesAtFlush = journalBytes;
      this.#observer.onFlush?.(t);
      return t;
    });
  }

  /** Runs `fn` in a write transaction: committed if it returns, aborted if it throws. */
  write<T>(fn: (w: WriteTxn) => T): T {
    const w = this.beginWrite();
    try {
      const result = fn(w);
      w.commit();
      return result;
    } catch (err) {
      w.abort();
      throw err;
    }
  }

  /** Runs `fn` on a snapshot, released afterwards. */
  read<T>(fn: (r: ReadTxn) => T): T {
    const r = this.beginRead();
    try {
      return fn(r);
    } finally {
      r.release();
    }
  }

  trees(): string[] {
    return this.read((r) => r.trees());
  }

  get txnId(): TxnId {
    return this.#pager.state.txnId;
  }

  /** The newest committed state, encoded as meta pages and journal records carry it. */
  encodedState(): Buffer {
    const buf = Buffer.alloc(STATE_SIZE);
    encodeState(this.#pager.state, buf, 0);
    return buf;
  }

  check(): CheckReport {
    this.#assertOpen();
    const pager = this.#pager;
    return checkDatabase(
      {
        state: pager.state,
        verifiedRead: (no) => {
          const mem = pager.unflushed.get(no);
          if (mem === undefined) return pager.readPageFromDisk(no);
          verifyPage(mem, no);
          return mem;
        },
        memoryFreePages: pager.freeList.allRuns([]).pages,
      },
      decodeRoots(pager.state.roots),
    );
  }

  /** Counters and sizes; with `trees` (the default) also every tree's shape, which walks all pages. */
  stats(opts: { trees?: boolean } = {}): DatabaseStats {
    this.#assertOpen();
    return collectStats({
      pager: this.#pager,
      journal: this.#journal,
      counters: this.#counters,
      roots: this.#roots,
      snapshots: this.#snapshots,
      fatal: this.#fatal,
    }, opts.trees !== false);
  }

  /** Journal record headers, for tools. */
  journalRecords(): ReturnType<Journal['listRecords']> {
    this.#assertOpen();
    return this.#journal.listRecords();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Aborts an open write transaction, flushes the data file (unless a write failed: then nothing
   * more is written and the journal recovers on reopen), and releases the directory.
   */
  close(): void {
    if (this.#closed) return;
    try {
      this.#writer?.abort();
      if (this.#fatal === undefined) {
        this.#journal.sync();
        this.#pager.flushSync();
        this.#journal.release(this.#pager.olderMetaTxn);
      }
    } finally {
      this.#closed = true;
      this.#journal.close();
      this.#pager.close();
      this.#lock.release();
    }
  }
}
