// birchdb's public API: reads on the caller's thread from committed snapshots, every write through
// one writer thread that merges the batches of all concurrent callers into one transaction.
//
// A write's promise resolves once its transaction is durable (with `sync`) and installed here,
// so `await db.put(k, v)` followed by `db.get(k)` returns `v`.
//
// Page reuse across threads: this thread publishes, in shared memory, the oldest txn its readers
// may still read (the oldest pinned snapshot, or the newest installed commit if none is pinned);
// the writer reuses no page that txn can reach.
import { Worker } from 'node:worker_threads';
import { BirchError } from '../pager/errors.js';
import { decodeState, type DbState } from '../pager/meta-format.js';
import { ReadView } from '../pager/reader.js';
import { NodeDirectory } from '../pager/backend.js';
import type { FaultPlan } from '../pager/faults.js';
import type { PageNo, TxnId } from '../pager/ids.js';
import { DEFAULTS } from './database.js';
import { toKey, toTreeName, toValue, describe, type Bytes } from './input.js';
import { decodeRoots, type Roots } from './roots-format.js';
import { allTreeShapes, type TreeStats } from './stats.js';
import { ReadTxn, type RangeOptions, type TxnHost } from './txn.js';
import { checkDatabase, type CheckReport } from './verify.js';
import { WriteQueue } from './write-queue.js';
import {
  OP_DEL, OP_DROP_TREE, OP_PUT, decodePages, fromWireError, type EncodedCond, type EncodedOp, type FromWriter,
  type ToWriter, type WriterCounters, type WriterInit,
} from './writer-protocol.js';

export interface BirchOptions {
  /** fdatasync each commit before its promises resolve (default true). */
  sync?: boolean;
  /** Page cache per thread, in bytes (default 64 MiB). */
  cacheSize?: number;
  journalSegmentSize?: number;
  checkpointBytes?: number;
  /** Bytes of batches queued for the writer before new writes wait (default 64 MiB). */
  maxQueuedBytes?: number;
  /** A merged transaction takes batches up to this many operations (default 10,000)... */
  maxMergeOps?: number;
  /** ...and this many bytes (default 16 MiB); always at least one batch. */
  maxMergeBytes?: number;
  /** For tests of I/O failure only: make the writer's Nth write or sync fail with EIO. */
  faults?: FaultPlan;
}

export type BatchOp =
  | { type: 'put'; key: Bytes; value: Bytes; tree?: string }
  | { type: 'del'; key: Bytes; tree?: string };

export interface BatchOptions {
  /** Apply the batch only if every listed key holds `value` now (`undefined`: is absent). */
  ifMatch?: { key: Bytes; value: Bytes | undefined; tree?: string }[];
}

export interface BirchStats extends WriterCounters {
  trees: TreeStats[];
  writer: { batches: number; commits: number; batchesPerCommit: number; queuedBytes: number; waitingBatches: number };
  snapshots: { live: number; oldestTxnId: number | null; oldestAgeMs: number | null };
  /** The main thread's view: pages received with commits and not yet flushed, its cache, and what installing commits cost it. */
  readView: { recentPages: number; cacheHits: number; cacheMisses: number; cacheBytes: number; installMs: number; pageBytesReceived: number };
}

const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_MERGE_OPS = 10_000;
const DEFAULT_MAX_MERGE_BYTES = 16 * 1024 * 1024;

function positive(name: string, v: unknown, def: number): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new BirchError('BAD_OPTION', `option ${name} must be a positive number`);
  return Math.floor(v);
}

function treeBytes(tree: unknown): Buffer | undefined {
  return tree === undefined ? undefined : Buffer.from(toTreeName(tree), 'utf8');
}

