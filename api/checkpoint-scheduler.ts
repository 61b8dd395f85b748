// The checkpoint scheduler, on the main thread: when a checkpoint starts, what it is handed, what
// its result changes, and compaction requests. The merge itself runs on the checkpointer thread
// (api/checkpoint-service.ts over db/checkpoint.ts).
//
// A checkpoint's life: the active generation passes its start (checkpointTrigger), or the journal
// holds too much, or a caller asks; the generation is frozen at the last admitted batch, and the
// writer ends a record after it (the boundary), so no journal record holds batches on both sides.
// Once the writer has synced that batch, the checkpointer is handed every batch up to it (the
// replayed journal records first, then the arena's bytes). When its trees are published, reads
// go to them, the frozen generation goes, and the writer may recycle the journal up to it.
import { BirchError } from '../platform/errors.js';
import { decodeState } from '../pager/meta-format.js';
import type { RecordLoc } from '../journal/journal.js';
import type { BatchBytes, CheckpointStats } from '../db/checkpoint.js';
import type { FromCheckpointer, ToCheckpointer } from './protocol.js';
import type { Peer, WriterPeer } from './threads.js';
import type { ResolvedOptions } from './options.js';
import type { CompactResult } from './stats.js';
import type { HandleFailure } from './handle-failure.js';
import type { ReadState } from './read-state.js';
import { checkpointTrigger } from './checkpoint-trigger.js';

/** Journal segments held past this many checkpointBytes start a checkpoint (tiny commits fill the journal, not the buffer). */
const JOURNAL_LIMIT_FACTOR = 4;
/** Fewer free pages than this never start an automatic compaction (the same floor close() uses). */
const AUTO_COMPACT_MIN_FREE_PAGES = 64;

/** What the scheduler needs of the commit pipeline and the handle. */
export interface CheckpointHost {
  /** Hands the writer every batch admitted and not yet sent; with `freeze`, the boundary after them. */
  sendTurn(freeze: boolean): void;
  /** Admits batches that waited for the checkpoint, then settles idle waiters. */
  resume(): void;
  /** A checkpoint was published (its generation dropped): arena chunks nothing reads any more may be reused. */
  published(): void;
  /** The threads' keep-alive may have changed (a checkpoint or a compaction started or ended). */
  refsChanged(): void;
  /** Throws DB_CLOSED unless the handle is open. */
  assertOpen(): void;
  isOpen(): boolean;
}

interface Running {
  /** The last batch it covers. */
  upToSeq: number;
  /** Whether the checkpointer was asked yet (only once that batch is synced). */
  requested: boolean;
  done: Promise<void>;
  finish: () => void;
}

export class CheckpointScheduler {
  readonly #state: ReadState;
  readonly #opts: ResolvedOptions;
  readonly #failure: HandleFailure;
  readonly #checkpointer: Peer<ToCheckpointer>;
  readonly #writer: WriterPeer;
  readonly #host: CheckpointHost;
  #running: Running | undefined;
  /** The active generation's bytes that start a checkpoint: checkpointBytes, or half of it after a checkpoint that appended (checkpointTrigger). */
  #startAt: number;
  /** The journal records recovery replayed, until the first checkpoint takes them (later batches go as #sent). */
  #records: RecordLoc[];
  /** Batches handed to the writer and not yet to a checkpoint, in order: their bytes in the arena. */
  readonly #sent: BatchBytes[] = [];
  /** The journal's segments held (unrecycled), as the writer last reported. */
  journalBytesHeld = 0;
  /** db.compact() steps asked of the checkpointer, answered in order ('compacted'). */
  readonly #compactWaiters: { resolve: () => void; reject: (e: BirchError) => void }[] = [];
  #stats: CheckpointStats | undefined;
  #lastMs = 0;
  #autoCompactions = 0;
  #lastAutoCompact: CompactResult | undefined;

