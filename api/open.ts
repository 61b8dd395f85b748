// Opening a database: the directory lock, recovery (the journal replayed into a buffer
// generation), the page cache every thread shares, and the writer and checkpointer threads.
// Whatever fails undoes what was done before it: threads stop, files close, the lock goes.
import { resolve as resolvePath } from 'node:path';
import { BirchError, readEnv } from '../platform/errors.js';
import { NodeDirectory, type DirectoryBackend, type HeldLock } from '../pager/backend.js';
import { checksumReady } from '../pager/checksum.js';
import { FAULT_COUNTERS_BYTES } from '../pager/faults.js';
import { PageReader } from '../pager/reader.js';
import { SharedPageCache } from '../pager/shared-cache.js';
import { DATA_FILE } from '../pager/data-file.js';
import { Generation } from '../db/buffer.js';
import type { CheckpointStats } from '../db/checkpoint.js';
import { recover } from '../db/recovery.js';
import { ReaderSlots } from '../db/reader-slots.js';
import { ReaderHandles } from './reader-handles.js';
import { resolveOptions, type BirchOptions, type ResolvedOptions } from './options.js';
import type { FaultInit, FromCheckpointer, FromWriter, ToCheckpointer } from './protocol.js';
import { startCheckpointer, startWriter, type Peer, type WriterPeer } from './threads.js';

/** What the handle is built from. */
export interface OpenedParts {
  opts: ResolvedOptions;
  lock: HeldLock;
  /** This thread's reads of the data file, through the page cache every thread shares. */
  reader: PageReader;
  /** The checkpointer's reader slot in the cache: given back if that thread dies. */
  checkpointerSlot: number;
  /** What reader threads and the checkpointer read: the published checkpoint, every thread's oldest. */
  slots: ReaderSlots;
  /** Reader threads' handles; none on a storage backend given as an option (they open the file by path). */
  readerThreads: ReaderHandles | undefined;
  recovered: ReturnType<typeof recover>;
  /** The active buffer generation, holding what recovery replayed. */
  gen: Generation;
  writer: WriterPeer;
  checkpointer: Peer<ToCheckpointer>;
  checkpointerStats: CheckpointStats;
}

/** Where the threads' messages go: bound to the handle once it exists (nothing arrives unasked before). */
export interface ThreadEvents {
  fromWriter(msg: FromWriter): void;
  fromCheckpointer(msg: FromCheckpointer): void;
  died(which: 'writer' | 'checkpointer', err: Error): void;
}

export async function openParts(dir: string, options: BirchOptions, events: ThreadEvents): Promise<OpenedParts> {
  if (typeof dir !== 'string' || dir === '') throw new BirchError('BAD_OPTION', 'open() takes a directory path');
  const opts = resolveOptions(options);
  // Pages and records are checksummed from the first read: use the fastest implementation.
  await checksumReady();
  const backend: DirectoryBackend = opts.backend ?? new NodeDirectory(dir, opts.lock === undefined ? {} : { lock: opts.lock });
  // The directory lock is taken here, on the opening thread, and held for the other threads.
  const lock = backend.lock();
  let reader: PageReader | undefined;
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
    const checkpointerSlot = cache.reserveSlot();
    reader = new PageReader(backend.open(DATA_FILE, { create: false, readOnly: true }), cache);
    const slots = ReaderSlots.create(recovered.state);
    // Reader threads open the data file by path: not on a backend that lives in this thread's memory.
    const readerThreads = opts.backend === undefined ? new ReaderHandles(resolvePath(dir), cache, slots) : undefined;
    const faults: FaultInit | undefined = opts.faults === undefined ? undefined : { plan: opts.faults, counters: opts.faults.counters ?? new SharedArrayBuffer(FAULT_COUNTERS_BYTES) };
    const { peer: checkpointer, stats: checkpointerStats } = await startCheckpointer(
      { dir, cache: reader.cache.init, cacheSlot: checkpointerSlot, allocation: opts.allocation, floor: slots.sab, heapLimitMb: opts.threadHeapLimits.checkpointerMb, ...(faults === undefined ? {} : { faults }) },
      opts.backend,
      { message: (m) => events.fromCheckpointer(m), died: (e) => events.died('checkpointer', e) },
    );
    started.push(checkpointer);
    const writer = await startWriter(
      {
        dir, segmentBytes: opts.journalSegmentSize, sync: opts.sync, maxRecordBytes: opts.maxRecordBytes,
        segments: recovered.segments, releasedSeq: recovered.state.seq, heapLimitMb: opts.threadHeapLimits.writerMb, ...(faults === undefined ? {} : { faults }),
      },
      opts.backend,
      { message: (m) => events.fromWriter(m), died: (e) => events.died('writer', e) },
    );
    started.push(writer);
    return { opts, lock, reader, checkpointerSlot, slots, readerThreads, recovered, gen, writer, checkpointer, checkpointerStats };
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
