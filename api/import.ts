// db.import(dir): the entries of an export (export.ts) written into this database.
//
// Every chunk is checked before anything is written: the manifest against its checksum, each
// listed file against its size and checksum in the manifest, then its header, body and entries
// (db/export-format.ts), its tree, key range and count against the manifest. A missing, damaged
// or foreign chunk is refused with BAD_EXPORT naming it, and the database is left as it was. Then
// the chunks are read again and written in batches; the order does not matter (chunks hold
// disjoint keys), and a file that changed between the two reads is refused the same way (the
// batches written before it stay).
//
// Import adds the export's entries, replacing the values of keys the database already holds; into
// a new, empty database it restores the export exactly.
import fs from 'node:fs';
import path from 'node:path';
import { BirchError } from '../platform/errors.js';
import { checksum } from '../pager/checksum.js';
import { MANIFEST_FILE, decodeChunk, decodeManifest, hex32, type ChunkInfo, type Manifest } from '../db/export-format.js';
import { checkOptionNames } from './input.js';

/** Bytes of entries written per batch (about: a batch ends after the entry that crosses it). */
const BATCH_BYTES = 1 << 20;

export interface ImportOptions {
  onProgress?: (p: { chunks: number; totalChunks: number; entries: number }) => void;
}

export interface ImportResult {
  chunks: number;
  entries: number;
  ms: number;
}

/** What import needs of the database. */
export interface ImportTarget {
  batch(ops: { type: 'put'; key: Buffer; value: Buffer; tree?: string }[]): Promise<void>;
}

function bad(what: string, why: string): BirchError {
  return new BirchError('BAD_EXPORT', `${what}: ${why}; nothing was imported from it`, { site: { file: what } });
}

function readManifest(dir: string): Manifest {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw bad(file, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing (is this a birchdb export directory?)' : (err as Error).message);
  }
  const m = decodeManifest(text);
  if (typeof m === 'string') throw bad(file, m);
  return m;
}

/** A chunk's entries, every check passed; throws BAD_EXPORT naming the file otherwise. */
function readChunk(dir: string, c: ChunkInfo): [Buffer, Buffer][] {
  const file = path.join(dir, path.basename(String(c.file)));
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw bad(file, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'the chunk is missing' : (err as Error).message);
  }
  if (bytes.length !== c.bytes) throw bad(file, `the chunk holds ${bytes.length} bytes, the manifest says ${c.bytes}`);
  if (hex32(checksum(bytes)) !== c.xxh32) throw bad(file, 'the chunk does not match its checksum in the manifest');
  const d = decodeChunk(bytes);
  if (typeof d === 'string') throw bad(file, d);
  if (d.tree !== c.tree) throw bad(file, `the chunk holds tree '${d.tree}', the manifest says '${c.tree}'`);
  if (d.entries.length !== c.entries) throw bad(file, `the chunk holds ${d.entries.length} entries, the manifest says ${c.entries}`);
  const first = d.entries[0]?.[0];
  const last = d.entries[d.entries.length - 1]?.[0];
  if (first?.toString('hex') !== c.first || last?.toString('hex') !== c.last) throw bad(file, 'its first or last key is not the one the manifest lists');
  for (let i = 1; i < d.entries.length; i++) {
    if (Buffer.compare((d.entries[i - 1] as [Buffer, Buffer])[0], (d.entries[i] as [Buffer, Buffer])[0]) >= 0) throw bad(file, 'its keys are not in ascending order');
  }
  return d.entries;
}

export async function importExport(db: ImportTarget, source: unknown, opts: unknown): Promise<ImportResult> {
  const t0 = performance.now();
  if (typeof source !== 'string' || source === '') throw new BirchError('BAD_OPTION', 'import() needs the path of an export directory');
  const o = (opts ?? {}) as ImportOptions;
  if (typeof o !== 'object' || o === null) throw new BirchError('BAD_OPTION', 'import options must be an object');
  checkOptionNames(o, ['onProgress'], 'import()');
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new BirchError('BAD_OPTION', 'import option onProgress must be a function');
  const dir = path.resolve(source);
  const m = readManifest(dir);
  const manifestFile = path.join(dir, MANIFEST_FILE);
  // The chunks must fit together: every one in a listed tree, in export order, no two overlapping.
  const rank = new Map(m.trees.map((t, i) => [t.name, i]));
  const counts = new Map<string, number>();
  let prev: ChunkInfo | undefined;
  for (const c of m.chunks) {
    if (!rank.has(c.tree)) throw bad(manifestFile, `chunk ${String(c.file)} is of tree '${String(c.tree)}', which the manifest does not list`);
    const order = prev === undefined ? 1 : (rank.get(c.tree) as number) - (rank.get(prev.tree) as number) || Buffer.compare(Buffer.from(c.first, 'hex'), Buffer.from(prev.last, 'hex'));
    if (order <= 0) throw bad(manifestFile, `chunk ${String(c.file)} does not come after chunk ${String(prev?.file)} in export order`);
    if (Buffer.compare(Buffer.from(c.first, 'hex'), Buffer.from(c.last, 'hex')) > 0) throw bad(manifestFile, `chunk ${String(c.file)} ends before it starts`);
    counts.set(c.tree, (counts.get(c.tree) ?? 0) + c.entries);
    prev = c;
  }
  for (const t of m.trees) {
    if ((counts.get(t.name) ?? 0) !== t.entries) throw bad(manifestFile, `tree '${t.name}' lists ${t.entries} entries, its chunks ${counts.get(t.name) ?? 0}`);
  }
  // Every chunk checked before anything is written.
  for (const c of m.chunks) readChunk(dir, c);
  let entries = 0;
  let done = 0;
  for (const c of m.chunks) {
    const rows = readChunk(dir, c);
    let ops: { type: 'put'; key: Buffer; value: Buffer; tree?: string }[] = [];
    let opBytes = 0;
    for (const [key, value] of rows) {
      ops.push(c.tree === '' ? { type: 'put', key, value } : { type: 'put', key, value, tree: c.tree });
      opBytes += key.length + value.length;
      if (opBytes >= BATCH_BYTES) {
        await db.batch(ops);
        ops = [];
        opBytes = 0;
      }
    }
    if (ops.length > 0) await db.batch(ops);
    entries += rows.length;
    o.onProgress?.({ chunks: ++done, totalChunks: m.chunks.length, entries });
  }
  return { chunks: m.chunks.length, entries, ms: performance.now() - t0 };
}
