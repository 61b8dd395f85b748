// db.export(dir): one snapshot cut into chunks of about chunkBytes each, written by reader threads
// in parallel, with a manifest (the format: db/export-format.ts).
//
// What it exports: the checkpoint it makes first (everything acknowledged when export() was
// called), pinned until the chunks are written; writes go on meanwhile and are not in it.
//
// How the work is shared: each tree is cut into key ranges along its top branch levels
// (btree/split.ts), a few per thread, handed out as threads ask for more. The ranges follow the
// page layout, but what a chunk holds does not: chunks end where the entries say, and a range
// writes exactly the chunks that start inside it. So the same entries and chunkBytes give the
// same files whatever the thread count, layout or history. The files are then named in export
// order and listed in the manifest; the directory appears whole under its name or not at all.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { BirchError } from '../platform/errors.js';
import { encodeState } from '../pager/meta-format.js';
import type { PageNo } from '../pager/ids.js';
import { PageReader } from '../pager/reader.js';
import { splitKeys } from '../btree/split.js';
import { EXPORT_VERSION, MANIFEST_FILE, encodeManifest, type ChunkInfo, type Manifest } from '../db/export-format.js';
import { checkOptionNames } from './input.js';
import type { ReaderHandle } from './reader-handles.js';
import type { Snapshot } from './reads.js';
import { NewDirectory } from './new-directory.js';
import type { ExportJob, ExportWorkerInit, FromExportWorker } from './export-worker.js';

export interface ExportOptions {
  /** The mean size of a chunk's entries before compression (default 8 MiB; 1 KiB to 64 MiB). */
  chunkBytes?: number;
  /** Reader threads cutting chunks (default: the machine's cores, at most 4; 1 to 32). */
  threads?: number;
  /** Called as ranges finish: drives a progress bar. */
  onProgress?: (p: ExportProgress) => void;
}

export interface ExportProgress {
  chunks: number;
  entries: number;
  /** Entries of the exported checkpoint, over all trees. */
  totalEntries: number;
  bytes: number;
}

export interface ExportResult {
  dir: string;
  /** The last batch the export holds. */
  seq: number;
  chunks: number;
  entries: number;
  /** Bytes of the chunk files. */
  bytes: number;
  threads: number;
  ms: number;
}

export const DEFAULT_CHUNK_BYTES = 8 * 2 ** 20;
const MIN_CHUNK_BYTES = 1024;
/**
 * Chunk sizes spread like an exponential distribution (db/export-format.ts): at this mean one
 * chunk in e^16 reaches the 4 GiB its u32 sizes can say, and one in 150 is five times the mean.
 */
const MAX_CHUNK_BYTES = 64 * 2 ** 20;
const MAX_THREADS = 32;
/** How long a closing export thread may take to end on its own before it is terminated. */
const POOL_CLOSE_MS = 5000;
/** Key ranges per thread: enough that a thread with a slow range does not leave the others idle. */
const RANGES_PER_THREAD = 4;

function exportOptionsOf(opts: unknown): Required<Pick<ExportOptions, 'chunkBytes' | 'threads'>> & Pick<ExportOptions, 'onProgress'> {
  const o = (opts ?? {}) as ExportOptions;
  if (typeof o !== 'object' || o === null) throw new BirchError('BAD_OPTION', 'export options must be an object');
  checkOptionNames(o, ['chunkBytes', 'threads', 'onProgress'], 'export()');
  const chunkBytes = o.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < MIN_CHUNK_BYTES || chunkBytes > MAX_CHUNK_BYTES) {
    throw new BirchError('BAD_OPTION', `export option chunkBytes must be a whole number of bytes from ${MIN_CHUNK_BYTES} to ${MAX_CHUNK_BYTES}, not ${String(o.chunkBytes)}`);
  }
  const threads = o.threads ?? Math.min(4, os.availableParallelism());
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) throw new BirchError('BAD_OPTION', `export option threads must be a whole number from 1 to ${MAX_THREADS}, not ${String(o.threads)}`);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new BirchError('BAD_OPTION', 'export option onProgress must be a function');
  return { chunkBytes, threads, ...(o.onProgress === undefined ? {} : { onProgress: o.onProgress }) };
}

/** What export needs of the database. */
export interface ExportSource {
  checkpoint(): Promise<void>;
  snapshot(): Snapshot;
  readerHandle(): ReaderHandle;
}

interface Pool {
  run(jobs: ExportJob[], done: (chunks: ChunkInfo[]) => void): Promise<void>;
  close(): Promise<void>;
}

/** `threads` export threads reading `state`, each handed jobs one at a time. */
async function startPool(db: ExportSource, threads: number, init: Omit<ExportWorkerInit, 'handle'>): Promise<Pool> {
  const workers: Worker[] = [];
  const url = new URL('./export-worker.js', import.meta.url);
  try {
    for (let t = 0; t < threads; t++) {
      const handle = db.readerHandle();
      let w: Worker;
      try {
        w = new Worker(url, { workerData: { ...init, handle } satisfies ExportWorkerInit, transferList: [handle.port] });
      } catch (err) {
        // Never handed to a thread: closing its port gives its slots back now, not at the owner's close.
        handle.port.close();
        throw err;
      }
      workers.push(w);
    }
    await Promise.all(workers.map((w) => reply(w)));
  } catch (err) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw err;
  }
  return {
    run: async (jobs, done) => {
      let next = 0;
      await Promise.all(workers.map(async (w) => {
        while (next < jobs.length) {
          const job = jobs[next++] as ExportJob;
          w.postMessage(job);
          const r = await reply(w);
          if (r.kind === 'done') done(r.chunks);
        }
      }));
    },
    close: async () => {
      // Asked to close, a thread closes its reader (its file descriptors, its slots) and ends on
      // its own; terminate() is the fallback, since descriptors outlive a terminated thread.
      await Promise.all(workers.map(async (w) => {
        const exited = new Promise((r) => w.once('exit', r));
        w.postMessage({ kind: 'close' });
        const timer = setTimeout(() => void w.terminate(), POOL_CLOSE_MS);
        await exited;
        clearTimeout(timer);
      }));
    },
  };
}

