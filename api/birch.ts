// birchdb's public API: reads on the caller's thread, every write through a journal writer thread
// that merges the batches of all concurrent callers into one record (group commit), and
// checkpoints on a thread of their own.
//
// The write path, in order:
//   1. submit: the batch is validated and copied (encoded in the journal's layout) at once;
//   2. admission (in order; later if backpressure holds it): its conditions and tree drop are
//      decided against every batch admitted before it, it gets the next sequence number, and its
//      operations go into the active buffer generation, invisible to readers for now;
//   3. once per event-loop turn, every batch admitted in it goes to the writer in one message;
//   4. the writer reports the last batch of each synced record: readers see everything up to it
//      from then on, and those batches' promises resolve. So after `await db.put(k, v)`,
//      `db.get(k)` returns v.
// The trees are brought up to date by checkpoints: when the active generation passes
// checkpointBytes it is frozen at a batch boundary, and once the writer has synced that batch the
// checkpointer merges every batch up to it into the trees; when the new trees are published the
// frozen generation is dropped.
//
// Page reuse across threads: this thread publishes, in shared memory, the oldest checkpoint whose
// trees its readers may still read; the checkpointer reuses no page such a tree reaches.
import { resolve as resolvePath } from 'node:path';
import { BirchError, deniedByRuntime, readEnv } from '../platform/errors.js';
import { NodeDirectory, type DirectoryBackend, type HeldLock } from '../pager/backend.js';
import { checksumImplementation, checksumReady } from '../pager/checksum.js';
import { FAULT_COUNTERS_BYTES } from '../pager/faults.js';
import { decodeState, type DbState } from '../pager/meta-format.js';
import { PageReader } from '../pager/reader.js';
import { SharedPageCache } from '../pager/shared-cache.js';
import { DATA_FILE } from '../pager/data-file.js';
import { OP_DEL, OP_DROP_TREE, OP_PUT, opBytes, writeOp } from '../journal/format.js';
import type { JournalStats, RecordLoc } from '../journal/journal.js';
import { allTreeShapes } from '../btree/shape.js';
import { checkDatabase, type CheckReport } from '../btree/verify.js';
import { ENTRY_OVERHEAD_BYTES, Generation, applyOps } from '../db/buffer.js';
import { backupOptionsOf, backupPages, backupSnapshot, type BackupOptions, type BackupResult } from './backup.js';
import { exportDatabase, type ExportOptions, type ExportResult } from './export.js';
import { importExport, type ImportOptions, type ImportResult } from './import.js';
import type { BatchBytes, CheckpointStats } from '../db/checkpoint.js';
import { recover } from '../db/recovery.js';
import { ReaderSlots } from '../db/reader-slots.js';
import { Checkpointed, View, ViewHold } from '../db/view.js';
import { checkOptionNames, toTreeName, treeOption, type Bytes } from './input.js';
import { LiveRange, ReadKeys, Snapshot, toRangeBounds, treeOf, type Pin, type RangeOptions } from './reads.js';
import { LatencyHistogram } from './latency.js';
import { ReaderHandles, type ReaderHandle } from './reader-handles.js';
import { currentRuntime } from './runtime.js';
import { resolveOptions, type BirchOptions, type ResolvedOptions } from './options.js';
import { fromWireError, type FaultInit, type FromCheckpointer, type FromWriter, type ToCheckpointer } from './protocol.js';
import { startCheckpointer, startWriter, type Peer, type WriterPeer } from './threads.js';
import { BatchArena, TurnParts } from './batch-arena.js';
import type { BirchMemory, BirchStats, CompactResult } from './stats.js';
import { Tree } from './tree.js';
import { checkpointTrigger } from './checkpoint-trigger.js';
import { describeKey, encodeBatch, encodeOne, type EncodedBatch, type BatchOp, type BatchOptions, type InputCond } from './batch-input.js';

export type { BatchOp, BatchOptions } from './batch-input.js';
export type { BirchImplementation, BirchMemory, BirchStats, CompactResult } from './stats.js';
export { Tree } from './tree.js';

/** Fewer free pages than this never start an automatic compaction (the same floor close() uses). */
const AUTO_COMPACT_MIN_FREE_PAGES = 64;

/** A batch submitted and not yet admitted. */
interface Pending {
  /** Its operations, and the tree it drops (a dropTree() call: its one operation). */
  count: number;
  drop: string | undefined;
  conds: InputCond[];
  /** The operations in the journal's layout (the writer writes these bytes as they are): `len` bytes at `off` of the arena chunk `buf`. */
  buf: Buffer;
  off: number;
  len: number;
  t0: number;
  /** Whether it waited for memoryLimit (counted once). */
  limited?: true;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * A batch admitted and not yet acknowledged; or one that needs no journal record, whose outcome
 * waits for the batches admitted before it: refused at admission (`refused`), or with nothing to
 * write (`empty`: a batch of no operations, a check of conditions only). Such a batch settles in
 * commit order, so that the caller who reads after it sees the state it was decided against.
 */
interface Inflight {
  seq: number;
  bytes: number;
  t0: number;
  duringCheckpoint: boolean;
  refused: BirchError | undefined;
  empty: boolean;
  resolve(): void;
  reject(err: Error): void;
}

/** While a checkpoint runs, a turn's hand-off waits up to this long as the buffer nears its hard limit. */
const MAX_SOFT_DELAY_MS = 20;
/** The buffer's hard limit, in checkpointBytes: past it, batches wait for the running checkpoint. */
const HARD_LIMIT_FACTOR = 2;
/** Journal segments held past this many checkpointBytes start a checkpoint (tiny commits fill the journal, not the buffer). */
const JOURNAL_LIMIT_FACTOR = 4;

type Status = 'open' | 'closing' | 'closed';


export class Birch {
  readonly path: string;
  readonly #opts: ResolvedOptions;
  readonly #lock: HeldLock;
  /** This thread's reads of the data file, through the page cache every thread shares. */
  readonly #reader: PageReader;
  /** The checkpointer's reader slot in the cache: given back if that thread dies. */
  readonly #checkpointerSlot: number;
  /** What reader threads and the checkpointer read: the published checkpoint, every thread's oldest. */
  readonly #slots: ReaderSlots;
  readonly #readerThreads: ReaderHandles | undefined;
  /** @internal What this thread's last zero-copy read (getView) holds until its next read. */
  readonly hold = new ViewHold();
  readonly #keys = new ReadKeys();
  #writer!: WriterPeer;
  #checkpointer!: Peer<ToCheckpointer>;
  #status: Status = 'open';
  /** A failure that refuses every later write: a failed write or sync, a dead thread, a bug. */
  #fatal: BirchError | undefined;
  /** Whether some caller was told of #fatal (a rejected write); if none was, close() tells. */
  #fatalReported = false;

