// The options of open(), checked, with their defaults and the reasons for them.
import { checkOptionNames } from './input.js';
import os from 'node:os';
import { BirchError } from '../platform/errors.js';
import { MAX_CACHE_BYTES } from '../pager/shared-cache.js';
import type { DirectoryBackend } from '../pager/backend.js';
import type { FaultPlan } from '../pager/faults.js';
import type { LockMode } from '../platform/directory-lock.js';
import { DEFAULT_ALLOCATION, type AllocationOptions } from '../pager/freelist.js';

export interface BirchOptions {
  /** fdatasync each commit before its promises resolve (default true). Without it a crash may lose recent commits, never consistency. */
  sync?: boolean;
  /**
   * One bound, in bytes (at least 16 MiB), from which the memory options follow unless given
   * themselves (memoryBudgetOf): half for the page cache, half for the write path (the write
   * buffer's generations, the checkpointer's copy of the one it merges, the generations snapshots
   * hold), with checkpointBytes, maxQueuedBytes and maxRecordBytes a sixteenth each. The write
   * path's half is enforced: past it, new batches wait for a checkpoint (never refused).
   * `stats().memory` shows the ledger. Default: none (the defaults of each option).
   */
  memoryLimit?: number;
  /**
   * The bound of the page cache, in bytes: one cache, in shared memory, for every thread that reads
   * the data file (yours, the checkpointer). It takes memory only as pages are read into it, up to
   * this. Default: a quarter of the memory this process may use, from 64 MiB to 4 GiB (defaultCacheSize()).
   */
  cacheSize?: number;
  /** Size of each preallocated journal segment (default 4 MiB). */
  journalSegmentSize?: number;
  /**
   * Bytes of buffered writes that start a checkpoint (default 32 MiB; each operation counts its key,
   * value and ENTRY_OVERHEAD_BYTES). See DEFAULT_CHECKPOINT_BYTES for the trade-off. After a
   * checkpoint that appended (wrote about its data's bytes in pages), the next starts at half
   * this (api/checkpoint-trigger.ts). While a checkpoint runs, writes past this slow down,
   * and past twice this wait for it.
   */
  checkpointBytes?: number;
  /** Bytes of batches admitted and not yet durable before new writes wait (default 64 MiB). */
  maxQueuedBytes?: number;
  /**
   * The largest journal record, in bytes: a record takes queued batches up to this (default 16 MiB;
   * always at least one turn's).
   */
  maxRecordBytes?: number;
  /** @deprecated The former name of maxRecordBytes (it caps a journal record, not a merge); still accepted. */
  maxMergeBytes?: number;
  /** The free-list allocation policy (pager/freelist.ts). */
  allocation?: Partial<AllocationOptions>;
  /**
   * Give space back while open, without being asked (default false: only db.compact() and close()
   * do): after a checkpoint that leaves more than `freeShare` of the file's pages free (default
   * 0.5, at least 0.3, and more than 64 pages), the trees are moved down and the file is cut, as
   * db.compact() does without checkpointing first. `true` is `{ freeShare: 0.5 }`. The floor: the
   * allocator leaves up to a quarter of the file in scattered free pages before it reuses them,
   * so a lower share would compact again and again under steady writes.
   */
  autoCompact?: boolean | { freeShare?: number };
  /**
   * The directory lock (default 'auto': fs-ext's flock where its native module loads, else the
   * owner record alone; the BIRCH_LOCK environment variable can force either under 'auto').
   * 'flock' fails with UNSUPPORTED where fs-ext does not load. Both kinds exclude each other.
   */
  lock?: LockMode;
  /**
   * Storage to use instead of files in `dir` (tests: memory and simulated disks). The writer and
   * checkpointer then run on the opening thread, since a worker thread cannot share it.
   */
  backend?: DirectoryBackend;
  /** For tests of I/O failure only: make the database's Nth write or sync fail (every thread counts together). */
  faults?: FaultPlan;
}