  constructor(
    parts: { state: ReadState; opts: ResolvedOptions; failure: HandleFailure; checkpointer: Peer<ToCheckpointer>; writer: WriterPeer; host: CheckpointHost },
    records: RecordLoc[],
    stats: CheckpointStats,
  ) {
    this.#state = parts.state;
    this.#opts = parts.opts;
    this.#failure = parts.failure;
    this.#checkpointer = parts.checkpointer;
    this.#writer = parts.writer;
    this.#host = parts.host;
    this.#startAt = parts.opts.checkpointBytes;
    this.#records = records;
    this.#stats = stats;
  }

  /** Whether a checkpoint runs (from the freeze until its trees are published). */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Whether the checkpointer has work that keeps the process alive. */
  get busy(): boolean {
    return this.#running !== undefined || this.#compactWaiters.length > 0;
  }

  /** The checkpointer's last counters (pages, free pages, file size). */
  get stats(): CheckpointStats | undefined {
    return this.#stats;
  }

  /** stats().checkpoints. */
  report(): { count: number; inFlight: boolean; lastMs: number; avgMs: number; pagesWritten: number; writeRuns: number; opsMerged: number; nextAtBytes: number } {
    const cs = this.#stats;
    return {
      count: cs?.checkpoints ?? 0,
      inFlight: this.#running !== undefined,
      lastMs: this.#lastMs,
      avgMs: cs === undefined || cs.checkpoints === 0 ? 0 : cs.totalMs / cs.checkpoints,
      pagesWritten: cs?.pagesWritten ?? 0,
      writeRuns: cs?.writeRuns ?? 0,
      opsMerged: cs?.opsMerged ?? 0,
      nextAtBytes: this.#startAt,
    };
  }

