// birchdb's public handle: reads on the caller's thread, every write through a journal writer
// thread that merges the batches of all concurrent callers into one record (group commit), and
// checkpoints on a thread of their own. The handle itself is thin; each part has its file:
//   api/open.ts                  opening: the lock, recovery, the shared page cache, the threads;
//   api/read-state.ts            what reads see (the published trees, the buffer, the last
//                                acknowledged batch), and api/reader-pins.ts, what snapshots hold;
//   api/commit-pipeline.ts       a write from submission to its promise settling;
//   api/checkpoint-scheduler.ts  when checkpoints and compactions run, and what they change;
//   api/handle-failure.ts        the failure that ends writes until the database is reopened;
//   api/stats.ts                 what stats() reports; close() is below.
//
// Page reuse across threads: this thread publishes, in shared memory, the oldest checkpoint whose
// trees its readers may still read; the checkpointer reuses no page such a tree reaches.
import { BirchError, deniedByRuntime } from '../platform/errors.js';
import type { HeldLock } from '../pager/backend.js';
import { checksumImplementation } from '../pager/checksum.js';
import type { PageReader } from '../pager/reader.js';
import { OP_DEL, OP_PUT } from '../journal/format.js';
import { allTreeShapes } from '../btree/shape.js';
import { checkDatabase, type CheckReport } from '../btree/verify.js';
import type { ReaderSlots } from '../db/reader-slots.js';
import { ViewHold } from '../db/view.js';
import { backupOptionsOf, backupPages, backupSnapshot, type BackupOptions, type BackupResult } from './backup.js';
import { exportDatabase, type ExportOptions, type ExportResult } from './export.js';
import { importExport, type ImportOptions, type ImportResult } from './import.js';
import { checkOptionNames, toTreeName, treeOption, type Bytes } from './input.js';
import { LiveRange, ReadKeys, Snapshot, toRangeBounds, treeOf, type Pin, type RangeOptions, type SeekableRange } from './reads.js';
import type { ReaderHandles, ReaderHandle } from './reader-handles.js';
import { currentRuntime } from './runtime.js';
import type { BirchOptions, ResolvedOptions } from './options.js';
import { fromWireError, type FromCheckpointer, type FromWriter, type ToCheckpointer } from './protocol.js';
import type { Peer, WriterPeer } from './threads.js';
import type { BirchMemory, BirchStats, CompactResult } from './stats.js';
import { Tree } from './tree.js';
import { encodeBatch, encodeDropTree, encodeOne, type BatchOp, type BatchOptions } from './batch-input.js';
import { openParts, type OpenedParts } from './open.js';
import { ReadState } from './read-state.js';
import { HandleFailure } from './handle-failure.js';
import { CheckpointScheduler } from './checkpoint-scheduler.js';
import { CommitPipeline } from './commit-pipeline.js';

export type { BatchOp, BatchOptions } from './batch-input.js';
export type { BirchImplementation, BirchMemory, BirchStats, CompactResult } from './stats.js';
export { Tree } from './tree.js';

type Status = 'open' | 'closing' | 'closed';

export class Birch {
  readonly path: string;
  readonly #opts: ResolvedOptions;
  readonly #lock: HeldLock;
  /** This thread's reads of the data file, through the page cache every thread shares. */
  readonly #reader: PageReader;
  /** The checkpointer's reader slot in the cache: given back if that thread dies. */
  readonly #checkpointerSlot: number;
  readonly #slots: ReaderSlots;
  readonly #readerThreads: ReaderHandles | undefined;
  /** @internal What this thread's last zero-copy read (getView) holds until its next read. */
  readonly hold = new ViewHold();
  readonly #keys = new ReadKeys();
  readonly #writer: WriterPeer;
  readonly #checkpointer: Peer<ToCheckpointer>;
  readonly #state: ReadState;
  readonly #failure = new HandleFailure();
  readonly #checkpoints: CheckpointScheduler;
  readonly #pipeline: CommitPipeline;
  #status: Status = 'open';
  #closing: Promise<void> | undefined;
  #onWriterClosed: ((err?: BirchError) => void) | undefined;
  #onCheckpointerMsg: ((msg: FromCheckpointer) => void) | undefined;
  /** A thread that died: nothing will answer it, so close() asks nothing of it. */
  readonly #dead = { writer: false, checkpointer: false };
  readonly #recovery: BirchStats['recovery'];

