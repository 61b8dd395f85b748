// The one definition of what the main thread, the writer thread and the checkpointer thread say to
// each other. Every side imports these types; no constant is defined twice. The main thread is the
// hub: it hands batches to the writer, checkpoint requests to the checkpointer, and relays what
// one needs to know of the other (the seq up to which the journal may be recycled).
//
// Batches travel in bulk: every batch is encoded once, operation after operation in the journal's
// layout (journal/format.ts), into shared memory (api/batch-arena.ts), and a turn's batches are
// handed over as views of it (not copied). The writer writes those bytes as the body of a journal
// record as they are: no operation is decoded or re-encoded on the commit path. The messages to
// and from the writer below travel through the handoff ring (api/handoff-ring.ts: batches,
// boundaries and acknowledgements in shared memory, the rest by a port), or, where the runtime
// has no Atomics.waitAsync, as messages.
import { BirchError, CorruptionError, FatalIoError, type ErrorCode, type ErrorSite } from '../platform/errors.js';
import type { MessagePort } from 'node:worker_threads';
import type { FaultPlan } from '../pager/faults.js';
import type { AllocationOptions } from '../pager/freelist.js';
import type { SharedCacheInit } from '../pager/shared-cache.js';
import type { JournalStats, RecordLoc, SegmentInfo } from '../journal/journal.js';
import type { BatchBytes, CheckpointStats } from '../db/checkpoint.js';

// ---- errors: whole across threads --------------------------------------------------------------

export interface WireError {
  name: string;
  code: ErrorCode;
  message: string;
  site: ErrorSite;
  cause?: { name: string; message: string; code?: string };
  stack?: string;
}

