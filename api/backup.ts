// db.backup(dir): a compact copy of one snapshot, taken while writes go on, verified before it is
// put in place; or, with compact: false, a page-for-page copy of a checkpoint (backupPages).
//
// What it holds against writers: only its snapshot (the pages of the snapshot's checkpoint are not
// reused until it is released, and its buffered batches stay in memory). It reads on the caller's
// thread in slices of ENTRIES_PER_TURN entries, letting the event loop run between them, so that
// writes (and their acknowledgements) go on meanwhile; it releases the snapshot as soon as the
// last entry is copied, before the check.
//
// What it writes (db/compact-copy.ts): a new data file, every tree in key order in full pages, no
// free page, no journal. A failure never leaves a backup that looks whole: the copy is built in a
// temporary directory beside the target (`.<name>.backup-<pid>-<random>`), synced, opened and
// checked like any database (check(), every tree's entry count against what was copied), and only
// then renamed to the target and the parent directory synced. Any failure removes the temporary
// directory. The target must not exist. Restoring is opening the backup.
import fs from 'node:fs';
import path from 'node:path';
import { NodeDirectory } from '../pager/backend.js';
import { DATA_FILE } from '../pager/data-file.js';
import { META_PAGES, encodeFileHeader, encodeMeta, metaPageOf } from '../pager/meta-format.js';
import { BirchError } from '../platform/errors.js';
import { PAGE_SIZE, pageOffsetBytes } from '../pager/page-format.js';
import type { CheckReport } from '../btree/verify.js';
import { CompactCopyWriter } from '../db/compact-copy.js';
import type { Snapshot } from './reads.js';
import { NewDirectory } from './new-directory.js';

/** Entries copied between two turns of the event loop. */
const ENTRIES_PER_TURN = 4096;

export interface BackupOptions {
  /**
   * true (the default): every tree in key order into fresh, full pages, rebuilt on your thread.
   * false: the data file as of a checkpoint made first, copied page for page by the OS (its free
   * pages too): several times faster, no smaller than the file.
   */
  compact?: boolean;
  /** Called after each slice of entries, and once per phase: drives a progress bar. */
  onProgress?: (progress: BackupProgress) => void;
}

export interface BackupProgress {
  phase: 'copy' | 'check' | 'done';
  /** The tree being copied: '' for the default tree. */
  tree: string;
  /** Entries copied so far, over all trees. */
  entries: number;
  /** The entries of the snapshot's checkpoint, over all trees: an estimate of the total (batches still in the write buffer are not counted). */
  estimatedEntries: number;
  /** Bytes of the copy's data file so far. */
  bytes: number;
}

export interface BackupResult {
  /** The backup's directory (absolute). */
  dir: string;
  /** The last batch it holds. */
  seq: number;
  entries: number;
  /** Named trees (the default tree not counted). */
  trees: number;
  bytes: number;
  ms: number;
}

/** What a page-for-page backup needs of the database. */
export interface PageCopySource {
  /** The database's directory (its data file is copied). */
  readonly path: string;
  checkpoint(): Promise<void>;
  snapshot(): Snapshot;
}

/** What the backup needs of a database opened on the copy: the same calls as Birch's. */
export interface OpenedCopy {
  check(): CheckReport;
  trees(): string[];
  snapshot(): { checkpointedEntries(tree: string | undefined): number; release(): void };
  close(): Promise<void>;
}

export function backupOptionsOf(opts: unknown): Required<Pick<BackupOptions, 'compact'>> & Pick<BackupOptions, 'onProgress'> {
  if (opts === undefined) return { compact: true };
  if (typeof opts !== 'object' || opts === null) throw new BirchError('BAD_OPTION', 'backup options must be an object');
  const o = opts as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'compact' && k !== 'onProgress') throw new BirchError('BAD_OPTION', `unknown backup option '${k}'; the options are compact and onProgress`);
  if (o.compact !== undefined && typeof o.compact !== 'boolean') throw new BirchError('BAD_OPTION', 'backup option compact must be a boolean');
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new BirchError('BAD_OPTION', 'backup option onProgress must be a function');
  return { compact: o.compact !== false, ...(o.onProgress !== undefined ? { onProgress: o.onProgress as (p: BackupProgress) => void } : {}) };
}

/** Opens the copy in `tmp` and checks it: check(), its trees, every tree's entry count. Throws CORRUPTION. */
async function checkCopy(tmp: string, openCopy: (dir: string) => Promise<OpenedCopy>, named: string[], counts: Map<string, number>): Promise<void> {
  const copy = await openCopy(tmp);
  let problems: string[];
  try {
    const r = copy.check();
    problems = [...r.errors];
    const trees = copy.trees();
    if (trees.join('\0') !== named.join('\0')) problems.push(`the copy holds trees [${trees.join(', ')}], the snapshot [${named.join(', ')}]`);
    // check() found every descriptor's count equal to its leaf cells: compare the descriptors.
    const view = copy.snapshot();
    try {
      for (const t of [undefined, ...trees]) {
        const got = view.checkpointedEntries(t);
        const want = counts.get(t ?? '');
        if (want !== got) problems.push(`tree '${t ?? ''}' holds ${got} entries in the copy, ${String(want)} were copied`);
      }
    } finally {
      view.release();
    }
  } finally {
    await copy.close();
  }
  if (problems.length > 0) throw new BirchError('CORRUPTION', `the backup failed its check, and was removed: ${problems.join('; ')}`, { site: { file: tmp } });
}

