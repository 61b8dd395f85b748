// stats(): what the core counts and what it can measure cheaply on demand. Tree shapes (depth,
// fill) are measured by walking every page of every tree: O(pages), meant for tools and tests.
import type { BirchError } from '../pager/errors.js';
import { pageNo } from '../pager/ids.js';
import type { Pager } from '../pager/pager.js';
import type { Journal } from '../journal/journal.js';
import { iterate } from './cursor.js';
import type { ReadPage, TreeDesc } from './btree.js';
import { childAt, count, isLeaf, leafValue, usedBytes } from './node.js';
import { NODE_CAPACITY, overflowPagesFor } from './node-format.js';
import { decodeDesc, type Roots } from './roots-format.js';
import type { CommitCounters } from './database.js';

export interface TreeStats {
  name: string | null;
  entries: number;
  depth: number;
  leafPages: number;
  branchPages: number;
  overflowPages: number;
  /** Bytes used in leaves over the bytes leaves could hold, 0..1. */
  leafFill: number;
}

export interface DatabaseStats {
  txnId: number;
  commits: number;
  pagesPerCommit: number;
  lastCommitPages: number;
  journal: {
    records: number;
    pagesWritten: number;
    bytesBeforeCompression: number;
    bytesAfterCompression: number;
    compressionRatio: number;
    bytesWritten: number;
    syncs: number;
    segments: number;
    segmentsCreated: number;
    segmentsRecycled: number;
    recoveredRecords: number;
    /** Records whose body was stored uncompressed (adaptive compression). */
    storedRecords: number;
  };
  dataFile: {
    bytes: number;
    pageCount: number;
    freePages: number;
    pendingPages: number;
    freeRuns: number;
    flushes: number;
    pagesFlushed: number;
    writeRunsPerFlush: number;
    lastFlushWriteRuns: number;
    unflushedPages: number;
    flushedTxnId: number;
  };
  cache: { hits: number; misses: number; bytes: number };
  snapshots: { live: number; oldestTxnId: number | null };
  trees: TreeStats[];
  failed: string | null;
}

export interface StatsSources {
  pager: Pager;
  journal: Journal;
  counters: CommitCounters;
  roots: Roots;
  snapshots: Map<number, number>;
  fatal: BirchError | undefined;
}

export function treeShape(read: ReadPage, name: string | null, desc: TreeDesc): TreeStats {
  const s: TreeStats = { name, entries: desc.entries, depth: desc.depth, leafPages: 0, branchPages: 0, overflowPages: 0, leafFill: 0 };
  if (desc.root === 0) return s;
  let used = 0;
  const visit = (no: number): void => {
    const buf = read(pageNo(no));
    const n = count(buf);
    if (isLeaf(buf)) {
      s.leafPages++;
      used += usedBytes(buf);
      for (let i = 0; i < n; i++) {
        const ref = leafValue(buf, i);
        if (ref.overflow) s.overflowPages += overflowPagesFor(ref.valueLen);
      }
    } else {
      s.branchPages++;
      for (let i = 0; i < n; i++) visit(childAt(buf, i));
    }
  };
  visit(desc.root);
  s.leafFill = used / (s.leafPages * NODE_CAPACITY);
  return s;
}

/** The shape of the default tree and of every named tree. */
export function allTreeShapes(read: ReadPage, roots: Roots): TreeStats[] {
  const trees: TreeStats[] = [treeShape(read, null, roots.main)];
  for (const [k, v] of iterate(read, roots.catalog, {})) trees.push(treeShape(read, k.toString('utf8'), decodeDesc(v)));
  return trees;
}

export function collectStats(src: StatsSources, withTrees = true): DatabaseStats {
  const { pager, journal, counters } = src;
  const j = journal.stats;
  const trees = withTrees ? allTreeShapes((no) => pager.readPage(no), src.roots) : [];
  const oldest = src.snapshots.size === 0 ? null : Math.min(...src.snapshots.keys());
  const f = pager.flushStats;
  return {
    txnId: pager.state.txnId,
    commits: counters.commits,
    pagesPerCommit: counters.commits === 0 ? 0 : counters.pagesCommitted / counters.commits,
    lastCommitPages: counters.lastCommitPages,
    journal: {
      records: j.records,
      pagesWritten: j.pagesWritten,
      bytesBeforeCompression: j.rawBytes,
      bytesAfterCompression: j.compressedBytes,
      compressionRatio: j.compressedBytes === 0 ? 0 : j.rawBytes / j.compressedBytes,
      bytesWritten: j.bytesWritten,
      syncs: j.syncs,
      segments: j.segments,
      segmentsCreated: j.segmentsCreated,
      segmentsRecycled: j.segmentsRecycled,
      recoveredRecords: j.recoveredRecords,
      storedRecords: j.storedRecords,
    },
    dataFile: {
      bytes: pager.fileBytes,
      pageCount: pager.state.pageCount,
      freePages: pager.freeList.free.pages,
      pendingPages: pager.freeList.pendingPages,
      freeRuns: pager.freeList.free.starts.length,
      flushes: f.flushes,
      pagesFlushed: f.pagesFlushed,
      writeRunsPerFlush: f.flushes === 0 ? 0 : f.writeRuns / f.flushes,
      lastFlushWriteRuns: f.lastWriteRuns,
      unflushedPages: pager.unflushed.size,
      flushedTxnId: pager.flushedState.txnId,
    },
    cache: { hits: pager.cache.hits, misses: pager.cache.misses, bytes: pager.cache.sizeBytes },
    snapshots: { live: [...src.snapshots.values()].reduce((a, b) => a + b, 0), oldestTxnId: oldest },
    trees,
    failed: src.fatal?.message ?? null,
  };
}