  private constructor(path: string, parts: OpenedParts) {
    this.path = path;
    this.#opts = parts.opts;
    this.#lock = parts.lock;
    this.#reader = parts.reader;
    this.#checkpointerSlot = parts.checkpointerSlot;
    this.#slots = parts.slots;
    this.#readerThreads = parts.readerThreads;
    this.#writer = parts.writer;
    this.#checkpointer = parts.checkpointer;
    const recovered = parts.recovered;
    this.#recovery = { ms: recovered.ms, batches: recovered.replayedBatches, ops: recovered.replayedOps, journalStops: recovered.journalStops };
    this.#state = new ReadState(recovered.state, recovered.lastSeq, parts.gen, parts.reader, parts.slots);
    const shared = { state: this.#state, opts: parts.opts, failure: this.#failure, writer: parts.writer };
    this.#checkpoints = new CheckpointScheduler(
      {
        ...shared,
        checkpointer: parts.checkpointer,
        host: {
          sendTurn: (freeze) => this.#pipeline.sendTurn(freeze),
          resume: () => {
            this.#pipeline.pump();
            this.#pipeline.checkIdle();
          },
          published: () => this.#pipeline.arena.release(),
          refsChanged: () => this.#updateRefs(),
          assertOpen: () => this.#assertOpen(),
          isOpen: () => this.#status === 'open',
        },
      },
      recovered.records,
      parts.checkpointerStats,
    );
    this.#pipeline = new CommitPipeline({ ...shared, checkpoints: this.#checkpoints, hold: this.hold, host: { assertOpen: () => this.#assertOpen(), refsChanged: () => this.#updateRefs() } });
  }

  /** Opens (creating if needed) the database in directory `dir`. */
  static async open(dir: string, options: BirchOptions = {}): Promise<Birch> {
    try {
      return await Birch.#open(dir, options);
    } catch (err) {
      throw deniedByRuntime(err) ?? err;
    }
  }

