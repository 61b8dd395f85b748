// An export thread (export.ts): a reader thread that cuts the key ranges it is sent into chunks.
//
// For a job [from, to) of one tree it writes every chunk whose first entry lies in the range:
// chunks end where the entries say (db/export-format.ts), so a range's first chunk may start
// after `from` (the entries before it belong to the chunk the previous range ends) and its last
// may run past `to`. It walks the range with one cursor over the tree's leaves.
import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { BirchError } from '../platform/errors.js';
import { decodeState } from '../pager/meta-format.js';
import { ChunkBuilder, endsChunk, hex32, type ChunkInfo } from '../db/export-format.js';
import { checksum } from '../pager/checksum.js';
import { openReader } from './reader.js';
import type { ReaderHandle } from './reader-handles.js';

export interface ExportWorkerInit {
  handle: ReaderHandle;
  /** The pinned checkpoint's state (encodeState). */
  state: Uint8Array;
  chunkBytes: number;
  /** Where chunk files go, named part-<job>-<n> until the owner orders them. */
  dir: string;
}

export interface ExportJob {
  job: number;
  tree: string;
  from?: Uint8Array;
  to?: Uint8Array;
}

export type FromExportWorker =
  | { kind: 'ready' }
  | { kind: 'done'; job: number; chunks: ChunkInfo[] }
  | { kind: 'failed'; code: string; message: string };

const port = parentPort;
if (port === null) throw new Error('export-worker runs only as a worker thread');
const init = workerData as ExportWorkerInit;

function writeDurably(file: string, bytes: Buffer): void {
  const fd = fs.openSync(file, 'wx');
  try {
    let at = 0;
    while (at < bytes.length) at += fs.writeSync(fd, bytes, at, bytes.length - at);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

try {
  const reader = await openReader(init.handle);
  const snap = reader.snapshotAt(decodeState(init.state), { scan: true });
  const { chunkBytes } = init;
  const builder = new ChunkBuilder();

  const runJob = (job: ExportJob): ChunkInfo[] => {
    const from = job.from === undefined ? undefined : Buffer.from(job.from);
    const to = job.to === undefined ? undefined : Buffer.from(job.to);
    const out: ChunkInfo[] = [];
    const tree = job.tree === '' ? {} : { tree: job.tree };
    const b = builder;
    b.reset();
    const emit = (): void => {
      const first = (b.first as Buffer).toString('hex');
      const last = (b.last as Buffer).toString('hex');
      const { entries, rawBytes } = b;
      const bytes = b.finish(job.tree);
      const file = `part-${job.job}-${out.length}`;
      writeDurably(path.join(init.dir, file), bytes);
      out.push({ file, tree: job.tree, first, last, entries, rawBytes, bytes: bytes.length, xxh32: hex32(checksum(bytes)) });
    };
    // Whether the next entry starts a chunk: the tree's first does; past `from`, the one after an entry that ends a chunk.
    let open = true;
    if (from !== undefined) {
      const before = snap.range({ ...tree, lt: from, reverse: true, limit: 1 }).next();
      open = before.done === true || endsChunk(before.value[0], before.value[1].length, chunkBytes);
    }
    const it = snap.range(from === undefined ? tree : { ...tree, gte: from });
    try {
      for (const [key, value] of it) {
        if (!open || b.entries === 0) {
          // A chunk would start here: it is the next range's if the key is past this one.
          if (to !== undefined && Buffer.compare(key, to) >= 0) break;
        }
        const ends = endsChunk(key, value.length, chunkBytes);
        if (!open) {
          open = ends;
          continue;
        }
        b.add(key, value);
        if (ends) emit();
      }
    } finally {
      it.return?.();
    }
    if (b.entries > 0) emit();
    return out;
  };

  port.on('message', (msg: ExportJob | { kind: 'close' }) => {
    if ('kind' in msg) {
      snap.release();
      reader.close();
      port.close();
      return;
    }
    try {
      port.postMessage({ kind: 'done', job: msg.job, chunks: runJob(msg) } satisfies FromExportWorker);
    } catch (err) {
      port.postMessage({ kind: 'failed', code: err instanceof BirchError ? err.code : 'IO', message: err instanceof Error ? err.message : String(err) } satisfies FromExportWorker);
    }
  });
  port.postMessage({ kind: 'ready' } satisfies FromExportWorker);
} catch (err) {
  port.postMessage({ kind: 'failed', code: err instanceof BirchError ? err.code : 'IO', message: err instanceof Error ? err.message : String(err) } satisfies FromExportWorker);
}
