// The commit pipeline, on the main thread: every write from submission to its promise settling.
//
//   1. submit: the batch was validated and encoded into the arena (api/batch-input.ts) by the
//      caller's call; it waits if backpressure holds (#blocked), else it is admitted at once;
//   2. admission (in submission order): its conditions and tree drop are decided against every
//      batch admitted before it, it gets the next sequence number, and its operations go into
//      the active buffer generation, invisible to readers for now;
//   3. once per event-loop turn, every batch admitted in it goes to the writer in one hand-off
//      (a checkpoint may start first: api/checkpoint-scheduler.ts);
//   4. the writer reports the last batch of each synced record: readers see everything up to it
//      from then on, and those batches' promises resolve. So after `await db.put(k, v)`,
//      `db.get(k)` returns v.
//
// A batch refused at admission, or with nothing to write, takes no sequence number and settles
// in commit order, after the batches admitted before it: the caller who reads after it sees the
// state it was decided against.
import { BirchError } from '../platform/errors.js';
import type { JournalStats } from '../journal/journal.js';
import { ENTRY_OVERHEAD_BYTES, applyOps, type Generation } from '../db/buffer.js';
import type { ViewHold } from '../db/view.js';
import type { BatchBytes } from '../db/checkpoint.js';
import type { FromWriter } from './protocol.js';
import type { WriterPeer } from './threads.js';
import type { ResolvedOptions } from './options.js';
import type { HandleFailure } from './handle-failure.js';
import type { ReadState } from './read-state.js';
import type { CheckpointScheduler } from './checkpoint-scheduler.js';
import { BatchArena, TurnParts, type ArenaChunk } from './batch-arena.js';
import { LatencyHistogram } from './latency.js';
import { describeKey, type EncodedBatch, type InputCond } from './batch-input.js';

/** While a checkpoint runs, a turn's hand-off waits up to this long as the buffer nears its hard limit. */
const MAX_SOFT_DELAY_MS = 20;
/** The buffer's hard limit, in checkpointBytes: past it, batches wait for the running checkpoint. */
const HARD_LIMIT_FACTOR = 2;

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
  /** The arena chunk its bytes lie in, until it is told the batch was admitted or settled (undefined: told, or a chunk of its own). */
  chunk: ArenaChunk | undefined;
  t0: number;
  /** Whether it waited for memoryLimit (counted once). */
  limited?: true;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * A batch admitted and not yet acknowledged; or one that needs no journal record, whose outcome
 * waits for the batches admitted before it: refused at admission (`refused`), or with nothing to
 * write (`empty`: a batch of no operations, a check of conditions only).
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

/** Tells the batch's arena chunk it settled without admission, once (its bytes are read by no one). */
function settleChunk(p: Pending): void {
  if (p.chunk === undefined) return;
  p.chunk.settled++;
  p.chunk = undefined;
}

/** What the pipeline needs of the handle. */
export interface PipelineHost {
  /** Throws DB_CLOSED unless the handle is open. */
  assertOpen(): void;
  /** Whether writes are in flight changed: the threads' keep-alive follows. */
  refsChanged(): void;
}

export class CommitPipeline {
  readonly #state: ReadState;
  readonly #opts: ResolvedOptions;
  readonly #failure: HandleFailure;
  readonly #writer: WriterPeer;
  readonly #checkpoints: CheckpointScheduler;
  readonly #host: PipelineHost;
  /** Where batches are encoded: what the write buffer keeps and the writer writes (api/batch-arena.ts). */
  readonly arena: BatchArena;
  readonly #waiting: Pending[] = [];
  #waitingBytes = 0;
  #limitWaits = 0;
  readonly #inflight: Inflight[] = [];
  #inflightHead = 0;
  /** Bytes admitted and not yet acknowledged. */
  #unackedBytes = 0;
  /** Batches admitted this turn, not yet handed to the writer. */
  #turn: TurnParts | undefined;
  #flushScheduled = false;
  #busy = false;
  #idleWaiters: (() => void)[] = [];
  #batches = 0;
  #commits = 0;
  #slowedTurns = 0;
  #blockedBatches = 0;
  readonly #latency = new LatencyHistogram();
  readonly #latencyDuringCheckpoint = new LatencyHistogram();
  #journal: JournalStats | undefined;

