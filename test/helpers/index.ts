// Shared test helpers: temporary directories, a seeded RNG, key formatting, databases on memory.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BirchError, MemoryDirectory, open, type Birch, type BirchOptions } from '../../api/index.js';
import { FaultyDirectory } from '../../pager/faults.js';

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
 * was closed: a clone of the files as they are). `dir` holds the files; the handle opens them
 * through a fault-injecting directory, which crash() uses to stop the old handle (abandon).
 */
export async function memDb(opts: BirchOptions = {}): Promise<{ db: Birch; dir: MemoryDirectory; reopen(): Promise<Birch>; crash(): Promise<Birch> }> {
  const o = { journalSegmentSize: 256 * 1024, ...opts };
  const handle = {
    dir: new MemoryDirectory(),
    faulty: undefined as unknown as FaultyDirectory,
    db: undefined as unknown as Birch,
    async reopen(): Promise<Birch> {
      if (!handle.db.closed) await handle.db.close();
      handle.db = await open('mem', { ...o, backend: handle.faulty });
      return handle.db;
    },
    async crash(): Promise<Birch> {
      const image = handle.dir.clone();
      await abandon(handle.db, handle.faulty);
      handle.dir = image;
      handle.faulty = new FaultyDirectory(image);
      handle.db = await open('mem', { ...o, backend: handle.faulty });
      return handle.db;
    },
  };
  handle.faulty = new FaultyDirectory(handle.dir);
  handle.db = await open('mem', { ...o, backend: handle.faulty });
  return handle;
}

/**
 * Stops a handle as a crash would, for a database opened on `dir` (memDb) whose files the caller
 * already cloned: a sticky fault plan fails every write from now on, so close() writes no data
 * (no checkpoint, no meta; it may still sync, or create and size a journal segment, none of which
 * touches the clone), then stops the handle's threads. close() may fail only with FATAL_IO, a
 * write it needed being refused; any other error is a bug and is thrown.
 */
export async function abandon(db: Birch, dir: FaultyDirectory): Promise<void> {
  dir.setPlan({ op: 'write', n: 1, sticky: true });
  try {
    await db.close();
  } catch (err) {
    if (!isCode('FATAL_IO')(err)) throw err;
  }
}

export function assertClean(db: Birch): void {
  const r = db.check();
  if (!r.ok) throw new Error(`check() failed:\n${r.errors.slice(0, 20).join('\n')}`);
}