/** Validates and copies one batch for the wire; throws a typed error for any bad part. */
function encodeOps(ops: unknown, opts: unknown): { ops: EncodedOp[]; conds: EncodedCond[] } {
  if (!Array.isArray(ops)) throw new BirchError('BAD_OPTION', `batch() takes an array of operations, not ${describe(ops)}`);
  const out: EncodedOp[] = ops.map((op: unknown, i) => {
    if (typeof op !== 'object' || op === null) throw new BirchError('BAD_OPTION', `operation ${i} is not an object`);
    const o = op as { type?: unknown; key?: unknown; value?: unknown; tree?: unknown };
    if (o.type === 'put') return { type: OP_PUT, tree: treeBytes(o.tree), key: toKey(o.key), value: toValue(o.value) };
    if (o.type === 'del') return { type: OP_DEL, tree: treeBytes(o.tree), key: toKey(o.key), value: undefined };
    throw new BirchError('BAD_OPTION', `operation ${i} has type ${String(o.type)}; expected 'put' or 'del'`);
  });
  const conds: EncodedCond[] = [];
  if (opts !== undefined) {
    if (typeof opts !== 'object' || opts === null) throw new BirchError('BAD_OPTION', 'batch options must be an object');
    const ifMatch = (opts as { ifMatch?: unknown }).ifMatch;
    if (ifMatch !== undefined) {
      if (!Array.isArray(ifMatch)) throw new BirchError('BAD_OPTION', 'ifMatch must be an array');
      for (const c of ifMatch as unknown[]) {
        if (typeof c !== 'object' || c === null || !('key' in c)) throw new BirchError('BAD_OPTION', 'each ifMatch entry needs a key and a value');
        const e = c as { key: unknown; value?: unknown; tree?: unknown };
        conds.push({ tree: treeBytes(e.tree), key: toKey(e.key), value: e.value === undefined ? undefined : toValue(e.value) });
      }
    }
  }
  // No copy here: WriteQueue.submit encodes the batch into a buffer of its own before it returns,
  // so a caller that reuses its buffers after put() cannot change what is written.
  return { ops: out, conds };
}

/** A pinned, read-only view of one commit. Release it: until then its pages are not reused. */
export class Snapshot {
  readonly #txn: ReadTxn;
  constructor(txn: ReadTxn) {
    this.#txn = txn;
  }
  get txnId(): number {
    return this.#txn.txnId;
  }
  get(key: Bytes, opts: { tree?: string } = {}): Buffer | undefined {
    return this.#txn.hasTreeOrDefault(opts.tree) ? this.#txn.get(key, opts.tree) : undefined;
  }
  *range(opts: RangeOptions & { tree?: string } = {}): Generator<[Buffer, Buffer]> {
    if (!this.#txn.hasTreeOrDefault(opts.tree)) return;
    yield* this.#txn.range(opts, opts.tree);
  }
  trees(): string[] {
    return this.#txn.trees();
  }
  release(): void {
    this.#txn.release();
  }
}

/** The read and write calls of one named tree. */
export class Tree {
  readonly name: string;
  readonly #db: Birch;
  constructor(db: Birch, name: string) {
    this.#db = db;
    this.name = name;
  }
  get(key: Bytes): Buffer | undefined {
    return this.#db.get(key, { tree: this.name });
  }
  range(opts: RangeOptions = {}): Generator<[Buffer, Buffer]> {
    return this.#db.range({ ...opts, tree: this.name });
  }
  put(key: Bytes, value: Bytes): Promise<void> {
    return this.#db.put(key, value, { tree: this.name });
  }
  del(key: Bytes): Promise<void> {
    return this.#db.del(key, { tree: this.name });
  }
  batch(ops: BatchOp[], opts?: BatchOptions): Promise<void> {
    return this.#db.batch(ops.map((o) => ({ tree: this.name, ...o })), opts);
  }
}

type Status = 'open' | 'closing' | 'closed';
type CommittedMsg = Extract<FromWriter, { kind: 'committed' }>;
interface StagedCommit {
  msg: CommittedMsg;
  state: DbState | undefined;
}

export class Birch {
  readonly path: string;
  readonly #worker: Worker;
  readonly #view: ReadView;
  readonly #queue: WriteQueue;
  readonly #floor: BigInt64Array;
  #roots: Roots;
  #status: Status = 'open';
  #fatal: BirchError | undefined;
  #counters: WriterCounters;
  /** txn id -> pins and when the oldest was taken. */
  readonly #pins = new Map<number, { count: number; since: number }>();
  readonly #host: TxnHost;
  /** For reads that pin nothing (get, trees): releasing them has nothing to undo. */
  readonly #unpinnedHost: TxnHost;
  #batches = 0;
  #commits = 0;
  /** Main-thread cost of the commit messages: time installing them, and their page bytes. */
  #installMs = 0;
  #bytesReceived = 0;
  /** Commits written but not yet synced (staged in the view), oldest first. */
  readonly #staged: StagedCommit[] = [];
  #closed: Promise<void> | undefined;
  /** The writer thread is gone (closed, or died): nothing will answer a message any more. */
  #writerExited = false;
  #onClosed: ((err?: BirchError) => void) | undefined;

  readonly #lock: { release(): void };