  // ---- state readers see
  #base: Checkpointed;
  /** Buffer generations, newest first: the active one, and the frozen one while a checkpoint runs. */
  #gens: Generation[];
  /** The last acknowledged batch, and the last admitted one. */
  #visible: number;
  #admitted: number;
  #live: View;
  readonly #pins = new Set<Pin>();
  /** The oldest seq a reader reads at: buffer versions older than the newest at or below it go. */
  #pruneFloor: number;

  // ---- the write path
  readonly #waiting: Pending[] = [];
  #waitingBytes = 0;
  #limitWaits = 0;
  /** What snapshots hold (#heldBySnapshots), kept until the pins or the generations change. */
  #heldBytes: number | undefined;
  readonly #inflight: Inflight[] = [];
  #inflightHead = 0;
  #unackedBytes = 0;
  /** Where batches are encoded: what the write buffer keeps and the writer writes (api/batch-arena.ts). */
  readonly #arena = new BatchArena();
  /** Batches admitted this turn, not yet handed to the writer. */
  #turn: TurnParts | undefined;
  #flushScheduled = false;
  #busy = false;
  /** The journal records recovery replayed, until the first checkpoint takes them (later batches go as #sent). */
  #records: RecordLoc[] = [];
  /** Batches handed to the writer and not yet to a checkpoint, in order: their bytes in the arena. */
  readonly #sent: BatchBytes[] = [];
  /** The checkpoint in flight: the last batch it covers, and whether it was asked for yet. */
  #ckpt: { upToSeq: number; requested: boolean; done: Promise<void>; finish: () => void } | undefined;
  /** The active generation's bytes that start a checkpoint: checkpointBytes, or half of it after a checkpoint that appended (checkpointTrigger). */
  #checkpointAt: number;
  #idleWaiters: (() => void)[] = [];
  #onWriterClosed: ((err?: BirchError) => void) | undefined;
  #onCheckpointerMsg: ((msg: FromCheckpointer) => void) | undefined;
  /** A thread that died: nothing will answer it, so close() asks nothing of it. */
  readonly #dead = { writer: false, checkpointer: false };

  // ---- counters
  #batches = 0;
  #commits = 0;
  #slowedTurns = 0;
  #blockedBatches = 0;
  readonly #latency = new LatencyHistogram();
  readonly #latencyDuringCheckpoint = new LatencyHistogram();
  #journal: JournalStats | undefined;
  #journalBytesHeld = 0;
  #ckptStats: CheckpointStats | undefined;
  /** db.compact() steps asked of the checkpointer, answered in order ('compacted'). */
  readonly #compactWaiters: { resolve: () => void; reject: (e: BirchError) => void }[] = [];
  #autoCompactions = 0;
  #lastAutoCompact: CompactResult | undefined;
  #lastCheckpointMs = 0;
  readonly #recovery: BirchStats['recovery'];

