// Shared test helpers: temporary directories, a seeded RNG, key formatting.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Database, MemoryDirectory, type OpenOptions } from '../../engine/index.js';

export function tmpDir(label = 'birch'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`));
}

export function rmDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** mulberry32: a small, fast, seeded PRNG so that every random test can be replayed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
