// Figures for backups, exports, reader threads and compaction (a benchmark, not a test): one
// engine per process.
//   node dist/perf/backup-compact.js birchdb|lmdb [keys] [valueBytes]
//   (default 1,000,000 keys of 16 B, values of 100 B; values are half random bytes, half zeros)
// Fills the database durably in random order, then measures: a copy of the data file with cp
// (read, write, fsync), the engine's backup with no writes running (compacting, and page for page), its backup while 4 callers
// write (and how many writes they got through); for birchdb, export with 1, 2 and 4 threads and
// an import of it into a new database; random reads from 1 and 2 other threads for 5 s each while
// 4 callers write on the main thread; the file after deleting 90% of the keys, and, for birchdb,
// after compact() with the database open and after a fresh load of the keys left.
// Prints one JSON line; peak RSS beside it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { open, type Birch } from '../api/index.js';
import { prng } from '../bin/bench/workloads.js';

interface Store {
  put(ops: [Buffer, Buffer | null][]): Promise<void>;
  backup(dir: string): Promise<void>;
  /** A copy of the pages as they are (birchdb compact: false, lmdb-js backup(dir, false)). */
  backupPages(dir: string): Promise<void>;
  compact?(): Promise<void>;
  birch?: Birch;
  file: string;
  close(): Promise<void>;
}

const engine = process.argv[2] ?? 'birchdb';
const keys = Number(process.argv[3] ?? 1_000_000);
const valueBytes = Number(process.argv[4] ?? 100);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'birch-perf-backup-'));
const key = (i: number): Buffer => Buffer.from(String(i).padStart(16, '0'));
/** Half random, half zeros: about what LZ4 makes of real values, neither incompressible nor all one byte. */
const value = (): Buffer => {
  const v = Buffer.alloc(valueBytes);
  randomBytes(valueBytes >> 1).copy(v);
  return v;
};

async function openStore(dir: string): Promise<Store> {
  if (engine === 'birchdb') {
    const db = await open(dir);
    return {
      put: (ops) => db.batch(ops.map(([k, v]) => (v === null ? { type: 'del' as const, key: k } : { type: 'put' as const, key: k, value: v }))),
      backup: async (d) => {
        await db.backup(d);
      },
      backupPages: async (d) => {
        await db.backup(d, { compact: false });
      },
      compact: async () => {
        await db.compact();
      },
      file: path.join(dir, 'data.birch'),
      birch: db,
      close: () => db.close(),
    };
  }
  const lmdb = (await import('lmdb')) as unknown as {
    open(o: object): { transaction<T>(f: () => T): Promise<T>; put(k: Buffer, v: Buffer): void; remove(k: Buffer): void; backup(p: string, compact: boolean): Promise<void>; close(): Promise<void> };
  };
  const db = lmdb.open({ path: dir, compression: false, encoding: 'binary', keyEncoding: 'binary', overlappingSync: false });
  return {
    put: (ops) => db.transaction(() => {
      for (const [k, v] of ops) if (v === null) db.remove(k);
      else db.put(k, v);
    }),
    // lmdb-js copies into a directory that exists (data.mdb inside it), compacting.
    backup: (d) => db.backup(d, true).then(() => undefined),
    backupPages: (d) => db.backup(d, false).then(() => undefined),
    file: path.join(dir, 'data.mdb'),
    close: () => db.close(),
  };
}

function ms(t0: number): number {
  return Math.round(performance.now() - t0);
}

const dir = path.join(root, 'db');
const s = await openStore(dir);
const rand = prng(42);
const order = Array.from({ length: keys }, (_, i) => i);
for (let i = keys - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1));
  [order[i], order[j]] = [order[j] as number, order[i] as number];
}
for (let i = 0; i < keys; i += 1000) await s.put(order.slice(i, i + 1000).map((k) => [key(k), value()]));
/** Writers during backups and reads overwrite existing keys: the data stays the same size. */
const wrand = prng(43);
const out: Record<string, number | string> = { engine, keys, machine: `${os.cpus().length} x ${os.cpus()[0]?.model.trim() ?? '?'}` };
// birchdb's data file holds what checkpoints merged: everything, before it is copied.
await s.birch?.checkpoint();
out.fileBytes = fs.statSync(s.file).size;