/** The worker's next message; a failure or a thread that dies rejects with a typed error. */
function reply(w: Worker): Promise<Extract<FromExportWorker, { kind: 'ready' | 'done' }>> {
  return new Promise((resolve, reject) => {
    const off = (): void => {
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
    };
    const onMessage = (m: FromExportWorker): void => {
      off();
      if (m.kind === 'failed') reject(new BirchError(m.code as BirchError['code'], `export thread: ${m.message}`));
      else resolve(m);
    };
    const onError = (err: Error): void => {
      off();
      reject(new BirchError('INTERNAL', `an export thread failed: ${err.message}`, { cause: err }));
    };
    const onExit = (code: number): void => {
      off();
      reject(new BirchError('INTERNAL', `an export thread exited (code ${code})`));
    };
    w.on('message', onMessage);
    w.on('error', onError);
    w.on('exit', onExit);
  });
}

/** The order trees are exported in: the default tree, then named trees in byte order of their names. */
function treeOrder(names: string[]): string[] {
  return ['', ...names.filter((n) => n !== '').sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')))];
}

export async function exportDatabase(db: ExportSource, target: unknown, opts: unknown): Promise<ExportResult> {
  const t0 = performance.now();
  const o = exportOptionsOf(opts);
  let out: NewDirectory | undefined;
  let snap: Snapshot | undefined;
  let pool: Pool | undefined;
  try {
    out = new NewDirectory(target, 'export');
    // Everything acknowledged so far into the trees, then that checkpoint pinned.
    await db.checkpoint();
    snap = db.snapshot();
    const base = snap.checkpointed;
    const pages = base.pages;
    if (!(pages instanceof PageReader)) throw new BirchError('INTERNAL', 'the owner reads its trees through the page cache');
    const read = (no: PageNo): Buffer => pages.copyPage(no).page;
    // Empty named trees are left out: two databases with the same entries export the same.
    const trees = treeOrder(base.names()).map((name) => ({ name, entries: (base.desc(name) ?? { entries: 0 }).entries })).filter((t) => t.name === '' || t.entries > 0);
    const totalEntries = trees.reduce((n, t) => n + t.entries, 0);
    const jobs: ExportJob[] = [];
    for (const t of trees) {
      const desc = base.desc(t.name);
      if (desc === undefined || desc.entries === 0) continue;
      const keys = splitKeys(read, desc, o.threads * RANGES_PER_THREAD);
      for (let i = 0; i <= keys.length; i++) {
        const job: ExportJob = { job: jobs.length, tree: t.name };
        if (i > 0) job.from = keys[i - 1] as Buffer;
        if (i < keys.length) job.to = keys[i] as Buffer;
        jobs.push(job);
      }
    }
    const threads = Math.max(1, Math.min(o.threads, jobs.length));
    pool = await startPool(db, threads, { state: encodeState(base.state), chunkBytes: o.chunkBytes, dir: out.tmp });
    const chunks: ChunkInfo[] = [];
    let entries = 0;
    let bytes = 0;
    await pool.run(jobs, (done) => {
      for (const c of done) {
        chunks.push(c);
        entries += c.entries;
        bytes += c.bytes;
      }
      o.onProgress?.({ chunks: chunks.length, entries, totalEntries, bytes });
    });
    await pool.close();
    pool = undefined;
    const seq = base.state.seq as number;
    snap.release();
    if (entries !== totalEntries) throw new BirchError('INTERNAL', `the export threads wrote ${entries} entries, the checkpoint holds ${totalEntries}`);

    // Export order, then names from it: the same files under the same names on every run.
    const rank = new Map(trees.map((t, i) => [t.name, i]));
    chunks.sort((a, b) => (rank.get(a.tree) as number) - (rank.get(b.tree) as number) || Buffer.compare(Buffer.from(a.first, 'hex'), Buffer.from(b.first, 'hex')));
    const width = Math.max(6, String(chunks.length - 1).length);
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i] as ChunkInfo;
      const name = `chunk-${String(i).padStart(width, '0')}.bin`;
      fs.renameSync(path.join(out.tmp, c.file), path.join(out.tmp, name));
      c.file = name;
    }
    const manifest: Manifest = { format: 'birchdb-export', version: EXPORT_VERSION, chunkBytes: o.chunkBytes, trees, chunks };
    const fd = fs.openSync(path.join(out.tmp, MANIFEST_FILE), 'wx');
    try {
      fs.writeSync(fd, encodeManifest(manifest));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    out.commit();
    return { dir: out.dest, seq, chunks: chunks.length, entries, bytes, threads, ms: performance.now() - t0 };
  } catch (err) {
    if (err instanceof BirchError) throw err;
    throw new BirchError('IO', `export to ${String(target)} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  } finally {
    if (pool !== undefined) await pool.close().catch(() => undefined);
    snap?.release();
    out?.dispose();
  }
}