  constructor(parts: { state: ReadState; opts: ResolvedOptions; failure: HandleFailure; writer: WriterPeer; checkpoints: CheckpointScheduler; host: PipelineHost; hold: ViewHold }) {
    this.#state = parts.state;
    this.#opts = parts.opts;
    this.#failure = parts.failure;
    this.#writer = parts.writer;
    this.#checkpoints = parts.checkpoints;
    this.#host = parts.host;
    // Free chunks kept for reuse: half a checkpoint's buffer (about every chunk one generation of
    // small puts fills), and under memoryLimit at most an eighth of the write path's share (they
    // are charged to it: writeMemory()).
    const opts = parts.opts;
    const maxFreeBytes = Math.min(opts.checkpointBytes / 2, opts.writeMemoryBytes === undefined ? Infinity : opts.writeMemoryBytes / 8);
    const state = parts.state;
    const hold = parts.hold;
    const held = (): Generation[] => {
      const gens = state.pins.pinnedGenerations();
      if (hold.generation !== undefined) gens.push(hold.generation);
      return gens;
    };
    this.arena = new BatchArena({ maxFreeBytes, readers: { live: () => state.gens, held } });
  }

  /** Whether writes are in flight (submitted and not settled). */
  get busy(): boolean {
    return this.#busy;
  }