let t0 = performance.now();
execFileSync('cp', [s.file, path.join(root, 'cp-copy')]);
execFileSync('sync', ['-f', path.join(root, 'cp-copy')]);
out.cpMs = ms(t0);

fs.mkdirSync(path.join(root, 'b1'), { recursive: true });
const b1 = engine === 'birchdb' ? path.join(root, 'b1', 'copy') : path.join(root, 'b1');
t0 = performance.now();
await s.backup(b1);
out.backupMs = ms(t0);

fs.mkdirSync(path.join(root, 'p1'), { recursive: true });
t0 = performance.now();
await s.backupPages(engine === 'birchdb' ? path.join(root, 'p1', 'copy') : path.join(root, 'p1'));
out.backupPagesMs = ms(t0);

fs.mkdirSync(path.join(root, 'b2'), { recursive: true });
const b2 = engine === 'birchdb' ? path.join(root, 'b2', 'copy') : path.join(root, 'b2');
const during = await whileWriting(async () => {
  const start = performance.now();
  await s.backup(b2);
  return ms(start);
});
out.backupWhileWritingMs = during.result;
out.writesDuringBackup = during.writes;

/** Keeps 4 callers writing single puts on this thread while `f` runs; how many they got through. */
async function whileWriting<T>(f: () => Promise<T>): Promise<{ result: T; writes: number }> {
  let halt = false;
  let n = 0;
  const ws = Array.from({ length: 4 }, async () => {
    for (let i = 0; !halt; i++) {
      await s.put([[key(Math.floor(wrand() * keys)), value()]]);
      n++;
    }
  });
  const result = await f();
  halt = true;
  await Promise.all(ws);
  return { result, writes: n };
}

if (s.birch !== undefined) {
  const db = s.birch;
  await db.checkpoint();
  for (const threads of [1, 2, 4]) {
    t0 = performance.now();
    const r = await db.export(path.join(root, `export-${threads}`), { threads });
    out[`export${threads}Ms`] = ms(t0);
    out[`export${threads}ChunksPerS`] = Math.round(r.chunks / ((performance.now() - t0) / 1000));
    out.exportChunks = r.chunks;
    out.exportBytes = r.bytes;
  }
  const into = await open(path.join(root, 'imported'));
  t0 = performance.now();
  await into.import(path.join(root, 'export-4'));
  out.importMs = ms(t0);
  await into.close();
}

const READ_MS = 5000;
for (const threads of [1, 2]) {
  const { result, writes: w } = await whileWriting(() =>
    Promise.all(Array.from({ length: threads }, (_, t) => {
      const handle = s.birch?.readerHandle();
      const worker = new Worker(new URL('./read-worker.js', import.meta.url), {
        workerData: { engine, handle, path: dir, keys, ms: READ_MS, seed: 7 + t },
        transferList: handle === undefined ? [] : [handle.port],
      });
      return new Promise<{ reads: number; found: number }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
    })));
  out[`readerThreads${threads}ReadsPerS`] = Math.round(result.reduce((n, r) => n + r.reads, 0) / (READ_MS / 1000));
  out[`readerThreads${threads}Found`] = result.reduce((n, r) => n + r.found, 0) / result.reduce((n, r) => n + r.reads, 0);
  out[`readerThreads${threads}WritesPerS`] = Math.round(w / (READ_MS / 1000));
}

for (let i = 0; i < keys; i += 1000) await s.put(order.slice(i, i + 1000).filter((k) => k % 10 !== 0).map((k) => [key(k), null]));
out.fileAfterDeleteBytes = fs.statSync(s.file).size;
if (s.compact !== undefined) {
  t0 = performance.now();
  await s.compact();
  out.compactMs = ms(t0);
  out.fileAfterCompactBytes = fs.statSync(s.file).size;
}
await s.close();
out.fileAfterCloseBytes = fs.statSync(s.file).size;
const fresh = await openStore(path.join(root, 'fresh'));
for (let i = 0; i < keys; i += 10_000) await fresh.put(Array.from({ length: 1000 }, (_, j) => i + j * 10).filter((k) => k < keys).map((k) => [key(k), value()]));
await fresh.close();
out.freshLoadOfRestBytes = fs.statSync(fresh.file).size;
out.peakRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
console.log(JSON.stringify(out));
fs.rmSync(root, { recursive: true, force: true });
