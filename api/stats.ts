// What a handle reports about itself: db.stats() and db.compact()'s result. Types only, so that a
// reader finds every field and what it means in one place; api/birch.ts fills them in from
// its parts' reports (the commit pipeline's, the checkpoint scheduler's, the reader pins').
import type { JournalStats } from '../journal/journal.js';
import type { TreeStats } from '../btree/shape.js';
import type { RuntimeInfo } from './runtime.js';

/** What db.compact() did. */
export interface CompactResult {
  bytesBefore: number;
  bytesAfter: number;
  /** Free pages left inside the file (below pages that could not move). */
  freePages: number;
  /** Pages freed but still read by a snapshot: the file keeps them until a later compact() or close(). */
  pendingPages: number;
  ms: number;
}

export interface BirchStats {
  /** The last acknowledged batch (what reads see). */
  seq: number;
  /** The checkpoint whose trees reads fall back to. */
  checkpointId: number;
  writer: {
    /** Batches acknowledged, journal records they took, and their ratio (group commit). */
    batches: number;
    commits: number;
    batchesPerCommit: number;
    /**
     * Bytes admitted and not yet durable, and batches waiting for admission (backpressure); the
     * waiting batches' bytes are not in queuedBytes but in `memory.waitingBytes`.
     */
    queuedBytes: number;
    waitingBatches: number;
    /** Turns whose hand-off was slowed (soft limit) or batches that waited for a checkpoint (hard limit). */
    slowedTurns: number;
    blockedBatches: number;
  };
  /**
   * The write buffer: `bytes` and `frozenBytes` are estimates (each operation's key and value plus
   * ENTRY_OVERHEAD_BYTES for the objects that index it), the figure checkpoints start by.
   */
  buffer: { bytes: number; ops: number; frozenBytes: number; generations: number };
  journal: JournalStats & { bytesHeld: number; compressionRatio: number };
  checkpoints: {
    count: number;
    inFlight: boolean;
    lastMs: number;
    avgMs: number;
    pagesWritten: number;
    writeRuns: number;
    /** Operations merged into the trees (one per key and checkpoint). */
    opsMerged: number;
    /** The active buffer's bytes that start the next checkpoint: checkpointBytes, or half after a checkpoint that appended (api/checkpoint-trigger.ts). */
    nextAtBytes: number;
  };
  /** Per batch, submit to acknowledgement: all batches, and those that were in flight while a checkpoint ran. */
  latency: { p50Ms: number | null; p99Ms: number | null; duringCheckpointP50Ms: number | null; duringCheckpointP99Ms: number | null; duringCheckpointBatches: number };
  recovery: { ms: number; batches: number; ops: number; journalStops: string[] };
  dataFile: { bytes: number; pageCount: number; freePages: number; pendingPages: number };
  /**
   * The page cache every thread shares: this thread's reads served from it and from disk (pages
   * read ahead count as misses), the bytes its frames hold now, its bound, and frames evicted.
   */
  cache: { hits: number; misses: number; bytes: number; capacityBytes: number; evictions: number };
  /**
   * Snapshots open now, the oldest one's batch and age; and what they keep in memory past its
   * time: write-buffer generations already checkpointed that only snapshots still read, and the
   * bytes those hold (estimated like `buffer.bytes`). A snapshot held across checkpoints keeps
   * every generation it reads: release it to give them back.
   */
  snapshots: { live: number; oldestSeq: number | null; oldestAgeMs: number | null; heldGenerations: number; heldBytes: number };
  /**
   * Reader threads (readerHandle) open now, and the oldest checkpoint one of them still reads
   * (null: none is reading): pages freed since it stay pending, and compaction cannot cut past them.
   */
  readers: { threads: number; oldestCheckpointId: number | null };
  /** Automatic compactions (option autoCompact) finished, and what the last one did. */
  autoCompact: { runs: number; last: CompactResult | null };
  trees: TreeStats[];
  /** Why the handle refuses writes (a failed write or sync, a dead thread), or null. */
  failed: string | null;
  /** What the engine holds in memory, as one ledger (see BirchMemory). */
  memory: BirchMemory;
  /** Which implementation serves each part that has more than one (install-dependent). */
  implementation: BirchImplementation;
}

/**
 * The memory ledger: what each part holds now, in bytes. Buffered operations count their key and
 * value bytes plus ENTRY_OVERHEAD_BYTES each (an upper bound on the slots and key index that index them). Not
 * counted: the rest of a shared arena chunk (4 MiB) an operation lies in, until every operation in
 * it is gone, and views the writer and checkpoint threads hold until their next collection.
 */
export interface BirchMemory {
  /** The memoryLimit option, or null. */
  limit: number | null;
  /** The page cache's frames in use (shared by every thread), and its bound. */
  cacheBytes: number;
  cacheCapacityBytes: number;
  /** The active and frozen write-buffer generations (what `buffer.bytes` counts). */
  bufferBytes: number;
  /** The checkpointer's copy of the frozen generation, while a checkpoint runs (charged as its size). */
  checkpointCopyBytes: number;
  /** Generations already checkpointed that only snapshots still read (`snapshots.heldBytes`). */
  snapshotBytes: number;
  /** Batches submitted and not yet admitted (their encoded bytes). */
  waitingBytes: number;
  /**
   * Chunks of the batch arena that nothing reads any more, kept for the next batches (fresh
   * memory costs a page fault per 4 KiB on first write): at most half of checkpointBytes, and
   * under memoryLimit an eighth of the write path's share, to which they are charged.
   */
  arenaFreeBytes: number;
  /** The write path's share of the limit (bufferBytes + checkpointCopyBytes + snapshotBytes + arenaFreeBytes stay under it), or null. */
  writeLimit: number | null;
  /** Batches that waited because the write path was at its share of the limit. */
  limitWaits: number;
  /**
   * Each worker thread's old-generation heap bound (its resourceLimits), in MiB: writer 64,
   * checkpointer max(512, 16 x checkpointBytes in MiB). A thread past it ends, and the handle
   * refuses writes until reopened. Enforced on Node; Bun and Deno take the option without it.
   */
  threadHeapLimitsMb: { writerMb: number; checkpointerMb: number };
}

/** The implementations a handle uses, where the install or runtime decides. */
export interface BirchImplementation {
  /** The runtime: 'node', 'bun' or 'deno', with its version. */
  runtime: RuntimeInfo;
  /**
   * 'flock' (fs-ext, native) or 'pidfile' (no native code) for files; 'memory' for the memory
   * backend; a custom backend's own name otherwise (hence the open string).
   */
  lock: 'flock' | 'pidfile' | 'memory' | (string & Record<never, never>);
  /** 'xxhash-wasm', or 'js-xxhash' where WebAssembly is unavailable. */
  checksum: 'xxhash-wasm' | 'js-xxhash';
  /** The journal's LZ4 codec: always birchdb's own, in JavaScript. */
  compression: 'lz4-js';
  /**
   * How batches reach the writer thread and its acknowledgements come back: 'shared-memory' (a
   * ring in a SharedArrayBuffer, Atomics.wait on the writer, Atomics.waitAsync on the opening
   * thread), or 'messages' (postMessage both ways) where the runtime has no Atomics.waitAsync or
   * BIRCH_HANDOFF=messages asks for it.
   */
  handoff: 'shared-memory' | 'messages';
  /** 'worker-threads' for files on disk; 'inline' (the opening thread) for a caller's backend. */
  threads: 'worker-threads' | 'inline';
}