  private constructor(path: string, worker: Worker, view: ReadView, floor: BigInt64Array, counters: WriterCounters, maxQueuedBytes: number, lock: { release(): void }) {
    this.path = path;
    this.#lock = lock;
    this.#worker = worker;
    this.#view = view;
    this.#floor = floor;
    this.#counters = counters;
    this.#roots = decodeRoots(view.state.roots);
    this.#queue = new WriteQueue(
      (buf) => this.#post({ kind: 'batches', buf }, [buf]),
      maxQueuedBytes,
      // Keep the process alive while writes are in flight, not while the database merely stays open.
      (busy) => (busy ? worker.ref() : worker.unref()),
    );
    worker.unref();
    this.#host = {
      readPage: (no: PageNo) => this.#view.readPage(no),
      assertOpen: () => this.#assertReadable(),
      releaseSnapshot: (t) => this.#unpin(t),
      commitWrite: () => {
        throw new Error('birchdb assertion failed: no write transactions on the main thread');
      },
      endWrite: () => undefined,
    };
    this.#unpinnedHost = { ...this.#host, releaseSnapshot: () => undefined };
    worker.on('message', (msg: FromWriter) => this.#onMessage(msg));
    worker.on('error', (err) => this.#writerDied(err));
    worker.on('exit', (code) => {
      this.#writerExited = true;
      if (this.#status !== 'closed' && this.#onClosed === undefined) this.#writerDied(new Error(`writer thread exited (${code})`));
      this.#onClosed?.();
    });
    this.#publishFloor();
  }

  /** Opens (creating if needed) the database in directory `dir`. */
  static async open(dir: string, options: BirchOptions = {}): Promise<Birch> {
    if (typeof dir !== 'string' || dir === '') throw new BirchError('BAD_OPTION', 'open() takes a directory path');
    if (typeof options !== 'object' || options === null) throw new BirchError('BAD_OPTION', 'options must be an object');
    if (options.sync !== undefined && typeof options.sync !== 'boolean') throw new BirchError('BAD_OPTION', 'option sync must be a boolean');
    const cacheSize = positive('cacheSize', options.cacheSize, DEFAULTS.cacheSize);
    const maxQueuedBytes = positive('maxQueuedBytes', options.maxQueuedBytes, DEFAULT_MAX_QUEUED_BYTES);
    const floorSab = new SharedArrayBuffer(8);
    const init: WriterInit = {
      dir,
      options: {
        sync: options.sync ?? true,
        cacheSize,
        ...(options.journalSegmentSize !== undefined ? { journalSegmentSize: positive('journalSegmentSize', options.journalSegmentSize, 0) } : {}),
        ...(options.checkpointBytes !== undefined ? { checkpointBytes: positive('checkpointBytes', options.checkpointBytes, 0) } : {}),
        maxMergeOps: positive('maxMergeOps', options.maxMergeOps, DEFAULT_MAX_MERGE_OPS),
        maxMergeBytes: positive('maxMergeBytes', options.maxMergeBytes, DEFAULT_MAX_MERGE_BYTES),
      },
      floor: floorSab,
      ...(options.faults !== undefined ? { faults: options.faults } : {}),
    };
    // The directory lock is taken here, on the opening thread, and held for the writer thread:
    // fs-ext's native module crashes the process when a second thread loads it.
    const lock = new NodeDirectory(dir).lock();
    let worker: Worker | undefined;
    try {
      worker = new Worker(new URL('./writer-worker.js', import.meta.url), { workerData: init });
      const w = worker;
      const first = await new Promise<FromWriter>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
        // A writer that exits without a word (process.exit in the worker) must not leave open() pending.
        w.once('exit', (code) => reject(new BirchError('IO', `the writer thread exited (code ${code}) before it opened ${dir}`)));
      });
      if (first.kind === 'openFailed') throw fromWireError(first.error);
      if (first.kind !== 'ready') throw new Error(`birchdb assertion failed: writer said ${first.kind} first`);
      const state = decodeState(Buffer.from(first.state), 0);
      let view: ReadView;
      try {
        view = new ReadView(dir, cacheSize, state);
      } catch (err) {
        throw new BirchError('IO', `cannot open ${dir} for reading`, { cause: err });
      }
      return new Birch(dir, worker, view, new BigInt64Array(floorSab), first.counters, maxQueuedBytes, lock);
    } catch (err) {
      await worker?.terminate();
      lock.release();
      throw err;
    }
  }

  // ---- reads -----------------------------------------------------------------------------------