/** An error as it crosses a thread: its class, code, site and cause survive; a non-birchdb error is a bug (INTERNAL). */
export function toWireError(err: unknown, thread: ErrorSite['thread']): WireError {
  const cause = (c: unknown): WireError['cause'] => {
    if (c === undefined) return undefined;
    const e = c as { name?: unknown; message?: unknown; code?: unknown };
    return { name: String(e.name ?? 'Error'), message: String(e.message ?? c), ...(typeof e.code === 'string' ? { code: e.code } : {}) };
  };
  if (err instanceof BirchError) {
    const c = cause(err.cause);
    return { name: err.name, code: err.code, message: err.message, site: { ...err.site, thread }, ...(c === undefined ? {} : { cause: c }), ...(err.stack === undefined ? {} : { stack: err.stack }) };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return { name: 'BirchError', code: 'INTERNAL', message: `internal error in the ${thread} thread: ${e.message}`, site: { thread }, cause: { name: e.name, message: e.message }, ...(e.stack === undefined ? {} : { stack: e.stack }) };
}

export function fromWireError(w: WireError): BirchError {
  const cause = w.cause === undefined ? undefined : Object.assign(new Error(w.cause.message), { name: w.cause.name, ...(w.cause.code === undefined ? {} : { code: w.cause.code }) });
  let err: BirchError;
  if (w.name === 'CorruptionError') {
    err = new CorruptionError('', w.site, { cause });
    Object.defineProperty(err, 'message', { value: w.message });
  } else if (w.name === 'FatalIoError') {
    err = new FatalIoError('', cause, w.site);
    Object.defineProperty(err, 'message', { value: w.message });
  } else err = new BirchError(w.code, w.message, { cause, site: w.site });
  if (w.stack !== undefined) err.stack = `${err.name}: ${w.message}\n    (in the ${w.site.thread ?? '?'} thread)\n${w.stack.split('\n').slice(1).join('\n')}`;
  return err;
}

// ---- the writer thread ---------------------------------------------------------------------------

export interface WriterInit {
  dir: string;
  segmentBytes: number;
  /** fdatasync each record before reporting it. */
  sync: boolean;
  /** A record takes queued batches up to this many bytes (always at least one message). */
  maxRecordBytes: number;
  /** What recovery found of the journal. */
  segments: SegmentInfo[];
  /** Records up to this seq may be recycled. */
  releasedSeq: number;
  faults?: FaultInit;
  /**
   * The commit hand-off through shared memory (api/handoff-ring.ts): the ring, and the port its
   * control messages come by (api/ring-driver.ts RingControl). Absent: everything comes as messages.
   */
  ring?: { sab: SharedArrayBuffer; port: MessagePort };
  /** The thread's old-generation bound (api/options.ts threadHeapLimitsOf); the main thread applies it as it starts the thread. */
  heapLimitMb: number;
}

export type ToWriter =
  /**
   * Batches firstSeq..lastSeq (at least one), `ops` operations in `parts`, in order: views of the
   * main thread's batch arena (api/batch-arena.ts), shared memory that nobody writes again. freeze:
   * a checkpoint covers batches up to lastSeq, so no record may hold batches on both sides of it.
   */
  | { kind: 'batches'; parts: Uint8Array[]; ops: number; firstSeq: number; lastSeq: number; freeze: boolean }
  /** A checkpoint covers every batch sent before this: the record that holds the last of them ends there. */
  | { kind: 'boundary' }
  /** Both metas hold every batch up to upToSeq: records up to it may be recycled. */
  | { kind: 'release'; upToSeq: number }
  /** Stop; with removeReleased, delete every segment whose records are all released. */
  | { kind: 'close'; removeReleased: boolean };

export type FromWriter =
  | { kind: 'ready' }
  | { kind: 'openFailed'; error: WireError }
  /**
   * Every batch up to lastSeq is durable; `records` journal records were written for them since the
   * last report (a count: checkpoints take the batches from memory, not the records).
   */
  | { kind: 'synced'; lastSeq: number; records: number; journal: JournalStats; journalBytesHeld: number }
  | { kind: 'fatal'; error: WireError }
  | { kind: 'closed'; error?: WireError };

// ---- the checkpointer thread ---------------------------------------------------------------------

export interface CheckpointerInit {
  dir: string;
  /** The page cache every thread shares, and the reader slot the main thread reserved for this one. */
  cache: SharedCacheInit;
  cacheSlot: number;
  allocation: AllocationOptions;
  /** db/reader-slots.ts: the oldest checkpoint whose trees any thread may still read (the owner's reads, reader threads). */
  floor: SharedArrayBuffer;
  faults?: FaultInit;
  /** As WriterInit.heapLimitMb. */
  heapLimitMb: number;
}

export type ToCheckpointer =
  | { kind: 'checkpoint'; upToSeq: number; records: RecordLoc[]; batches: BatchBytes[] }
  /** At close: settle both metas, give the free tail back, cut the file. */
  | { kind: 'finish' }
  /** While open (db.compact()): move tree pages down into free ones, then (a second message, once the main thread reads the moved trees) release, trim and cut. */
  | { kind: 'compact'; step: 'move' | 'trim' }
  | { kind: 'close' };

export type FromCheckpointer =
  | { kind: 'ready'; stats: CheckpointStats }
  | { kind: 'openFailed'; error: WireError }
  | {
      kind: 'checkpointed';
      /** The new state, encoded as the meta holds it. */
      state: Uint8Array;
      releasedSeq: number;
      ms: number;
      pages: number;
      runs: number;
      ops: number;
      stats: CheckpointStats;
    }
  | { kind: 'finished'; stats: CheckpointStats }
  /** A compaction step done: the new state, as 'checkpointed' gives it. */
  | { kind: 'compacted'; state: Uint8Array; releasedSeq: number; stats: CheckpointStats }
  | { kind: 'fatal'; error: WireError }
  | { kind: 'closed' };

// ---- fault injection (tests) ---------------------------------------------------------------------

/** A fault plan and the counters it counts with, shared by every thread (so "the Nth write" is of the database). */
export interface FaultInit {
  plan: FaultPlan;
  /** Int32Array[3]: writes, syncs, and the base the plan was set at (pager/faults.ts). */
  counters: SharedArrayBuffer;
}