  private constructor(path: string, opts: ResolvedOptions, lock: HeldLock, reader: PageReader, checkpointerSlot: number, slots: ReaderSlots, readerThreads: ReaderHandles | undefined, recovered: ReturnType<typeof recover>, gen: Generation) {
    this.path = path;
    this.#opts = opts;
    this.#lock = lock;
    this.#reader = reader;
    this.#checkpointerSlot = checkpointerSlot;
    this.#slots = slots;
    this.#readerThreads = readerThreads;
    this.#base = new Checkpointed(recovered.state, reader);
    this.#gens = [gen];
    this.#visible = recovered.lastSeq;
    this.#admitted = recovered.lastSeq;
    this.#pruneFloor = recovered.lastSeq;
    this.#records = recovered.records;
    this.#checkpointAt = opts.checkpointBytes;
    this.#live = new View(this.#visible, this.#gens, this.#base);
    this.#recovery = { ms: recovered.ms, batches: recovered.replayedBatches, ops: recovered.replayedOps, journalStops: recovered.journalStops };
    this.#publishFloor();
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
    if (typeof dir !== 'string' || dir === '') throw new BirchError('BAD_OPTION', 'open() takes a directory path');
    const opts = resolveOptions(options);
    // Pages and records are checksummed from the first read: use the fastest implementation.
    await checksumReady();
    const backend: DirectoryBackend = opts.backend ?? new NodeDirectory(dir, opts.lock === undefined ? {} : { lock: opts.lock });
    // The directory lock is taken here, on the opening thread, and held for the other threads.
    const lock = backend.lock();
    let reader: PageReader | undefined;
    let checkpointerSlot = -1;
    const started: Peer<unknown>[] = [];
    try {
      const gen = new Generation();
      let recovered: ReturnType<typeof recover>;
      try {
        recovered = recover(backend, gen);
      } catch (err) {
        // Nothing was acknowledged through this handle: not FATAL_IO, opening again may work.
        if (err instanceof BirchError) throw err;
        throw new BirchError('IO', `opening ${backend.path} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      // One page cache for every thread that reads the data file; each thread reads through a
      // slot of its own (its epoch: pager/shared-cache.ts).
      const cache = SharedPageCache.create(opts.cacheSize, { verifyHits: readEnv('BIRCH_VERIFY') === '1' });
      cache.useSlot(cache.reserveSlot());
      checkpointerSlot = cache.reserveSlot();
      reader = new PageReader(backend.open(DATA_FILE, { create: false, readOnly: true }), cache);
      const slots = ReaderSlots.create(recovered.state);
      // Reader threads open the data file by path: not on a backend that lives in this thread's memory.
      const readerThreads = opts.backend === undefined ? new ReaderHandles(resolvePath(dir), cache, slots) : undefined;
      const faults: FaultInit | undefined = opts.faults === undefined ? undefined : { plan: opts.faults, counters: opts.faults.counters ?? new SharedArrayBuffer(FAULT_COUNTERS_BYTES) };
      // The handle's message handlers are bound once it exists; until then nothing is sent.
      let db: Birch | undefined;
      const early: (() => void)[] = [];
      const deliver = (fn: (d: Birch) => void): void => {
        if (db !== undefined) fn(db);
        else early.push(() => fn(db as Birch));
      };
      const { peer: checkpointer, stats: checkpointerStats } = await startCheckpointer(
        { dir, cache: reader.cache.init, cacheSlot: checkpointerSlot, allocation: opts.allocation, floor: slots.sab, heapLimitMb: opts.threadHeapLimits.checkpointerMb, ...(faults === undefined ? {} : { faults }) },
        opts.backend,
        { message: (m) => deliver((d) => d.#fromCheckpointer(m)), died: (e) => deliver((d) => d.#threadDied('checkpointer', e)) },
      );
      started.push(checkpointer);
      const writer = await startWriter(
        {
          dir, segmentBytes: opts.journalSegmentSize, sync: opts.sync, maxRecordBytes: opts.maxRecordBytes,
          segments: recovered.segments, releasedSeq: recovered.state.seq, heapLimitMb: opts.threadHeapLimits.writerMb, ...(faults === undefined ? {} : { faults }),
        },
        opts.backend,
        { message: (m) => deliver((d) => d.#fromWriter(m)), died: (e) => deliver((d) => d.#threadDied('writer', e)) },
      );
      started.push(writer);
      db = new Birch(dir, opts, lock, reader, checkpointerSlot, slots, readerThreads, recovered, gen);
      db.#writer = writer;
      db.#checkpointer = checkpointer;
      db.#ckptStats = checkpointerStats;
      for (const f of early) f();
      // A journal replayed past checkpointBytes is checkpointed now.
      db.#maybeCheckpoint();
      return db;
    } catch (err) {
      try {
        for (const p of started) await p.terminate();
        reader?.close();
      } finally {
        lock.release();
      }
      throw err;
    }
  }

  // ---- reads -----------------------------------------------------------------------------------

  /**
   * @internal Throws DB_CLOSED once close() is called: closing checkpoints, releases every page no
   * tree reaches and may move pages to give the file's tail back, so no reader may be left behind.
   */
  assertReadable(): void {
    if (this.#status !== 'open') throw new BirchError('DB_CLOSED', `database ${this.path} is ${this.#status}`);
  }

  /** The value of `key` as of the last acknowledged batch (a copy). Never waits for the writer. */
  get(key: Bytes, opts?: { tree?: string }): Buffer | undefined {
    this.assertReadable();
    this.hold.release();
    return this.#live.get(treeOption(opts, 'get()'), this.#keys.key(key));
  }

  /** The values of `keys`, in order (undefined where absent), all as of one batch. */
  getMany(keys: readonly Bytes[], opts?: { tree?: string }): (Buffer | undefined)[] {
    this.assertReadable();
    this.hold.release();
    if (!Array.isArray(keys)) throw new BirchError('BAD_OPTION', 'getMany() takes an array of keys');
    const tree = treeOption(opts, 'getMany()');
    const view = this.#live;
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
    this.assertReadable();
    this.hold.release();
    return this.#live.getView(treeOption(opts, 'getView()'), this.#keys.key(key), this.hold);
  }

  /** Iterates one snapshot, taken at the first step and released at the end or when the loop breaks. */
  range(opts: RangeOptions = {}): IterableIterator<[Buffer, Buffer]> {
    const bounds = toRangeBounds(opts);
    const tree = treeOf(opts.tree);
    return new LiveRange(() => {
      const snap = this.snapshot();
      return { snap, it: snap.rangeOf(tree, bounds) };
    });
  }

  snapshot(): Snapshot {
    this.assertReadable();
    const pin: Pin = { seq: this.#visible, checkpointId: this.#base.state.checkpointId, since: Date.now(), gens: this.#gens };
    this.#pins.add(pin);
    this.#pinsChanged();
    return new Snapshot(this, this.#live, pin, this.#keys);
  }

  /** @internal */
  unpin(pin: Pin): void {
    if (this.#pins.delete(pin)) this.#pinsChanged();
  }

  #pinsChanged(): void {
    this.#heldBytes = undefined;
    this.#pruneFloor = this.#visible;
    for (const p of this.#pins) this.#pruneFloor = Math.min(this.#pruneFloor, p.seq);
    this.#publishFloor();
  }

  /** Reads the trees of checkpoint `state` from now on; reader threads too (published before the floor moves). */
  #adopt(state: DbState): void {
    this.#base = new Checkpointed(state, this.#reader);
    this.#slots.publish(state);
  }

  #publishFloor(): void {
    let floor = this.#base.state.checkpointId as number;
    for (const p of this.#pins) floor = Math.min(floor, p.checkpointId);
    this.#slots.setOwnerFloor(floor);
  }

  tree(name: string): Tree {
    return new Tree(this, toTreeName(name));
  }

  trees(): string[] {
    this.assertReadable();
    return this.#live.trees();
  }

  // ---- writes ----------------------------------------------------------------------------------

  #submit(make: () => EncodedBatch): Promise<void> {
    try {
      if (this.#status !== 'open') throw new BirchError('DB_CLOSED', `database ${this.path} is ${this.#status}`);
      if (this.#fatal !== undefined) {
        this.#fatalReported = true;
        throw this.#fatal;
      }
      const batch = make();
      return new Promise<void>((resolve, reject) => {
        const p: Pending = { count: batch.count, drop: batch.drop, conds: batch.conds, buf: batch.buf, off: batch.off, len: batch.len, t0: performance.now(), resolve, reject };
        this.#setBusy(true);
        if (this.#waiting.length > 0 || this.#blocked(p)) {
          this.#waiting.push(p);
          this.#waitingBytes += p.len;
        } else this.#admit(p);
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  put(key: Bytes, value: Bytes, opts?: { tree?: string }): Promise<void> {
    return this.#submit(() => encodeOne(OP_PUT, key, value, treeOption(opts, 'put()'), this.#arena));
  }

  del(key: Bytes, opts?: { tree?: string }): Promise<void> {
    return this.#submit(() => encodeOne(OP_DEL, key, undefined, treeOption(opts, 'del()'), this.#arena));
  }

  /** Applies every operation or none, after the caller's earlier batches. */
  batch(ops: BatchOp[], opts?: BatchOptions): Promise<void> {
    return this.#submit(() => encodeBatch(ops, opts, this.#arena));
  }

  /** Drops a named tree and every entry in it; rejects with TREE_NOT_FOUND if it does not exist. */
  dropTree(name: string): Promise<void> {
    return this.#submit(() => {
      const tree = toTreeName(name);
      const treeBytes = Buffer.from(tree, 'utf8');
      const len = opBytes(treeBytes.length, 0, 0);
      const off = this.#arena.take(len);
      writeOp(this.#arena.buf, off, OP_DROP_TREE, treeBytes, undefined, undefined);
      return { count: 1, drop: tree, conds: [], buf: this.#arena.buf, off, len };
    });
  }

  /** Whether batch `p` must wait: too many bytes in flight, or the buffer at its hard limit. */
  #blocked(p: Pending): boolean {
    if (this.#unackedBytes > 0 && this.#unackedBytes + p.len > this.#opts.maxQueuedBytes) return true;
    if (this.#ckpt !== undefined && (this.#gens[0] as Generation).bytes >= HARD_LIMIT_FACTOR * this.#opts.checkpointBytes) {
      this.#blockedBatches++;
      return true;
    }
    return this.#overWriteLimit(p);
  }

  /**
   * memoryLimit: whether batch `p` would take the write path past its share, now or when its
   * generation is frozen and the checkpointer copies it (the charge then counts it twice). Then it
   * waits for a checkpoint (one starts now if none runs), which gives back the frozen generation
   * and its copy. What a checkpoint cannot give back does not hold writes: a batch that would not
   * fit even into an empty buffer beside what snapshots hold goes in at once, without forcing a
   * checkpoint, so writes never stall behind a snapshot (they take more of the share than it
   * allows, and the ledger shows it).
   */
  #overWriteLimit(p: Pending): boolean {
    const limit = this.#opts.writeMemoryBytes;
    if (limit === undefined) return false;
    const m = this.#writeMemory();
    const n = p.len + ENTRY_OVERHEAD_BYTES * p.count;
    const active = (this.#gens[0] as Generation).bytes;
    if (m.buffer + m.copy + m.held + n <= limit && 2 * (active + n) + m.held <= limit) return false;
    if (2 * n + m.held > limit) return false;
    if (this.#ckpt === undefined && !this.#maybeCheckpoint(true)) return false;
    if (p.limited === undefined) {
      p.limited = true;
      this.#limitWaits++;
    }
    return true;
  }

  /** The write path's memory: the buffer's generations, the checkpointer's copy, what snapshots hold. */
  #writeMemory(): { buffer: number; copy: number; held: number } {
    const active = this.#gens[0] as Generation;
    const frozen = this.#gens[1];
    const copy = this.#ckpt !== undefined && frozen !== undefined ? frozen.bytes : 0;
    this.#heldBytes ??= this.#pins.size === 0 ? 0 : this.#heldBySnapshots().heldBytes;
    return { buffer: active.bytes + (frozen?.bytes ?? 0), copy, held: this.#heldBytes };
  }

  /** Admits waiting batches while nothing holds them back. */
  #pump(): void {
    while (this.#waiting.length > 0 && this.#fatal === undefined) {
      const p = this.#waiting[0] as Pending;
      if (this.#blocked(p)) break;
      this.#waiting.shift();
      this.#waitingBytes -= p.len;
      this.#admit(p);
    }
  }

  /** Decides the batch against every batch admitted before it and, if it holds, applies it. */
  #admit(p: Pending): void {
    const refused = this.#decide(p);
    if (refused !== undefined || p.count === 0) {
      // Nothing to journal: no sequence number; the outcome waits for the batches before it.
      if (this.#visible === this.#admitted) {
        if (refused !== undefined) p.reject(refused);
        else p.resolve();
        this.#checkIdle();
      } else {
        this.#inflight.push({ seq: this.#admitted, bytes: 0, t0: p.t0, duringCheckpoint: false, refused, empty: refused === undefined, resolve: p.resolve, reject: p.reject });
      }
      return;
    }
    const seq = ++this.#admitted;
    applyOps(this.#gens[0] as Generation, p.buf, p.off, p.count, seq, this.#pruneFloor);
    this.#inflight.push({ seq, bytes: p.len, t0: p.t0, duringCheckpoint: this.#ckpt !== undefined, refused: undefined, empty: false, resolve: p.resolve, reject: p.reject });
    this.#unackedBytes += p.len;
    (this.#turn ??= new TurnParts()).add(p.buf, p.off, p.len, p.count, seq);
    this.#scheduleFlush();
  }

  /** Why the batch may not be applied after every batch admitted before it, if it may not. */
  #decide(p: Pending): BirchError | undefined {
    if (p.conds.length === 0 && p.drop === undefined) return undefined;
    const latest = new View(this.#admitted, this.#gens, this.#base);
    // A read that meets damage (a CorruptionError) refuses this batch with it: nothing is written,
    // and a batch held back by backpressure, decided later from a message handler, still settles.
    try {
      for (const c of p.conds) {
        const cur = latest.hasTree(c.tree) ? latest.get(c.tree, c.key) : undefined;
        if (c.value === undefined ? cur !== undefined : cur === undefined || !cur.equals(c.value)) {
          const where = c.tree === '' ? 'the default tree' : `tree "${c.tree}"`;
          const held = cur === undefined ? 'is absent' : 'holds another value';
          return new BirchError('CONDITION_FAILED', `key ${describeKey(c.key)} in ${where} ${held}, not the value its ifMatch names${c.value === undefined ? ' (absent)' : ''}; nothing of the batch was written`);
        }
      }
      if (p.drop !== undefined && !latest.hasTree(p.drop)) return new BirchError('TREE_NOT_FOUND', `there is no tree named "${p.drop}" to drop`);
    } catch (err) {
      return err instanceof BirchError ? err : new BirchError('INTERNAL', `deciding a batch failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    return undefined;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // Soft limit: while a checkpoint runs and the buffer grows toward its hard limit, each turn's
    // hand-off waits a little longer, so writers slow down before they would have to stop.
    const bytes = (this.#gens[0] as Generation).bytes;
    const soft = this.#opts.checkpointBytes;
    if (this.#ckpt !== undefined && bytes > soft) {
      this.#slowedTurns++;
      const delay = Math.min(MAX_SOFT_DELAY_MS, (MAX_SOFT_DELAY_MS * (bytes - soft)) / ((HARD_LIMIT_FACTOR - 1) * soft));
      setTimeout(() => this.#flush(), delay);
    } else setImmediate(() => this.#flush());
  }

  /** The turn's hand-off: every batch admitted this turn goes to the writer, and a checkpoint may start. */
  #flush(): void {
    this.#flushScheduled = false;
    if (!this.#maybeCheckpoint()) this.#sendTurn(false);
  }

  /**
   * Hands every batch admitted and not yet sent to the writer, as views of the arena (no copy);
   * `freeze`:
   * a checkpoint covers them, so the writer ends a record after them (with no batches to send, a
   * boundary alone). After a failed checkpoint, batches admitted before it still go to the (sound)
   * journal.
   */
  #sendTurn(freeze: boolean): void {
    const turn = this.#turn;
    this.#turn = undefined;
    if (turn === undefined) {
      if (freeze) this.#writer.post({ kind: 'boundary' });
      return;
    }
    const parts = turn.parts;
    let ops = 0;
    for (const b of parts) {
      this.#sent.push(b);
      ops += b.ops;
    }
    const first = parts[0] as BatchBytes;
    const last = parts[parts.length - 1] as BatchBytes;
    this.#writer.post({ kind: 'batches', parts: parts.map((b) => b.bytes), ops, firstSeq: first.firstSeq, lastSeq: last.lastSeq, freeze });
  }

  /**
   * Starts a checkpoint if none runs and the buffer (or the journal) calls for one, or `force`:
   * freezes the active generation at the last admitted batch, and hands the writer every batch
   * not yet sent with the boundary after them (so that no record holds batches on both sides of
   * it). Returns whether it froze.
   */
  #maybeCheckpoint(force = false): boolean {
    if (this.#ckpt !== undefined || this.#fatal !== undefined) return false;
    const active = this.#gens[0] as Generation;
    if (active.ops === 0) return false;
    const journalFull = this.#journalBytesHeld > JOURNAL_LIMIT_FACTOR * this.#opts.checkpointBytes;
    if (!force && active.bytes < this.#checkpointAt && !journalFull) return false;
    active.frozen = true;
    this.#gens = [new Generation(), active];
    this.#heldBytes = undefined;
    this.#live = new View(this.#visible, this.#gens, this.#base);
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    this.#ckpt = { upToSeq: this.#admitted, requested: false, done, finish };
    this.#sendTurn(true);
    this.#requestCheckpoint();
    this.#updateRefs();
    return true;
  }

  /** Asks the checkpointer once every batch the checkpoint covers is synced. */
  #requestCheckpoint(): void {
    const c = this.#ckpt;
    if (c === undefined || c.requested || this.#visible < c.upToSeq) return;
    let n = 0;
    while (n < this.#records.length && (this.#records[n] as RecordLoc).lastSeq <= c.upToSeq) n++;
    const records = this.#records.splice(0, n);
    let k = 0;
    while (k < this.#sent.length && (this.#sent[k] as BatchBytes).lastSeq <= c.upToSeq) k++;
    const batches = this.#sent.splice(0, k);
    c.requested = true;
    this.#checkpointer.post({ kind: 'checkpoint', upToSeq: c.upToSeq, records, batches });
  }

  #fromWriter(msg: FromWriter): void {
    switch (msg.kind) {
      case 'synced':
        this.#commits += msg.records;
        this.#journal = msg.journal;
        this.#journalBytesHeld = msg.journalBytesHeld;
        this.#acknowledge(msg.lastSeq);
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

  /** Every batch up to `seq` is durable: readers see it, and its callers' promises resolve. */
  #acknowledge(seq: number): void {
    this.#visible = seq;
    this.#live = new View(seq, this.#gens, this.#base);
    this.#pinsChanged();
    const now = performance.now();
    while (this.#inflightHead < this.#inflight.length) {
      const b = this.#inflight[this.#inflightHead] as Inflight;
      if (b.seq > seq) break;
      this.#inflightHead++;
      if (b.refused !== undefined) {
        b.reject(b.refused);
        continue;
      }
      if (b.empty) {
        b.resolve();
        continue;
      }
      this.#unackedBytes -= b.bytes;
      this.#batches++;
      const ms = now - b.t0;
      this.#latency.record(ms);
      if (b.duringCheckpoint || this.#ckpt !== undefined) this.#latencyDuringCheckpoint.record(ms);
      b.resolve();
    }
    if (this.#inflightHead > 1024 && this.#inflightHead * 2 > this.#inflight.length) {
      this.#inflight.splice(0, this.#inflightHead);
      this.#inflightHead = 0;
    }
    this.#requestCheckpoint();
    this.#pump();
    this.#checkIdle();
  }

  #fromCheckpointer(msg: FromCheckpointer): void {
    this.#onCheckpointerMsg?.(msg);
    switch (msg.kind) {
      case 'checkpointed': {
        this.#checkpointAt = checkpointTrigger(this.#opts.checkpointBytes, this.#gens[1], msg.pages);
        // The shared cache needs nothing here: the checkpointer dropped the old image of every page
        // number it reused before it built the new page, and installed the pages readers will want.
        this.#adopt(decodeState(msg.state));
        this.#gens = this.#gens.slice(0, 1);
        this.#heldBytes = undefined;
        this.#live = new View(this.#visible, this.#gens, this.#base);
        this.#publishFloor();
        this.#ckptStats = msg.stats;
        this.#lastCheckpointMs = msg.ms;
        this.#writer.post({ kind: 'release', upToSeq: msg.releasedSeq });
        const c = this.#ckpt;
        this.#ckpt = undefined;
        this.#updateRefs();
        c?.finish();
        this.#maybeAutoCompact(msg.stats);
        this.#pump();
        // The buffer may have filled again meanwhile.
        if (this.#status === 'open') this.#maybeCheckpoint();
        this.#checkIdle();
        break;
      }
      case 'compacted': {
        // Not a checkpoint of the buffer: the same batches in moved (or trimmed) trees. A
        // checkpoint in flight keeps its frozen generation; its own result comes after this one.
        this.#adopt(decodeState(msg.state));
        this.#live = new View(this.#visible, this.#gens, this.#base);
        this.#publishFloor();
        this.#writer.post({ kind: 'release', upToSeq: msg.releasedSeq });
        this.#ckptStats = msg.stats;
        this.#compactWaiters.shift()?.resolve();
        this.#updateRefs();
        break;
      }
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
    if (this.#fatal === undefined) this.#fatal = err;
    const e = this.#fatal;
    if (this.#waiting.length > 0) this.#fatalReported = true;
    for (const p of this.#waiting) p.reject(e);
    this.#waiting.length = 0;
    this.#waitingBytes = 0;
    const compactions = this.#compactWaiters.splice(0);
    if (compactions.length > 0) this.#fatalReported = true;
    for (const w of compactions) w.reject(e);
    this.#updateRefs();
    if (journalFailed) {
      for (let i = this.#inflightHead; i < this.#inflight.length; i++) {
        const b = this.#inflight[i] as Inflight;
        if (b.refused === undefined) this.#fatalReported = true;
        b.reject(b.refused ?? e);
      }
      this.#inflight.length = 0;
      this.#inflightHead = 0;
      this.#turn = undefined;
      this.#unackedBytes = 0;
    }
    this.#ckpt?.finish();
    this.#ckpt = undefined;
    // No checkpoint runs after a failure: the bytes kept for one would only pin arena chunks.
    this.#sent.length = 0;
    this.#records = [];
    this.#checkIdle();
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

  #setBusy(busy: boolean): void {
    if (busy === this.#busy) return;
    this.#busy = busy;
    this.#updateRefs();
  }

  /**
   * Keeps the process alive while work is in flight (writes, a checkpoint, closing), not while the
   * database merely stays open.
   */
  #updateRefs(): void {
    const closing = this.#status === 'closing';
    if (this.#busy || closing) this.#writer.ref();
    else this.#writer.unref();
    if (this.#busy || closing || this.#ckpt !== undefined || this.#compactWaiters.length > 0) this.#checkpointer.ref();
    else this.#checkpointer.unref();
  }

  get #idle(): boolean {
    return this.#inflightHead >= this.#inflight.length && this.#waiting.length === 0 && this.#turn === undefined;
  }

  #checkIdle(): void {
    if (!this.#idle) return;
    this.#setBusy(false);
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  #whenIdle(): Promise<void> {
    if (this.#idle) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  // ---- tools -----------------------------------------------------------------------------------

  /**
   * Counters and sizes, cheap to take. With `{ trees: true }` also every tree's shape (`trees`),
   * which reads every page of every tree: a tool's call, not a monitor's.
   */
  stats(opts: { trees?: boolean } = {}): BirchStats {
    this.assertReadable();
    if (typeof opts !== 'object' || opts === null) throw new BirchError('BAD_OPTION', 'the options of stats() must be an object');
    checkOptionNames(opts, ['trees'], 'stats()');
    let oldest: Pin | undefined;
    for (const p of this.#pins) if (oldest === undefined || p.seq < oldest.seq) oldest = p;
    const active = this.#gens[0] as Generation;
    const frozen = this.#gens[1];
    const j = this.#journal ?? { records: 0, ops: 0, rawBytes: 0, storedBytes: 0, bytesWritten: 0, syncs: 0, segments: 0, segmentsCreated: 0, segmentsRecycled: 0, storedRecords: 0 };
    const cs = this.#ckptStats;
    const occupancy = this.#reader.cache.occupancy();
    return {
      seq: this.#visible,
      checkpointId: this.#base.state.checkpointId,
      writer: {
        batches: this.#batches,
        commits: this.#commits,
        batchesPerCommit: this.#commits === 0 ? 0 : this.#batches / this.#commits,
        queuedBytes: this.#unackedBytes,
        waitingBatches: this.#waiting.length,
        slowedTurns: this.#slowedTurns,
        blockedBatches: this.#blockedBatches,
      },
      buffer: { bytes: active.bytes + (frozen?.bytes ?? 0), ops: active.ops + (frozen?.ops ?? 0), frozenBytes: frozen?.bytes ?? 0, generations: this.#gens.length },
      journal: { ...j, bytesHeld: this.#journalBytesHeld, compressionRatio: j.storedBytes === 0 ? 0 : j.rawBytes / j.storedBytes },
      checkpoints: {
        count: cs?.checkpoints ?? 0,
        inFlight: this.#ckpt !== undefined,
        lastMs: this.#lastCheckpointMs,
        avgMs: cs === undefined || cs.checkpoints === 0 ? 0 : cs.totalMs / cs.checkpoints,
        pagesWritten: cs?.pagesWritten ?? 0,
        writeRuns: cs?.writeRuns ?? 0,
        opsMerged: cs?.opsMerged ?? 0,
        nextAtBytes: this.#checkpointAt,
      },
      latency: {
        p50Ms: this.#latency.percentile(0.5),
        p99Ms: this.#latency.percentile(0.99),
        duringCheckpointP50Ms: this.#latencyDuringCheckpoint.percentile(0.5),
        duringCheckpointP99Ms: this.#latencyDuringCheckpoint.percentile(0.99),
        duringCheckpointBatches: this.#latencyDuringCheckpoint.count,
      },
      recovery: this.#recovery,
      dataFile: { bytes: cs?.dataFileBytes ?? 0, pageCount: this.#base.state.pageCount, freePages: cs?.freePages ?? 0, pendingPages: cs?.pendingPages ?? 0 },
      cache: {
        hits: this.#reader.hits,
        misses: this.#reader.misses,
        bytes: occupancy.bytes,
        capacityBytes: occupancy.capacityBytes,
        evictions: occupancy.evictions,
      },
      snapshots: { live: this.#pins.size, oldestSeq: oldest?.seq ?? null, oldestAgeMs: oldest === undefined ? null : Date.now() - oldest.since, ...this.#heldBySnapshots() },
      readers: this.#slots.readers(),
      autoCompact: { runs: this.#autoCompactions, last: this.#lastAutoCompact ?? null },
      trees: opts.trees === true ? allTreeShapes((no) => this.#reader.copyPage(no).page, this.#base.roots) : [],
      failed: this.#fatal?.message ?? null,
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

  #memoryLedger(occupancy: { bytes: number; capacityBytes: number }): BirchMemory {
    const m = this.#writeMemory();
    return {
      limit: this.#opts.memoryLimit ?? null,
      cacheBytes: occupancy.bytes,
      cacheCapacityBytes: occupancy.capacityBytes,
      bufferBytes: m.buffer,
      checkpointCopyBytes: m.copy,
      snapshotBytes: m.held,
      waitingBytes: this.#waitingBytes,
      writeLimit: this.#opts.writeMemoryBytes ?? null,
      limitWaits: this.#limitWaits,
      threadHeapLimitsMb: { ...this.#opts.threadHeapLimits },
    };
  }

  /** Generations only snapshots keep (not in the live chain), and their bytes. */
  #heldBySnapshots(): { heldGenerations: number; heldBytes: number } {
    const held = new Set<Generation>();
    for (const p of this.#pins) for (const g of p.gens ?? []) if (!this.#gens.includes(g)) held.add(g);
    let heldBytes = 0;
    for (const g of held) heldBytes += g.bytes;
    return { heldGenerations: held.size, heldBytes };
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
    const runs = this.#reader.verifiedRuns(this.#base.state.pageCount);
    return checkDatabase({ state: this.#base.state, verifiedRead: (no) => runs.read(no) }, this.#base.roots);
  }

  /** Runs a checkpoint now (if anything is buffered) and resolves once its trees are published. */
  async checkpoint(): Promise<void> {
    if (this.#status !== 'open') throw new BirchError('DB_CLOSED', `database ${this.path} is ${this.#status}`);
    if (this.#fatal === undefined) await this.#checkpointAll();
    if (this.#fatal !== undefined) {
      this.#fatalReported = true;
      throw this.#fatal;
    }
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
    return this.#compact();
  }

  /** Moves and trims (db.compact() without its checkpoint first; automatic compaction). */
  async #compact(): Promise<CompactResult> {
    const before = this.#ckptStats?.dataFileBytes ?? 0;
    const t0 = performance.now();
    for (const step of ['move', 'trim'] as const) {
      if (this.#status !== 'open') throw new BirchError('DB_CLOSED', `database ${this.path} is ${this.#status}`);
      if (this.#fatal !== undefined) throw this.#fatal;
      await new Promise<void>((resolve, reject) => {
        this.#compactWaiters.push({ resolve, reject });
        this.#updateRefs();
        this.#checkpointer.post({ kind: 'compact', step });
      });
    }
    const s = this.#ckptStats as CheckpointStats;
    return { bytesBefore: before, bytesAfter: s.dataFileBytes, freePages: s.freePages, pendingPages: s.pendingPages, ms: performance.now() - t0 };
  }

  /** With autoCompact, a compaction after a checkpoint that left enough of the file free. */
  #maybeAutoCompact(s: CheckpointStats): void {
    const share = this.#opts.autoCompact;
    if (share === undefined || this.#status !== 'open' || this.#compactWaiters.length > 0) return;
    // Free pages only: pending ones are every checkpoint's own copy-on-write churn, and come back
    // as free pages at the next checkpoint if nothing holds them.
    if (s.freePages <= AUTO_COMPACT_MIN_FREE_PAGES || s.freePages <= share * s.pageCount) return;
    // A failure here is a fatal checkpointer failure, reported to every later call; nothing waits on this promise.
    this.#compact().then(
      (r) => {
        this.#autoCompactions++;
        this.#lastAutoCompact = r;
      },
      () => undefined,
    );
  }

  /** Waits for the running checkpoint, then checkpoints everything admitted. */
  async #checkpointAll(): Promise<void> {
    if (this.#ckpt !== undefined) await this.#ckpt.done;
    if (this.#fatal !== undefined) return;
    this.#maybeCheckpoint(true);
    if (this.#ckpt !== undefined) await this.#ckpt.done;
  }

  get seq(): number {
    return this.#visible;
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
    this.#closing = (async () => {
      let error: BirchError | undefined;
      // No reader thread may be inside a read once the closing checkpoint may reuse any page.
      if (this.#readerThreads !== undefined) await this.#readerThreads.close();
      else this.#slots.close();
      this.#updateRefs();
      await this.#whenIdle();
      const fromCheckpointer = (kind: 'finished' | 'closed'): Promise<BirchError | undefined> =>
        new Promise((resolve) => {
          this.#onCheckpointerMsg = (m) => {
            if (m.kind === kind) resolve(undefined);
            else if (m.kind === 'fatal') resolve(fromWireError(m.error));
          };
        });
      if (this.#fatal === undefined) {
        await this.#checkpointAll();
        if (this.#fatal === undefined) {
          const finished = fromCheckpointer('finished');
          this.#checkpointer.post({ kind: 'finish' });
          error = await finished;
          if (error === undefined) this.#writer.post({ kind: 'release', upToSeq: this.#base.state.seq });
        }
      }
      if (!this.#dead.writer) {
        const writerClosed = new Promise<BirchError | undefined>((resolve) => (this.#onWriterClosed = resolve));
        this.#writer.post({ kind: 'close', removeReleased: this.#fatal === undefined && error === undefined });
        error ??= await writerClosed;
      }
      if (!this.#dead.checkpointer) {
        const checkpointerClosed = fromCheckpointer('closed');
        this.#checkpointer.post({ kind: 'close' });
        await checkpointerClosed;
      }
      this.#status = 'closed';
      this.#pins.clear();
      // A closed handle the caller keeps must not keep the buffer's memory (reads refuse from now on).
      this.#sent.length = 0;
      this.#records = [];
      this.#gens = [new Generation()];
      this.#heldBytes = undefined;
      this.#live = new View(this.#visible, this.#gens, this.#base);
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
      if (error === undefined && this.#fatal !== undefined && !this.#fatalReported) error = this.#fatal;
      if (error !== undefined && !(error === this.#fatal && this.#fatalReported)) throw error;
    })();
    return this.#closing;
  }

  #closing: Promise<void> | undefined;
}

/** Opens (or creates) the database in directory `dir`. */
export function open(dir: string, options?: BirchOptions): Promise<Birch> {
  return Birch.open(dir, options);
}
