// Shared test helpers: temporary directories, a seeded RNG, key formatting.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BirchError, Database, MemoryDirectory, type OpenOptions } from '../../engine/index.js';

/** An assert.throws/rejects predicate: a BirchError with this stable code. */
export const isCode = (code: string) => (e: unknown): boolean => e instanceof BirchError && e.code === code;

export function tmpDir(label = 'birch'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`));
}

export function rmDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** The seeded PRNG the benchmarks use, so that every random test can be replayed. */
export { prng as rng } from '../../bin/bench/workloads.js';

export function key(n: number, width = 10): string {
  return String(n).padStart(width, '0');
}

/** A database on an in-memory directory, plus a way to reopen it. */
export function memDb(opts: OpenOptions = {}): { db: Database; dir: MemoryDirectory; reopen(): Database } {
  const dir = new MemoryDirectory();
  const o = { journalSegmentSize: 256 * 1024, ...opts, backend: dir };
  const handle = {
    dir,
    db: Database.open('mem', o),
    reopen(): Database {
      if (!handle.db.closed) handle.db.close();
      handle.db = Database.open('mem', o);
      return handle.db;
    },
  };
  return handle;
}

export function assertClean(db: Database): void {
  const r = db.check();
  if (!r.ok) throw new Error(`check() failed:\n${r.errors.slice(0, 20).join('\n')}`);
}