/**
 * 32 MiB of buffered operations (about 110,000 entries of 16-byte keys and 100-byte values, each
 * counting ENTRY_OVERHEAD_BYTES besides).
 * A checkpoint rewrites every leaf its keys touch, so random keys cost, per checkpoint, about
 * the whole tree once they outnumber its leaves: the larger the buffer, the fewer rewrites. Over
 * a million such keys (a 130 MiB tree) this default made seven checkpoints in `birch bench
 * fillrandom`, writing about 3.7 times the data in tree pages; a smaller buffer rewrites more
 * leaves per key. Against that, the buffer
 * holds up to four times this in memory under a sustained load (an active and a frozen generation,
 * each up to twice it), and opening replays at most about twice this from the journal.
 */
export const DEFAULT_CHECKPOINT_BYTES = 32 * 1024 * 1024;

/**
 * The default bound of the page cache: a quarter of the memory this process may use (the machine's,
 * or its cgroup's limit where one is set), at least 64 MiB and at most 4 GiB (the largest shared
 * buffer Node 20 and Bun allocate). lmdb-js reads through the OS page cache, in effect all free
 * memory; WiredTiger takes half of RAM less 1 GiB. A quarter leaves room for the app and the OS,
 * and still holds a file of a few hundred MiB without a miss on a machine of 2 GiB or more. The
 * cache grows with what is read, not at open: a database that is only written to, or a small one,
 * never takes its bound.
 */
export function defaultCacheSize(): number {
  const MIN = 64 * 1024 * 1024;
  let total: number;
  try {
    total = os.totalmem();
    const limit = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
    if (limit !== undefined && limit > 0 && limit < total) total = limit;
  } catch {
    // Deno without --allow-sys: the machine's memory is not ours to read.
    return 4 * MIN;
  }
  return Math.min(MAX_CACHE_BYTES, Math.max(MIN, Math.floor(total / 4)));
}

/** The lowest memoryLimit: below it a sixteenth (checkpointBytes) is under 1 MiB and checkpoints run back to back. */
export const MIN_MEMORY_LIMIT = 16 * 1024 * 1024;

/**
 * What memoryLimit `m` gives each part, where the caller sets no option of its own:
 *   cacheSize       m / 2 (at most 4 GiB)  pages every thread reads, in shared memory
 *   write path      m - cacheSize          enforced: the active and frozen generations, the
 *                                          checkpointer's copy of the frozen one, generations only
 *                                          snapshots still read
 *   checkpointBytes m / 16                 the active generation stays under 2x this (the hard
 *                                          limit) and the frozen one under it: 3/16 m, plus the
 *                                          checkpointer's copy, 1/4 m in all, half the write path,
 *                                          which leaves the rest to what snapshots hold
 *   maxQueuedBytes  m / 16                 batches admitted, not yet durable (part of the active
 *                                          generation, so not counted twice)
 *   maxRecordBytes  min(16 MiB, m / 16)    one journal record, which the writer compresses
 * Not counted: the runtime itself (each thread's isolate, about 10-40 MiB here) and the garbage its
 * collector has not yet reclaimed.
 */
export function memoryBudgetOf(m: number): { cacheSize: number; checkpointBytes: number; maxQueuedBytes: number; maxRecordBytes: number } {
  const sixteenth = Math.floor(m / 16);
  return {
    cacheSize: Math.min(MAX_CACHE_BYTES, Math.floor(m / 2)),
    checkpointBytes: sixteenth,
    maxQueuedBytes: sixteenth,
    maxRecordBytes: Math.min(DEFAULT_MAX_RECORD_BYTES, sixteenth),
  };
}

const DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024;

/**
 * The old-generation heap bound of each worker thread (its `resourceLimits`), in MiB. A thread
 * past it is ended by the runtime, and the handle refuses writes until reopened (as for any
 * thread that dies), so the bounds are far above what the threads need, there to stop a runaway,
 * not to squeeze:
 *   writer        64 MiB: it keeps views of shared memory and one record's buffers (off the heap)
 *   checkpointer  max(512 MiB, 16 x checkpointBytes): it indexes the frozen generation, at most
 *                 about 2 x checkpointBytes of operations, in under their counted size (measured
 *                 120-180 MiB of heap at the default 32 MiB, on Node 20); with memoryLimit and no
 *                 checkpointBytes of the caller's that is max(512 MiB, memoryLimit)
 * The young generation is left at the runtime's default: capping it at 4 MiB lowered the
 * checkpointer's heap by a third but made checkpoints about 20% slower. Bun and Deno take the
 * option without enforcing it.
 */
