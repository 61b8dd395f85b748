// Moving a tree out of the end of the file, so that the file can shrink: every page of the tree at
// or past a boundary page number is copied to a page the sink allocates (the lowest free ones, when
// the caller asks the sink for those), and every node on the way to a moved page is copied too, to
// point at the new page (copy on write: no committed page is changed). Pages below the boundary
// whose subtree has nothing to move keep their place. close() runs this when the file is mostly
// free space (db/checkpoint.ts, compact).
import { pageNo } from '../pager/ids.js';
import { PAGE_NO_OFFSET } from '../pager/page-format.js';
import { overflowPagesFor } from './node-format.js';
import { childAt, count, isLeaf, leafValue, setChildAt, setOverflowRef } from './node.js';
import type { PageSink } from './merge.js';
import type { TreeDesc } from './tree.js';

export function relocateTree(sink: PageSink, desc: TreeDesc, boundary: number): TreeDesc {
  if (desc.root === 0) return desc;
  return { ...desc, root: move(sink, desc.root, boundary) };
}

/** The page number of `no`'s node after the move: `no` itself if nothing under it moved. */
function move(sink: PageSink, no: number, boundary: number): number {
  const page = sink.read(pageNo(no));
  const n = count(page);
  const changes: [number, number][] = [];
  if (isLeaf(page)) {
    for (let i = 0; i < n; i++) {
      const v = leafValue(page, i);
      if (!v.overflow) continue;
      const pages = overflowPagesFor(v.valueLen);
      if (v.at + pages <= boundary) continue;
      const first = sink.allocate(pages);
      for (let k = 0; k < pages; k++) {
        sink.emit(pageNo(first + k), copyAs(sink, sink.read(pageNo(v.at + k)), first + k));
        sink.free(pageNo(v.at + k));
      }
      changes.push([i, first]);
    }
  } else {
    // Every child is read (a leaf below the boundary may hold overflow pages above it): in runs.
    sink.prefetch?.(Array.from({ length: n }, (_, i) => childAt(page, i)));
    for (let i = 0; i < n; i++) {
      const child = childAt(page, i);
      const moved = move(sink, child, boundary);
      if (moved !== child) changes.push([i, moved]);
    }
  }
  if (no < boundary && changes.length === 0) return no;
  const to = sink.allocate(1);
  const copy = copyAs(sink, page, to);
  for (const [i, target] of changes) {
    if (isLeaf(page)) setOverflowRef(copy, i, target);
    else setChildAt(copy, i, target);
  }
  sink.emit(to, copy);
  sink.free(pageNo(no));
  return to;
}

/** A copy of `page` as page `to` (its header's page number rewritten; the sink seals it). */
function copyAs(sink: PageSink, page: Buffer, to: number): Buffer {
  const copy = sink.newPage();
  page.copy(copy);
  copy.writeUInt32LE(to, PAGE_NO_OFFSET);
  return copy;
}