/**
 * backup(dir, { compact: false }): everything acknowledged so far checkpointed, that checkpoint
 * pinned, then the data file copied by the OS (copy_file_range where it can) while writes go on.
 * The copy of a page the pinned trees reach is exact: such a page does not change while pinned.
 * Other pages (free in that checkpoint, or past its end) may be copied half-written by later
 * checkpoints, which does not matter: the copy's free list says they are free. Then the copy gets
 * the pinned checkpoint's meta alone (the other slot zeroed), is cut to its pages, synced and
 * checked like a compact backup.
 */
export async function backupPages(db: PageCopySource, target: string, opts: unknown, openCopy: (dir: string) => Promise<OpenedCopy>): Promise<BackupResult> {
  const t0 = performance.now();
  let out: NewDirectory | undefined;
  let snap: Snapshot | undefined;
  try {
    const o = backupOptionsOf(opts);
    out = new NewDirectory(target, 'backup');
    await db.checkpoint();
    snap = db.snapshot();
    const base = snap.checkpointed;
    const state = base.state;
    const named = base.names();
    const counts = new Map<string, number>([undefined, ...named].map((t) => [t ?? '', snap?.checkpointedEntries(t) ?? 0]));
    const entries = [...counts.values()].reduce((a, b) => a + b, 0);
    const bytes = state.pageCount * PAGE_SIZE;
    o.onProgress?.({ phase: 'copy', tree: '', entries: 0, estimatedEntries: entries, bytes: 0 });
    const copyPath = path.join(out.tmp, DATA_FILE);
    await fs.promises.copyFile(path.join(db.path, DATA_FILE), copyPath);
    const file = new NodeDirectory(out.tmp).open(DATA_FILE, { create: false });
    try {
      file.setLength(bytes);
      file.write(0, encodeFileHeader());
      for (const slot of META_PAGES) file.write(pageOffsetBytes(slot), Buffer.alloc(PAGE_SIZE));
      file.write(pageOffsetBytes(metaPageOf(state.checkpointId)), encodeMeta(state));
      file.sync();
    } finally {
      file.close();
    }
    snap.release();
    o.onProgress?.({ phase: 'check', tree: '', entries, estimatedEntries: entries, bytes });
    await checkCopy(out.tmp, openCopy, named, counts);
    out.commit();
    o.onProgress?.({ phase: 'done', tree: '', entries, estimatedEntries: entries, bytes });
    return { dir: out.dest, seq: state.seq, entries, trees: named.length, bytes: fs.statSync(path.join(out.dest, DATA_FILE)).size, ms: performance.now() - t0 };
  } catch (err) {
    if (err instanceof BirchError) throw err;
    throw new BirchError('IO', `backup to ${String(target)} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  } finally {
    snap?.release();
    out?.dispose();
  }
}

function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Copies `snap` (released here, whatever happens) into a new database at `target`. `openCopy`
 * opens a database directory (the public open()), for the check.
 */
export async function backupSnapshot(snap: Snapshot, target: string, opts: unknown, openCopy: (dir: string) => Promise<OpenedCopy>): Promise<BackupResult> {
  const t0 = performance.now();
  let out: NewDirectory | undefined;
  try {
    const o = backupOptionsOf(opts);
    out = new NewDirectory(target, 'backup');
    const tmp = out.tmp;
    const dir = new NodeDirectory(tmp);

    const named = snap.trees();
    const seq = snap.seq;
    const estimatedEntries = [undefined, ...named].reduce((n, t) => n + snap.checkpointedEntries(t), 0);
    const writer = new CompactCopyWriter(dir);
    const counts = new Map<string, number>();
    let entries = 0;
    const report = (phase: BackupProgress['phase'], tree: string): void => {
      o.onProgress?.({ phase, tree, entries, estimatedEntries, bytes: writer.pages * PAGE_SIZE });
    };
    try {
      for (const tree of [undefined, ...named]) {
        writer.startTree(tree);
        const it = snap.range(tree === undefined ? {} : { tree });
        try {
          for (;;) {
            let n = 0;
            let r = it.next();
            while (!r.done) {
              writer.add(r.value[0], r.value[1]);
              if (++n === ENTRIES_PER_TURN) break;
              r = it.next();
            }
            entries += n;
            report('copy', tree ?? '');
            if (r.done === true) break;
            await turn();
          }
        } finally {
          it.return?.();
        }
        counts.set(tree ?? '', writer.endTree().entries);
      }
      snap.release();
      writer.finish(seq);
    } catch (err) {
      writer.abort();
      throw err;
    }
    const bytes = writer.pages * PAGE_SIZE;

    report('check', '');
    await checkCopy(tmp, openCopy, named, counts);

    out.commit();
    const result: BackupResult = { dir: out.dest, seq, entries, trees: named.length, bytes, ms: performance.now() - t0 };
    o.onProgress?.({ phase: 'done', tree: '', entries, estimatedEntries, bytes });
    return result;
  } catch (err) {
    if (err instanceof BirchError) throw err;
    throw new BirchError('IO', `backup to ${String(target)} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  } finally {
    snap.release();
    out?.dispose();
  }
}
