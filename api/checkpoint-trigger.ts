// When the handle starts a checkpoint: the size of the active buffer generation that calls for
// one, from what the last checkpoint wrote.
import { PAGE_SIZE } from '../pager/page-format.js';
import { ENTRY_OVERHEAD_BYTES } from '../db/buffer.js';

/**
 * Where the next checkpoint starts, from the last one: at checkpointBytes, or at half of it when the
 * last checkpoint wrote few more pages than its operations' bytes fill (under
 * APPEND_PAGES_FACTOR times: keys that land past the tree's end, or in leaves of their own).
 * A checkpoint rewrites every leaf its keys reach. Keys spread over the tree reach about every
 * leaf whatever the buffer holds, so a larger buffer spreads that cost over more operations; keys
 * that append write about their own bytes in new pages however the buffer is cut, so a smaller
 * buffer costs nothing there and holds less memory. Measured (2M puts in order, 1M random, 100 per
 * batch, 2 runs each, the team's 2-core VM): a buffer of half of 32 MiB throughout ran puts in
 * order 1.11-1.15x as fast with a peak RSS of 369-384 MiB against 453-486, and random keys
 * 0.70-0.82x as fast, writing twice the pages, so they keep the whole buffer. With this rule puts
 * in order peaked at 378-401 MiB; random keys ran as before.
 */
export const APPEND_PAGES_FACTOR = 2;
export function checkpointTrigger(checkpointBytes: number, merged: { bytes: number; ops: number } | undefined, pages: number): number {
  if (merged === undefined || merged.ops === 0) return checkpointBytes;
  const dataBytes = Math.max(1, merged.bytes - merged.ops * ENTRY_OVERHEAD_BYTES);
  return pages * PAGE_SIZE <= APPEND_PAGES_FACTOR * dataBytes ? Math.floor(checkpointBytes / 2) : checkpointBytes;
}