  #assertReadable(): void {
    if (this.#status === 'closed') throw new BirchError('DB_CLOSED', `database ${this.path} is closed`);
  }

  #readTxn(pinned: boolean): ReadTxn {
    this.#assertReadable();
    const t = this.#view.state.txnId;
    if (pinned) this.#pin(t);
    return new ReadTxn(pinned ? this.#host : this.#unpinnedHost, t, this.#roots);
  }

  /** The value of `key` in the newest installed commit. Never waits for the writer. */
  get(key: Bytes, opts: { tree?: string } = {}): Buffer | undefined {
    const r = this.#readTxn(false);
    return r.hasTreeOrDefault(opts.tree) ? r.get(key, opts.tree) : undefined;
  }

  /** Iterates one snapshot, pinned until the iteration ends or is broken out of. */
  *range(opts: RangeOptions & { tree?: string } = {}): Generator<[Buffer, Buffer]> {
    const r = this.#readTxn(true);
    try {
      if (r.hasTreeOrDefault(opts.tree)) yield* r.range(opts, opts.tree);
    } finally {
      r.release();
    }
  }

  snapshot(): Snapshot {
    return new Snapshot(this.#readTxn(true));
  }

  tree(name: string): Tree {
    return new Tree(this, toTreeName(name));
  }

  trees(): string[] {
    return this.#readTxn(false).trees();
  }

  #pin(t: number): void {
    const p = this.#pins.get(t);
    if (p === undefined) this.#pins.set(t, { count: 1, since: Date.now() });
    else p.count++;
    this.#publishFloor();
  }

