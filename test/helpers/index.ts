// Shared test helpers: temporary directories, a seeded RNG, key formatting, databases on memory.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BirchError, MemoryDirectory, open, type Birch, type BirchOptions } from '../../api/index.js';

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

/**
 * A database on an in-memory directory (the writer and checkpointer on this thread), and ways to
 * reopen it after a clean close or after a crash (every write so far reached the disk, nothing
 * was closed: a clone of the files as they are).
 */
export async function memDb(opts: BirchOptions = {}): Promise<{ db: Birch; dir: MemoryDirectory; reopen(): Promise<Birch>; crash(): Promise<Birch> }> {
  const o = { journalSegmentSize: 256 * 1024, ...opts };
  const handle = {
    dir: new MemoryDirectory(),
    db: undefined as unknown as Birch,
    async reopen(): Promise<Birch> {
      if (!handle.db.closed) await handle.db.close();
      handle.db = await open('mem', { ...o, backend: handle.dir });
      return handle.db;
    },
    async crash(): Promise<Birch> {
      const image = handle.dir.clone();
      await abandon(handle.db);
      handle.dir = image;
      handle.db = await open('mem', { ...o, backend: handle.dir });
      return handle.db;
    },
  };
  handle.db = await open('mem', { ...o, backend: handle.dir });
  return handle;
}

/**
 * Stops a handle as a crash would: nothing more is written (a fault plan fails every later write
 * and sync of this handle's threads) and its threads stop. For databases on a memory directory
 * whose files the caller already cloned.
 */
export async function abandon(db: Birch): Promise<void> {
  try {
    await db.close();
  } catch {
    // A handle that failed closes with its error; the crash image was taken before.
  }
}

export function assertClean(db: Birch): void {
  const r = db.check();
  if (!r.ok) throw new Error(`check() failed:\n${r.errors.slice(0, 20).join('\n')}`);
}
