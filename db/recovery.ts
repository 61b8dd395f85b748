// Opening a database directory: the data file (created if absent), its newest valid meta, and the
// journal's batches since that meta's checkpoint, replayed into a buffer generation.
//
// What recovery handles: a crash at any point leaves (a) the metas of the last two completed
// checkpoints, or one of them torn and the other intact, and (b) journal records, the last ones
// possibly torn or never written. Opening takes the newest valid meta; the journal holds every
// batch after the older meta's checkpoint (segments are recycled only past it), so whichever meta
// opens, every acknowledged batch after it is replayed. Both metas are then brought to the opened
// trees (DataFile.settle), so the free pages recorded with them are free for the next checkpoint.
// Records after a gap (batches missing before them: a damaged record in the middle of the journal)
// are not replayed, and their headers are zeroed, because the batches written from now on take
// the same sequence numbers. Recovery takes time in proportion to the batches since the last
// checkpoint: checkpointBytes bounds it.
import type { DirectoryBackend } from '../pager/backend.js';
import { DATA_FILE, DataFile, createDataFile } from '../pager/data-file.js';
import { checkpointId, pageNo, seq } from '../pager/ids.js';
import type { DbState } from '../pager/meta-format.js';
import { neutralizeGaps, scanJournal, type RecordLoc, type SegmentInfo } from '../journal/journal.js';
import { EMPTY_TREE } from '../btree/tree.js';
import { checkRoots, encodeRoots } from '../btree/roots-format.js';
import { applyOps, type Generation } from './buffer.js';

export interface Recovered {
  /** The checkpoint opened (after settling both metas). */
  state: DbState;
  /** The journal's segments, for the writer to go on from. */
  segments: SegmentInfo[];
  /** The records replayed: the next checkpoint covers them. */
  records: RecordLoc[];
  /** The last batch the database holds. */
  lastSeq: number;
  /** Batches and operations replayed, and how long opening took. */
  replayedBatches: number;
  replayedOps: number;
  ms: number;
  /** Why the journal scan stopped in each segment that did not end cleanly. */
  journalStops: string[];
}

export const INITIAL_STATE: DbState = {
  checkpointId: checkpointId(0),
  seq: seq(0),
  pageCount: 3,
  freeRoot: pageNo(0),
  roots: encodeRoots({ main: EMPTY_TREE, catalog: EMPTY_TREE }),
};

/**
 * Opens `dir` (the caller holds its lock) and replays the journal into `gen`, each operation at
 * its record's last batch (a record becomes visible whole).
 */
export function recover(dir: DirectoryBackend, gen: Generation): Recovered {
  const t0 = performance.now();
  if (!dir.exists(DATA_FILE)) createDataFile(dir, INITIAL_STATE);
  const data = DataFile.open(dir, checkRoots);
  let state: DbState;
  try {
    data.settle();
    state = data.state;
  } finally {
    data.close();
  }
  let ops = 0;
  let batches = 0;
  const scan = scanJournal(dir, state.seq, (rec, body) => {
    const at = rec.header.lastSeq;
    applyOps(gen, body, 0, rec.header.ops, at, at);
    ops += rec.header.ops;
    batches += rec.header.lastSeq - rec.header.firstSeq + 1;
  }, true);
  neutralizeGaps(dir, scan.gaps);
  return {
    state,
    segments: scan.segments,
    records: scan.accepted.map((r) => r.loc),
    lastSeq: scan.lastSeq,
    replayedBatches: batches,
    replayedOps: ops,
    ms: performance.now() - t0,
    journalStops: scan.stops.filter((s) => s !== ''),
  };
}