  #unpin(t: TxnId): void {
    const p = this.#pins.get(t);
    if (p === undefined) return;
    if (--p.count === 0) this.#pins.delete(t);
    this.#publishFloor();
  }

  #publishFloor(): void {
    let floor = this.#view.state.txnId as number;
    for (const t of this.#pins.keys()) floor = Math.min(floor, t);
    Atomics.store(this.#floor, 0, BigInt(floor));
  }

  // ---- writes ----------------------------------------------------------------------------------

  #submit(ops: unknown, opts?: unknown): Promise<void> {
    try {
      if (this.#status !== 'open') throw new BirchError('DB_CLOSED', `database ${this.path} is ${this.#status}`);
      if (this.#fatal !== undefined) throw this.#fatal;
      const { ops: encoded, conds } = encodeOps(ops, opts);
      return this.#queue.submit(encoded, conds);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  put(key: Bytes, value: Bytes, opts: { tree?: string } = {}): Promise<void> {
    return this.#submit([{ type: 'put', key, value, ...(opts?.tree !== undefined ? { tree: opts.tree } : {}) }]);
  }

  del(key: Bytes, opts: { tree?: string } = {}): Promise<void> {
    return this.#submit([{ type: 'del', key, ...(opts?.tree !== undefined ? { tree: opts.tree } : {}) }]);
  }

  /** Applies every operation or none, after the caller's earlier batches. */
  batch(ops: BatchOp[], opts?: BatchOptions): Promise<void> {
    return this.#submit(ops, opts);
  }

  dropTree(name: string): Promise<void> {
    try {
      if (this.#status !== 'open') throw new BirchError('DB_CLOSED', `database ${this.path} is ${this.#status}`);
      if (this.#fatal !== undefined) throw this.#fatal;
      return this.#queue.submit([{ type: OP_DROP_TREE, tree: Buffer.from(toTreeName(name), 'utf8'), key: undefined, value: undefined }], []);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #post(msg: ToWriter, transfer: ArrayBuffer[] = []): void {
    this.#worker.postMessage(msg, transfer);
  }

  #onMessage(msg: FromWriter): void {
    switch (msg.kind) {
      case 'committed': {
        // Staged commits are published in order: one that needs no sync (nothing changed) may
        // not overtake one still waiting for its sync.
        if (!msg.synced || this.#staged.length > 0) {
          this.#staged.push({ msg, state: this.#stage(msg) });
          break;
        }
        this.#publish(msg, this.#stage(msg));
        break;
      }
      case 'synced':
        while (this.#staged.length > 0 && (this.#staged[0] as StagedCommit).msg.txnId <= msg.txnId) {
          const c = this.#staged.shift() as StagedCommit;
          this.#publish(c.msg, c.state);
        }
        break;
      case 'rejected':
        this.#queue.settle([], msg.rejected.map((r) => ({ id: r.id, error: fromWireError(r.error) })));
        break;
      case 'flushed':
        this.#view.flushed(msg.txnId);
        break;
      case 'fatal':
        // Staged commits never became durable: their batches reject with the rest.
        this.#staged.length = 0;
        this.#fatal = fromWireError(msg.error);
        this.#queue.failAll(this.#fatal);
        break;
      case 'closed':
        this.#onClosed?.(msg.error === undefined ? undefined : fromWireError(msg.error));
        break;
      case 'ready':
      case 'openFailed':
        break;
    }
  }

  /** Installs a commit's pages where no snapshot reaches them yet; returns its decoded state. */
  #stage(msg: CommittedMsg): DbState | undefined {
    if (msg.state.length === 0) return undefined;
    const t0 = performance.now();
    const state: DbState = decodeState(Buffer.from(msg.state.buffer, msg.state.byteOffset, msg.state.byteLength), 0);
    this.#view.stage(state.txnId, decodePages(msg.pages, msg.pageCount));
    this.#installMs += performance.now() - t0;
    this.#bytesReceived += msg.pages.byteLength;
    return state;
  }

  /** A durable commit: readers see it from now on, and its batches settle. */
  #publish(msg: CommittedMsg, state: DbState | undefined): void {
    if (state !== undefined) {
      this.#view.state = state;
      this.#roots = decodeRoots(state.roots);
      this.#commits++;
      this.#publishFloor();
    }
    this.#counters = msg.counters;
    this.#batches += msg.ids.length;
    this.#queue.settle(msg.ids, msg.rejected.map((r) => ({ id: r.id, error: fromWireError(r.error) })));
  }

  #writerDied(err: Error): void {
    if (this.#fatal === undefined) this.#fatal = new BirchError('FATAL_IO', `the writer thread failed: ${err.message}; reopen the database`, { cause: err });
    this.#queue.failAll(this.#fatal);
    this.#onClosed?.(this.#fatal);
  }

  // ---- tools -----------------------------------------------------------------------------------

  stats(): BirchStats {
    this.#assertReadable();
    let oldest: number | null = null;
    let since: number | null = null;
    for (const [t, p] of this.#pins) {
      if (oldest === null || t < oldest) {
        oldest = t;
        since = p.since;
      }
    }
    const c = this.#view.cache;
    return {
      ...this.#counters,
      txnId: this.#view.state.txnId,
      trees: allTreeShapes((no) => this.#view.readPage(no), this.#roots),
      writer: {
        batches: this.#batches,
        commits: this.#commits,
        batchesPerCommit: this.#commits === 0 ? 0 : this.#batches / this.#commits,
        queuedBytes: this.#queue.queuedBytes,
        waitingBatches: this.#queue.waiting,
      },
      snapshots: { live: [...this.#pins.values()].reduce((n, p) => n + p.count, 0), oldestTxnId: oldest, oldestAgeMs: since === null ? null : Date.now() - since },
      readView: {
        recentPages: this.#view.recentPages, cacheHits: c.hits, cacheMisses: c.misses, cacheBytes: c.sizeBytes,
        installMs: this.#installMs, pageBytesReceived: this.#bytesReceived,
      },
    };
  }

  /** The verifier, over the newest installed commit. */
  check(): CheckReport {
    this.#assertReadable();
    return checkDatabase({ state: this.#view.state, verifiedRead: (no) => this.#view.readVerified(no) }, this.#roots);
  }

  get txnId(): number {
    return this.#view.state.txnId;
  }

  get closed(): boolean {
    return this.#status === 'closed';
  }

  /** Settles every queued write, stops the writer (which flushes the data file) and releases the directory. */
  close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#status = 'closing';
    this.#closed = (async () => {
      await this.#queue.whenIdle();
      // A writer that already died cannot answer: do not wait for it (its writes were rejected).
      let err: BirchError | undefined;
      if (!this.#writerExited) {
        const done = new Promise<BirchError | undefined>((resolve) => {
          this.#onClosed = resolve;
        });
        this.#worker.ref();
        this.#post({ kind: 'close' });
        err = await done;
      }
      this.#status = 'closed';
      this.#pins.clear();
      this.#view.close();
      await this.#worker.terminate();
      this.#lock.release();
      if (err !== undefined && err !== this.#fatal) throw err;
    })();
    return this.#closed;
  }
}

/** Opens (or creates) the database in directory `dir`. */
export function open(dir: string, options?: BirchOptions): Promise<Birch> {
  return Birch.open(dir, options);
}