  static async #open(dir: string, options: BirchOptions): Promise<Birch> {
    // The handle's message handlers are bound once it exists; until then what arrives waits.
    let db: Birch | undefined;
    const early: (() => void)[] = [];
    const deliver = (fn: (d: Birch) => void): void => {
      if (db !== undefined) fn(db);
      else early.push(() => fn(db as Birch));
    };
    const parts = await openParts(dir, options, {
      fromWriter: (m) => deliver((d) => d.#fromWriter(m)),
      fromCheckpointer: (m) => deliver((d) => d.#fromCheckpointer(m)),
      died: (which, e) => deliver((d) => d.#threadDied(which, e)),
    });
    db = new Birch(dir, parts);
    for (const f of early) f();
    // A journal replayed past checkpointBytes is checkpointed now.
    db.#checkpoints.maybeStart();
    return db;
  }

  #assertOpen(): void {
    if (this.#status !== 'open') throw new BirchError('DB_CLOSED', `database ${this.path} is ${this.#status}`);
  }

  // ---- reads -----------------------------------------------------------------------------------

  /**
   * @internal Throws DB_CLOSED once close() is called: closing checkpoints, releases every page no
   * tree reaches and may move pages to give the file's tail back, so no reader may be left behind.
   */
  assertReadable(): void {
    this.#assertOpen();
  }

  /** The value of `key` as of the last acknowledged batch (a copy). Never waits for the writer. */
  get(key: Bytes, opts?: { tree?: string }): Buffer | undefined {
    this.#assertOpen();
    this.hold.release();
    return this.#state.live.get(treeOption(opts, 'get()'), this.#keys.key(key));
  }

  /** The values of `keys`, in order (undefined where absent), all as of one batch. */
  getMany(keys: readonly Bytes[], opts?: { tree?: string }): (Buffer | undefined)[] {
    this.#assertOpen();
    this.hold.release();
    if (!Array.isArray(keys)) throw new BirchError('BAD_OPTION', 'getMany() takes an array of keys');
    const tree = treeOption(opts, 'getMany()');
    const view = this.#state.live;
    const out: (Buffer | undefined)[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = view.get(tree, this.#keys.key(keys[i]));
    return out;
  }

  /**
   * The value of `key` without a copy (like lmdb-js's getBinaryFast): a view of birchdb's own memory
   * (the page cache shared by every thread, or the write buffer), valid until the next read on
   * this thread (any get, getMany, getView or range step of this database or its snapshots). Until
   * then its bytes stay as they are, even if a checkpoint frees the page and reuses its number;
   * after it, they may change to another page's at any moment. Never write to it: it is the
   * database's memory. Values on overflow pages (cells over 2,036 bytes) are copied once into a
   * buffer that the next such read reuses.
   */
  getView(key: Bytes, opts?: { tree?: string }): Buffer | undefined {
    this.#assertOpen();
    this.hold.release();
    return this.#state.live.getView(treeOption(opts, 'getView()'), this.#keys.key(key), this.hold);
  }

  /** Iterates one snapshot, taken at the first step and released at the end or when the loop breaks. */
  range(opts: RangeOptions = {}): SeekableRange {
    const bounds = toRangeBounds(opts);
    const tree = treeOf(opts.tree);
    return new LiveRange(() => {
      const snap = this.snapshot();
      return { snap, it: snap.rangeOf(tree, bounds) };
    });
  }

  snapshot(): Snapshot {
    this.#assertOpen();
    const live = this.#state.live;
    return new Snapshot(this, live, this.#state.pin(), this.#keys);
  }

  /** @internal */
  unpin(pin: Pin): void {
    this.#state.unpin(pin);
    // Arena chunks only this snapshot read may be reused now, even if no write comes.
    this.#pipeline.arena.release();
  }

  tree(name: string): Tree {
    return new Tree(this, toTreeName(name));
  }

  trees(): string[] {
    this.#assertOpen();
    return this.#state.live.trees();
  }

  // ---- writes (api/commit-pipeline.ts) ---------------------------------------------------------

  put(key: Bytes, value: Bytes, opts?: { tree?: string }): Promise<void> {
    const p = this.#pipeline;
    return p.submit(() => encodeOne(OP_PUT, key, value, treeOption(opts, 'put()'), p.arena));
  }

  del(key: Bytes, opts?: { tree?: string }): Promise<void> {
    const p = this.#pipeline;
    return p.submit(() => encodeOne(OP_DEL, key, undefined, treeOption(opts, 'del()'), p.arena));
  }

  /** Applies every operation or none, after the caller's earlier batches. */
  batch(ops: BatchOp[], opts?: BatchOptions): Promise<void> {
    const p = this.#pipeline;
    return p.submit(() => encodeBatch(ops, opts, p.arena));
  }

  /** Drops a named tree and every entry in it; rejects with TREE_NOT_FOUND if it does not exist. */
  dropTree(name: string): Promise<void> {
    const p = this.#pipeline;
    return p.submit(() => encodeDropTree(name, p.arena));
  }

  // ---- the threads' messages and failures --------------------------------------------------------

  #fromWriter(msg: FromWriter): void {
    switch (msg.kind) {
      case 'synced':
        this.#pipeline.synced(msg);
        break;
      case 'fatal':
        this.#fail(fromWireError(msg.error), true);
        break;
      case 'closed':
        this.#onWriterClosed?.(msg.error === undefined ? undefined : fromWireError(msg.error));
        break;
      case 'ready':
      case 'openFailed':
        break;
    }
  }

  #fromCheckpointer(msg: FromCheckpointer): void {
    this.#onCheckpointerMsg?.(msg);
    switch (msg.kind) {
      case 'checkpointed':
        this.#checkpoints.checkpointed(msg);
        break;
      case 'compacted':
        this.#checkpoints.compacted(msg);
        break;
      case 'fatal':
        // The journal is sound: batches handed to the writer become durable and settle as usual.
        this.#fail(fromWireError(msg.error), false);
        break;
      case 'ready':
      case 'finished':
      case 'closed':
        break;
    }
  }

  /**
   * A failure after which the handle refuses writes. Batches not yet admitted reject with it; so do
   * batches handed to the writer if the journal failed (`journalFailed`: they may never become
   * durable). If only a checkpoint failed, those batches are still journaled and settle as usual.
   */
  #fail(err: BirchError, journalFailed: boolean): void {
    const f = this.#failure;
    const e = f.set(err);
    if (this.#pipeline.rejectWaiting(e)) f.reported = true;
    if (this.#checkpoints.rejectCompactions(e)) f.reported = true;
    this.#updateRefs();
    if (journalFailed && this.#pipeline.rejectInflight(e)) f.reported = true;
    this.#checkpoints.stop();
    this.#pipeline.arena.clear();
    this.#pipeline.checkIdle();
  }

  #threadDied(which: 'writer' | 'checkpointer', err: Error): void {
    this.#dead[which] = true;
    // A dead thread reads nothing: its slot must not hold back the reuse of evicted frames.
    if (which === 'checkpointer') this.#reader.cache.releaseSlot(this.#checkpointerSlot);
    const e = new BirchError('INTERNAL', `the ${which} thread failed: ${err.message}; reopen the database`, { cause: err, site: { thread: which } });
    this.#fail(e, which === 'writer');
    if (which === 'writer') this.#onWriterClosed?.(e);
    else this.#onCheckpointerMsg?.({ kind: 'fatal', error: { name: 'BirchError', code: 'INTERNAL', message: e.message, site: e.site } });
  }

  /**
   * Keeps the process alive while work is in flight (writes, a checkpoint, closing), not while the
   * database merely stays open.
   */
  #updateRefs(): void {
    const busy = this.#pipeline.busy;
    const closing = this.#status === 'closing';
    if (busy || closing) this.#writer.ref();
    else this.#writer.unref();
    if (busy || closing || this.#checkpoints.busy) this.#checkpointer.ref();
    else this.#checkpointer.unref();
  }

  // ---- tools -----------------------------------------------------------------------------------

  /**
   * Counters and sizes, cheap to take. With `{ trees: true }` also every tree's shape (`trees`),
   * which reads every page of every tree: a tool's call, not a monitor's.
   */
  stats(opts: { trees?: boolean } = {}): BirchStats {
    this.#assertOpen();
    if (typeof opts !== 'object' || opts === null) throw new BirchError('BAD_OPTION', 'the options of stats() must be an object');
    checkOptionNames(opts, ['trees'], 'stats()');
    const s = this.#state;
    const oldest = s.pins.oldest();
    const active = s.active;
    const frozen = s.frozen;
    const j = this.#pipeline.journal ?? { records: 0, ops: 0, rawBytes: 0, storedBytes: 0, bytesWritten: 0, syncs: 0, segments: 0, segmentsCreated: 0, segmentsRecycled: 0, storedRecords: 0 };
    const cs = this.#checkpoints.stats;
    const occupancy = this.#reader.cache.occupancy();
    return {
      seq: s.visible,
      checkpointId: s.checkpointId,
      writer: this.#pipeline.report(),
      buffer: { bytes: active.bytes + (frozen?.bytes ?? 0), ops: active.ops + (frozen?.ops ?? 0), frozenBytes: frozen?.bytes ?? 0, generations: s.gens.length },
      journal: { ...j, bytesHeld: this.#checkpoints.journalBytesHeld, compressionRatio: j.storedBytes === 0 ? 0 : j.rawBytes / j.storedBytes },
      checkpoints: this.#checkpoints.report(),
      latency: this.#pipeline.latencyReport(),
      recovery: this.#recovery,
      dataFile: { bytes: cs?.dataFileBytes ?? 0, pageCount: s.base.state.pageCount, freePages: cs?.freePages ?? 0, pendingPages: cs?.pendingPages ?? 0 },
      cache: {
        hits: this.#reader.hits,
        misses: this.#reader.misses,
        bytes: occupancy.bytes,
        capacityBytes: occupancy.capacityBytes,
        evictions: occupancy.evictions,
      },
      snapshots: { live: s.pins.size, oldestSeq: oldest?.seq ?? null, oldestAgeMs: oldest === undefined ? null : Date.now() - oldest.since, ...s.pins.held(s.gens) },
      readers: this.#slots.readers(),
      autoCompact: this.#checkpoints.autoCompactReport(),
      trees: opts.trees === true ? allTreeShapes((no) => this.#reader.copyPage(no).page, s.base.roots) : [],
      failed: this.#failure.error?.message ?? null,
      memory: this.#memoryLedger(occupancy),
      implementation: {
        runtime: currentRuntime(),
        lock: this.#lock.kind,
        checksum: checksumImplementation(),
        compression: 'lz4-js',
        handoff: this.#writer.handoff,
        threads: this.#opts.backend === undefined ? 'worker-threads' : 'inline',
      },
    };
  }

  #memoryLedger(occupancy: { bytes: number; capacityBytes: number }): BirchMemory {
    const m = this.#pipeline.writeMemory();
    return {
      limit: this.#opts.memoryLimit ?? null,
      cacheBytes: occupancy.bytes,
      cacheCapacityBytes: occupancy.capacityBytes,
      bufferBytes: m.buffer,
      checkpointCopyBytes: m.copy,
      snapshotBytes: m.held,
      waitingBytes: this.#pipeline.waitingBytes,
      arenaFreeBytes: m.free,
      writeLimit: this.#opts.writeMemoryBytes ?? null,
      limitWaits: this.#pipeline.limitWaits,
      threadHeapLimitsMb: { ...this.#opts.threadHeapLimits },
    };
  }

  /**
   * A verified, compact copy of the current state, in a new directory `dir`, taken while writes go
   * on (api/backup.ts): every tree in fresh, full pages, no journal. Restoring is opening it.
   */
  backup(dir: string, opts?: BackupOptions): Promise<BackupResult> {
    let snap: Snapshot;
    try {
      if (backupOptionsOf(opts).compact === false) {
        if (this.#readerThreads === undefined) throw new BirchError('UNSUPPORTED', 'a page-for-page backup copies the data file by path: not available on a storage backend given as an option');
        return backupPages(this, dir, opts, (d) => open(d));
      }
      snap = this.snapshot();
    } catch (err) {
      return Promise.reject(err);
    }
    return backupSnapshot(snap, dir, opts, (d) => open(d));
  }

  /**
   * Writes the entries of one checkpoint (made first: everything acknowledged so far) as
   * deterministic LZ4 chunks plus a manifest into a new directory `dir`, cut by reader threads in
   * parallel while writes go on. See api/export.ts and FORMAT.md.
   */
  export(dir: string, opts?: ExportOptions): Promise<ExportResult> {
    return exportDatabase(this, dir, opts);
  }

  /** Writes the entries of an export into this database, after checking every chunk (api/import.ts). */
  import(dir: string, opts?: ImportOptions): Promise<ImportResult> {
    return importExport(this, dir, opts);
  }

  /**
   * A handle for one reader thread: pass it to a worker thread of this process (in workerData or a
   * message, with `handle.port` in the transfer list) and call openReader(handle) there. The reader
   * reads the trees of the last checkpoint (see openReader). One handle serves one reader; its slot
   * is given back when that reader closes or its thread ends.
   */
  readerHandle(): ReaderHandle {
    this.assertReadable();
    if (this.#readerThreads === undefined) throw new BirchError('UNSUPPORTED', 'reader threads open the data file by path: not available on a storage backend given as an option');
    return this.#readerThreads.handle();
  }

  /** The verifier, over the trees of the published checkpoint (every page read afresh from disk). */
  check(): CheckReport {
    this.assertReadable();
    const runs = this.#reader.verifiedRuns(this.#state.base.state.pageCount);
    return checkDatabase({ state: this.#state.base.state, verifiedRead: (no) => runs.read(no) }, this.#state.base.roots);
  }

  /** Runs a checkpoint now (if anything is buffered) and resolves once its trees are published. */
  async checkpoint(): Promise<void> {
    this.#assertOpen();
    if (!this.#failure.failed) await this.#checkpoints.all();
    this.#failure.throwIfFailed();
  }

  /**
   * Gives space back while open: checkpoints everything buffered, then moves the trees' pages from
   * the end of the file into free pages below (copy-on-write, a checkpoint like any other), then,
   * once this thread reads the moved trees, releases the pages no snapshot holds and cuts the file.
   * A snapshot taken before keeps the pages it reads: they stay pending (`pendingPages`), and the
   * file keeps what lies past them until a later compact() or close().
   */
  async compact(): Promise<CompactResult> {
    await this.checkpoint();
    return this.#checkpoints.compact();
  }

  get seq(): number {
    return this.#state.visible;
  }

  get closed(): boolean {
    return this.#status === 'closed';
  }

  /**
   * Settles every queued write, checkpoints what the journal holds, makes both metas hold it, gives
   * the journal and the data file's free tail back, stops the threads and releases the directory.
   * After a failure nothing more is written: reopening recovers from the journal.
   */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    if (this.#status === 'closed') return Promise.resolve();
    this.#status = 'closing';
    this.#closing = this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    let error: BirchError | undefined;
    // No reader thread may be inside a read once the closing checkpoint may reuse any page.
    if (this.#readerThreads !== undefined) await this.#readerThreads.close();
    else this.#slots.close();
    this.#updateRefs();
    await this.#pipeline.whenIdle();
    const fromCheckpointer = (kind: 'finished' | 'closed'): Promise<BirchError | undefined> =>
      new Promise((resolve) => {
        this.#onCheckpointerMsg = (m) => {
          if (m.kind === kind) resolve(undefined);
          else if (m.kind === 'fatal') resolve(fromWireError(m.error));
        };
      });
    const f = this.#failure;
    if (!f.failed) {
      await this.#checkpoints.all();
      if (!f.failed) {
        const finished = fromCheckpointer('finished');
        this.#checkpointer.post({ kind: 'finish' });
        error = await finished;
        if (error === undefined) this.#writer.post({ kind: 'release', upToSeq: this.#state.base.state.seq });
      }
    }
    if (!this.#dead.writer) {
      const writerClosed = new Promise<BirchError | undefined>((resolve) => (this.#onWriterClosed = resolve));
      this.#writer.post({ kind: 'close', removeReleased: !f.failed && error === undefined });
      error ??= await writerClosed;
    }
    if (!this.#dead.checkpointer) {
      const checkpointerClosed = fromCheckpointer('closed');
      this.#checkpointer.post({ kind: 'close' });
      await checkpointerClosed;
    }
    this.#status = 'closed';
    // A closed handle the caller keeps must not keep the buffer's memory (reads refuse from now on).
    this.#checkpoints.stop();
    this.#pipeline.arena.clear();
    this.#state.clear();
    this.#readerThreads?.disconnect();
    try {
      this.#reader.close();
      await this.#writer.terminate();
      await this.#checkpointer.terminate();
    } finally {
      // Whatever failed above, the directory is not left locked by a closed handle.
      this.#lock.release();
    }
    // A failure some caller was told of is not reported again; any other one is, here.
    if (error === undefined && f.error !== undefined && !f.reported) error = f.error;
    if (error !== undefined && !(error === f.error && f.reported)) throw error;
  }
}

/** Opens (or creates) the database in directory `dir`. */
export function open(dir: string, options?: BirchOptions): Promise<Birch> {
  return Birch.open(dir, options);
}