  /** Encodes a batch (`make`, into the arena) and settles once it is durable or refused. */
  submit(make: () => EncodedBatch): Promise<void> {
    try {
      this.#host.assertOpen();
      this.#failure.throwIfFailed();
      const batch = make();
      const chunk = this.arena.chunk;
      if (chunk !== undefined) chunk.encoded++;
      return new Promise<void>((resolve, reject) => {
        const p: Pending = { count: batch.count, drop: batch.drop, conds: batch.conds, buf: batch.buf, off: batch.off, len: batch.len, chunk, t0: performance.now(), resolve, reject };
        this.#setBusy(true);
        try {
          if (this.#waiting.length > 0 || this.#blocked(p)) {
            this.#waiting.push(p);
            this.#waitingBytes += p.len;
          } else this.#admit(p);
        } catch (err) {
          // A bug (admission does not throw by design): the batch is settled for the arena, so
          // that its chunk is not held for good, and the promise rejects with the error.
          settleChunk(p);
          throw err;
        }
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Whether batch `p` must wait: too many bytes in flight, or the buffer at its hard limit. */
  #blocked(p: Pending): boolean {
    if (this.#unackedBytes > 0 && this.#unackedBytes + p.len > this.#opts.maxQueuedBytes) return true;
    if (this.#checkpoints.running && this.#state.active.bytes >= HARD_LIMIT_FACTOR * this.#opts.checkpointBytes) {
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
    const m = this.writeMemory();
    const n = p.len + ENTRY_OVERHEAD_BYTES * p.count;
    const active = this.#state.active.bytes;
    if (m.buffer + m.copy + m.held + m.free + n <= limit && 2 * (active + n) + m.held <= limit) return false;
    if (2 * n + m.held > limit) return false;
    if (!this.#checkpoints.running && !this.#checkpoints.maybeStart(true)) return false;
    if (p.limited === undefined) {
      p.limited = true;
      this.#limitWaits++;
    }
    return true;
  }

  /** The write path's memory: the buffer's generations, the checkpointer's copy, what snapshots hold, free arena chunks. */
  writeMemory(): { buffer: number; copy: number; held: number; free: number } {
    const s = this.#state;
    const frozen = s.frozen;
    const copy = this.#checkpoints.running && frozen !== undefined ? frozen.bytes : 0;
    return { buffer: s.active.bytes + (frozen?.bytes ?? 0), copy, held: s.pins.heldBytes(s.gens), free: this.arena.freeBytes };
  }

  /** Admits waiting batches while nothing holds them back. */
  pump(): void {
    while (this.#waiting.length > 0 && !this.#failure.failed) {
      const p = this.#waiting[0] as Pending;
      if (this.#blocked(p)) break;
      this.#waiting.shift();
      this.#waitingBytes -= p.len;
      this.#admit(p);
    }
  }

  /** Decides the batch against every batch admitted before it and, if it holds, applies it. */
  #admit(p: Pending): void {
    const s = this.#state;
    const refused = this.#decide(p);
    if (refused !== undefined || p.count === 0) {
      settleChunk(p);
      // Nothing to journal: no sequence number; the outcome waits for the batches before it.
      if (s.visible === s.admitted) {
        if (refused !== undefined) p.reject(refused);
        else p.resolve();
        this.checkIdle();
      } else {
        this.#inflight.push({ seq: s.admitted, bytes: 0, t0: p.t0, duringCheckpoint: false, refused, empty: refused === undefined, resolve: p.resolve, reject: p.reject });
      }
      return;
    }
    const seq = ++s.admitted;
    if (p.chunk !== undefined) {
      BatchArena.admitted(p.chunk, s.active);
      p.chunk = undefined;
    }
    applyOps(s.active, p.buf, p.off, p.count, seq, s.pins.pruneFloor);
    this.#inflight.push({ seq, bytes: p.len, t0: p.t0, duringCheckpoint: this.#checkpoints.running, refused: undefined, empty: false, resolve: p.resolve, reject: p.reject });
    this.#unackedBytes += p.len;
    (this.#turn ??= new TurnParts()).add(p.buf, p.off, p.len, p.count, seq);
    this.#scheduleFlush();
  }

  /** Why the batch may not be applied after every batch admitted before it, if it may not. */
  #decide(p: Pending): BirchError | undefined {
    if (p.conds.length === 0 && p.drop === undefined) return undefined;
    const latest = this.#state.latest();
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
    const bytes = this.#state.active.bytes;
    const soft = this.#opts.checkpointBytes;
    if (this.#checkpoints.running && bytes > soft) {
      this.#slowedTurns++;
      const delay = Math.min(MAX_SOFT_DELAY_MS, (MAX_SOFT_DELAY_MS * (bytes - soft)) / ((HARD_LIMIT_FACTOR - 1) * soft));
      setTimeout(() => this.#flush(), delay);
    } else setImmediate(() => this.#flush());
  }

  /** The turn's hand-off: every batch admitted this turn goes to the writer, and a checkpoint may start. */
  #flush(): void {
    this.#flushScheduled = false;
    if (!this.#checkpoints.maybeStart()) this.sendTurn(false);
  }

  /**
   * Hands every batch admitted and not yet sent to the writer, as views of the arena (no copy);
   * `freeze`: a checkpoint covers them, so the writer ends a record after them (with no batches to
   * send, a boundary alone). After a failed checkpoint, batches admitted before it still go to the
   * (sound) journal.
   */
  sendTurn(freeze: boolean): void {
    const turn = this.#turn;
    this.#turn = undefined;
    if (turn === undefined) {
      if (freeze) this.#writer.post({ kind: 'boundary' });
      return;
    }
    const parts = turn.parts;
    let ops = 0;
    for (const b of parts) ops += b.ops;
    this.#checkpoints.handed(parts);
    const first = parts[0] as BatchBytes;
    const last = parts[parts.length - 1] as BatchBytes;
    this.#writer.post({ kind: 'batches', parts: parts.map((b) => b.bytes), ops, firstSeq: first.firstSeq, lastSeq: last.lastSeq, freeze });
  }

  /** The writer synced records up to batch `msg.lastSeq`. */
  synced(msg: Extract<FromWriter, { kind: 'synced' }>): void {
    this.#commits += msg.records;
    this.#journal = msg.journal;
    this.#checkpoints.journalBytesHeld = msg.journalBytesHeld;
    this.#acknowledge(msg.lastSeq);
  }

  /** Every batch up to `seq` is durable: readers see it, and its callers' promises resolve. */
  #acknowledge(seq: number): void {
    this.#state.acknowledge(seq);
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
      if (b.duringCheckpoint || this.#checkpoints.running) this.#latencyDuringCheckpoint.record(ms);
      b.resolve();
    }
    if (this.#inflightHead > 1024 && this.#inflightHead * 2 > this.#inflight.length) {
      this.#inflight.splice(0, this.#inflightHead);
      this.#inflightHead = 0;
    }
    this.#checkpoints.request();
    this.pump();
    this.checkIdle();
  }

  /** The handle failed: batches not yet admitted reject with `err`. Returns whether any caller was told. */
  rejectWaiting(err: BirchError): boolean {
    const told = this.#waiting.length > 0;
    for (const p of this.#waiting) p.reject(err);
    this.#waiting.length = 0;
    this.#waitingBytes = 0;
    return told;
  }

  /**
   * The journal failed: batches admitted may never become durable, so they reject with `err` (or
   * with their own refusal). Returns whether any caller was told of `err`.
   */
  rejectInflight(err: BirchError): boolean {
    let told = false;
    for (let i = this.#inflightHead; i < this.#inflight.length; i++) {
      const b = this.#inflight[i] as Inflight;
      if (b.refused === undefined) told = true;
      b.reject(b.refused ?? err);
    }
    this.#inflight.length = 0;
    this.#inflightHead = 0;
    this.#turn = undefined;
    this.#unackedBytes = 0;
    return told;
  }

  #setBusy(busy: boolean): void {
    if (busy === this.#busy) return;
    this.#busy = busy;
    this.#host.refsChanged();
  }

  get #idle(): boolean {
    return this.#inflightHead >= this.#inflight.length && this.#waiting.length === 0 && this.#turn === undefined;
  }

  /** If nothing is in flight: not busy, and whoever waits for that goes on. */
  checkIdle(): void {
    if (!this.#idle) return;
    this.#setBusy(false);
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  /** Resolves once every write submitted so far has settled. */
  whenIdle(): Promise<void> {
    if (this.#idle) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** stats().writer. */
  report(): { batches: number; commits: number; batchesPerCommit: number; queuedBytes: number; waitingBatches: number; slowedTurns: number; blockedBatches: number } {
    return {
      batches: this.#batches,
      commits: this.#commits,
      batchesPerCommit: this.#commits === 0 ? 0 : this.#batches / this.#commits,
      queuedBytes: this.#unackedBytes,
      waitingBatches: this.#waiting.length,
      slowedTurns: this.#slowedTurns,
      blockedBatches: this.#blockedBatches,
    };
  }

  /** stats().latency. */
  latencyReport(): { p50Ms: number | null; p99Ms: number | null; duringCheckpointP50Ms: number | null; duringCheckpointP99Ms: number | null; duringCheckpointBatches: number } {
    return {
      p50Ms: this.#latency.percentile(0.5),
      p99Ms: this.#latency.percentile(0.99),
      duringCheckpointP50Ms: this.#latencyDuringCheckpoint.percentile(0.5),
      duringCheckpointP99Ms: this.#latencyDuringCheckpoint.percentile(0.99),
      duringCheckpointBatches: this.#latencyDuringCheckpoint.count,
    };
  }

  /** The journal's counters as the writer last reported them. */
  get journal(): JournalStats | undefined {
    return this.#journal;
  }

  get waitingBytes(): number {
    return this.#waitingBytes;
  }

  get limitWaits(): number {
    return this.#limitWaits;
  }
}