export function threadHeapLimitsOf(checkpointBytes: number): { writerMb: number; checkpointerMb: number } {
  return { writerMb: 64, checkpointerMb: Math.max(512, Math.ceil((16 * checkpointBytes) / (1024 * 1024))) };
}

export const DEFAULTS = {
  sync: true,
  journalSegmentSize: 4 * 1024 * 1024,
  checkpointBytes: DEFAULT_CHECKPOINT_BYTES,
  maxQueuedBytes: 64 * 1024 * 1024,
  maxRecordBytes: DEFAULT_MAX_RECORD_BYTES,
} as const;

export interface ResolvedOptions {
  sync: boolean;
  /** The write path's share of memoryLimit (undefined: no limit): past it, batches wait. */
  writeMemoryBytes: number | undefined;
  memoryLimit: number | undefined;
  cacheSize: number;
  journalSegmentSize: number;
  checkpointBytes: number;
  maxQueuedBytes: number;
  maxRecordBytes: number;
  /** Each worker thread's old-generation bound, in MiB (threadHeapLimitsOf). */
  threadHeapLimits: { writerMb: number; checkpointerMb: number };
  allocation: AllocationOptions;
  /** The share of free pages past which a checkpoint is followed by a compaction; undefined: never. */
  autoCompact: number | undefined;
  lock: LockMode | undefined;
  backend: DirectoryBackend | undefined;
  faults: FaultPlan | undefined;
}

function cacheSizeOf(v: unknown, num: (name: string, v: unknown, def: number, min: number) => number): number {
  const n = num('cacheSize', v, defaultCacheSize(), 1);
  if (n > MAX_CACHE_BYTES) throw new BirchError('BAD_OPTION', `option cacheSize is at most ${MAX_CACHE_BYTES} bytes (4 GiB: the largest shared buffer the runtime allocates); reads past it are served from the OS page cache`);
  return n;
}

/** maxRecordBytes, or its former name maxMergeBytes (not both). */
function maxRecordBytesOf(o: BirchOptions, num: (name: string, v: unknown, def: number, min: number) => number, def: number): number {
  if (o.maxRecordBytes !== undefined && o.maxMergeBytes !== undefined) throw new BirchError('BAD_OPTION', 'options maxRecordBytes and maxMergeBytes are one option (maxMergeBytes is its former name): give one');
  return o.maxMergeBytes !== undefined ? num('maxMergeBytes', o.maxMergeBytes, def, 1) : num('maxRecordBytes', o.maxRecordBytes, def, 1);
}

/** The share of free pages that starts an automatic compaction (AUTO_COMPACT_FREE_SHARE for true). */
export const AUTO_COMPACT_FREE_SHARE = 0.5;
/** The lowest freeShare accepted (see BirchOptions.autoCompact). */
export const AUTO_COMPACT_MIN_SHARE = 0.3;
function autoCompactOf(v: unknown): number | undefined {
  if (v === undefined || v === false) return undefined;
  if (v === true) return AUTO_COMPACT_FREE_SHARE;
  if (typeof v === 'object' && v !== null) {
    const share = (v as { freeShare?: unknown }).freeShare ?? AUTO_COMPACT_FREE_SHARE;
    for (const k of Object.keys(v)) if (k !== 'freeShare') throw new BirchError('BAD_OPTION', `unknown autoCompact option '${k}'; the option is freeShare`);
    if (typeof share !== 'number' || !(share >= AUTO_COMPACT_MIN_SHARE && share < 1)) throw new BirchError('BAD_OPTION', `option autoCompact.freeShare must be a number from ${AUTO_COMPACT_MIN_SHARE} to below 1 (below it, the free pages the allocator keeps would start a compaction after every checkpoint)`);
    return share;
  }
  throw new BirchError('BAD_OPTION', 'option autoCompact must be a boolean or { freeShare }');
}