  /** stats().autoCompact. */
  autoCompactReport(): { runs: number; last: CompactResult | null } {
    return { runs: this.#autoCompactions, last: this.#lastAutoCompact ?? null };
  }

  /** The writer was handed these batches: the next checkpoint takes them. */
  handed(batches: readonly BatchBytes[]): void {
    for (const b of batches) this.#sent.push(b);
  }

  /**
   * Starts a checkpoint if none runs and the buffer (or the journal) calls for one, or `force`:
   * freezes the active generation at the last admitted batch, and hands the writer every batch
   * not yet sent with the boundary after them (so that no record holds batches on both sides of
   * it). Returns whether it froze.
   */
  maybeStart(force = false): boolean {
    if (this.#running !== undefined || this.#failure.failed) return false;
    const active = this.#state.active;
    if (active.ops === 0) return false;
    const journalFull = this.journalBytesHeld > JOURNAL_LIMIT_FACTOR * this.#opts.checkpointBytes;
    if (!force && active.bytes < this.#startAt && !journalFull) return false;
    this.#state.freeze();
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    this.#running = { upToSeq: this.#state.admitted, requested: false, done, finish };
    this.#host.sendTurn(true);
    this.request();
    this.#host.refsChanged();
    return true;
  }

  /** Asks the checkpointer once every batch the running checkpoint covers is synced. */
  request(): void {
    const c = this.#running;
    if (c === undefined || c.requested || this.#state.visible < c.upToSeq) return;
    let n = 0;
    while (n < this.#records.length && (this.#records[n] as RecordLoc).lastSeq <= c.upToSeq) n++;
    const records = this.#records.splice(0, n);
    let k = 0;
    while (k < this.#sent.length && (this.#sent[k] as BatchBytes).lastSeq <= c.upToSeq) k++;
    const batches = this.#sent.splice(0, k);
    c.requested = true;
    this.#checkpointer.post({ kind: 'checkpoint', upToSeq: c.upToSeq, records, batches });
  }

  /** The checkpoint's trees are durable: publish them, drop the frozen generation, start the next one if due. */
  checkpointed(msg: Extract<FromCheckpointer, { kind: 'checkpointed' }>): void {
    this.#startAt = checkpointTrigger(this.#opts.checkpointBytes, this.#state.frozen, msg.pages);
    // The shared cache needs nothing here: the checkpointer dropped the old image of every page
    // number it reused before it built the new page, and installed the pages readers will want.
    this.#state.checkpointed(decodeState(msg.state));
    this.#host.published();
    this.#stats = msg.stats;
    this.#lastMs = msg.ms;
    this.#writer.post({ kind: 'release', upToSeq: msg.releasedSeq });
    const c = this.#running;
    this.#running = undefined;
    this.#host.refsChanged();
    c?.finish();
    this.#maybeAutoCompact(msg.stats);
    this.#host.resume();
    // The buffer may have filled again meanwhile.
    if (this.#host.isOpen()) this.maybeStart();
  }

  /**
   * A compaction step is durable. Not a checkpoint of the buffer: the same batches in moved (or
   * trimmed) trees. A checkpoint in flight keeps its frozen generation; its own result comes after.
   */
  compacted(msg: Extract<FromCheckpointer, { kind: 'compacted' }>): void {
    this.#state.compacted(decodeState(msg.state));
    this.#writer.post({ kind: 'release', upToSeq: msg.releasedSeq });
    this.#stats = msg.stats;
    this.#compactWaiters.shift()?.resolve();
    this.#host.refsChanged();
  }

  /** Waits for the running checkpoint, then checkpoints everything admitted. */
  async all(): Promise<void> {
    if (this.#running !== undefined) await this.#running.done;
    if (this.#failure.failed) return;
    this.maybeStart(true);
    if (this.#running !== undefined) await this.#running.done;
  }

  /** Moves and trims (db.compact() without its checkpoint first; automatic compaction). */
  async compact(): Promise<CompactResult> {
    const before = this.#stats?.dataFileBytes ?? 0;
    const t0 = performance.now();
    for (const step of ['move', 'trim'] as const) {
      this.#host.assertOpen();
      const failed = this.#failure.error;
      if (failed !== undefined) throw failed;
      await new Promise<void>((resolve, reject) => {
        this.#compactWaiters.push({ resolve, reject });
        this.#host.refsChanged();
        this.#checkpointer.post({ kind: 'compact', step });
      });
    }
    const s = this.#stats as CheckpointStats;
    return { bytesBefore: before, bytesAfter: s.dataFileBytes, freePages: s.freePages, pendingPages: s.pendingPages, ms: performance.now() - t0 };
  }

  /** With autoCompact, a compaction after a checkpoint that left enough of the file free. */
  #maybeAutoCompact(s: CheckpointStats): void {
    const share = this.#opts.autoCompact;
    if (share === undefined || !this.#host.isOpen() || this.#compactWaiters.length > 0) return;
    // Free pages only: pending ones are every checkpoint's own copy-on-write churn, and come back
    // as free pages at the next checkpoint if nothing holds them.
    if (s.freePages <= AUTO_COMPACT_MIN_FREE_PAGES || s.freePages <= share * s.pageCount) return;
    // A failure here is a fatal checkpointer failure, reported to every later call; nothing waits on this promise.
    this.compact().then(
      (r) => {
        this.#autoCompactions++;
        this.#lastAutoCompact = r;
      },
      () => undefined,
    );
  }

  /** The handle failed: compactions waiting reject with `err`. Returns whether any caller was told. */
  rejectCompactions(err: BirchError): boolean {
    const waiting = this.#compactWaiters.splice(0);
    for (const w of waiting) w.reject(err);
    return waiting.length > 0;
  }

  /**
   * The handle failed: no checkpoint runs from now on (one in flight is given up: whoever awaits it
   * goes on), and the bytes kept for one would only pin arena chunks.
   */
  stop(): void {
    this.#running?.finish();
    this.#running = undefined;
    this.#sent.length = 0;
    this.#records = [];
  }
}
