// db.backup(dir): a compact copy of one snapshot, taken while writes go on, verified before it is
// put in place.
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
import { NodeDirectory } from '../pager/backend.js';
import { BirchError } from '../pager/errors.js';
import { PAGE_SIZE } from '../pager/page-format.js';
import type { CheckReport } from '../btree/verify.js';
import { CompactCopyWriter } from '../db/compact-copy.js';
import type { Snapshot } from './reads.js';
import { NewDirectory } from './new-directory.js';

/** Entries copied between two turns of the event loop. */
const ENTRIES_PER_TURN = 4096;

export interface BackupOptions {
  /** Write every tree into fresh, full pages (the default, and for now the only kind). */
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
  if (o.compact === false) {
    throw new BirchError('UNSUPPORTED', 'backup with compact: false (a page-for-page copy with its journal) is not available yet; the default compact backup copies the same snapshot into fresh pages');
  }
  return { compact: true, ...(o.onProgress !== undefined ? { onProgress: o.onProgress as (p: BackupProgress) => void } : {}) };
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