const OPEN_OPTION_NAMES = ['sync', 'memoryLimit', 'cacheSize', 'journalSegmentSize', 'checkpointBytes', 'maxQueuedBytes', 'maxRecordBytes', 'maxMergeBytes', 'allocation', 'autoCompact', 'lock', 'backend', 'faults'] as const satisfies readonly (keyof BirchOptions)[];

// Every option of BirchOptions is in the list (a compile error otherwise), so none is refused as unknown.
const everyOpenOptionListed: [Exclude<keyof BirchOptions, (typeof OPEN_OPTION_NAMES)[number]>] extends [never] ? true : false = true;
void everyOpenOptionListed;

export function resolveOptions(options: unknown): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new BirchError('BAD_OPTION', 'options must be an object');
  const o = options as BirchOptions;
  checkOptionNames(o, OPEN_OPTION_NAMES, 'open()');
  const num = (name: string, v: unknown, def: number, min: number): number => {
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new BirchError('BAD_OPTION', `option ${name} must be a number >= ${min}`);
    return Math.floor(v);
  };
  if (o.sync !== undefined && typeof o.sync !== 'boolean') throw new BirchError('BAD_OPTION', 'option sync must be a boolean');
  if (o.allocation !== undefined && (typeof o.allocation !== 'object' || o.allocation === null)) throw new BirchError('BAD_OPTION', 'option allocation must be an object');
  if (o.allocation !== undefined) checkOptionNames(o.allocation, ['policy', 'minRunPages', 'scatterLimit'], 'open() allocation');
  const allocation = { ...DEFAULT_ALLOCATION, ...(o.allocation ?? {}) };
  if (allocation.policy !== 'runs-first' && allocation.policy !== 'first-fit') throw new BirchError('BAD_OPTION', `unknown allocation policy ${String(allocation.policy)}`);
  if (o.backend !== undefined && (typeof o.backend !== 'object' || o.backend === null || typeof o.backend.open !== 'function')) {
    throw new BirchError('BAD_OPTION', 'option backend must be a DirectoryBackend');
  }
  if (o.lock !== undefined && o.lock !== 'auto' && o.lock !== 'flock' && o.lock !== 'pidfile') {
    throw new BirchError('BAD_OPTION', `option lock must be 'auto', 'flock' or 'pidfile', not ${String(o.lock)}`);
  }
  const limit = o.memoryLimit === undefined ? undefined : num('memoryLimit', o.memoryLimit, 0, MIN_MEMORY_LIMIT);
  const derived = limit === undefined ? undefined : memoryBudgetOf(limit);
  const cacheSize = o.cacheSize === undefined && derived !== undefined ? derived.cacheSize : cacheSizeOf(o.cacheSize, num);
  let writeMemoryBytes: number | undefined;
  if (limit !== undefined) {
    writeMemoryBytes = limit - cacheSize;
    if (writeMemoryBytes < limit / 8) throw new BirchError('BAD_OPTION', `option cacheSize (${cacheSize}) leaves less than an eighth of memoryLimit (${limit}) to the write path; lower cacheSize or raise memoryLimit`);
  }
  const checkpointBytes = num('checkpointBytes', o.checkpointBytes, derived?.checkpointBytes ?? DEFAULTS.checkpointBytes, 1);
  return {
    sync: o.sync ?? DEFAULTS.sync,
    memoryLimit: limit,
    writeMemoryBytes,
    cacheSize,
    journalSegmentSize: num('journalSegmentSize', o.journalSegmentSize, DEFAULTS.journalSegmentSize, 64 * 1024),
    checkpointBytes,
    threadHeapLimits: threadHeapLimitsOf(checkpointBytes),
    maxQueuedBytes: num('maxQueuedBytes', o.maxQueuedBytes, derived?.maxQueuedBytes ?? DEFAULTS.maxQueuedBytes, 1),
    maxRecordBytes: maxRecordBytesOf(o, num, derived?.maxRecordBytes ?? DEFAULTS.maxRecordBytes),
    allocation,
    autoCompact: autoCompactOf(o.autoCompact),
    lock: o.lock,
    backend: o.backend,
    faults: o.faults,
  };
}
