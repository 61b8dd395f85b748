// Reading copy-on-write B+Trees, and freeing one whole. A tree is identified by its descriptor
// (root page, depth, entry count). Trees are written only by checkpoints, in bulk (merge.ts).
//
// Reads go through a PageSource (pager/reader.ts): in place in the shared page cache for the
// thread that serves reads, over private page buffers for the checkpointer and the tools. A point
// read allocates nothing but the value it returns: searches return integers, pages are read where
// they lie, and one copy of the value is made.
//
// Invariants (checked by verify.ts):
//  - all leaves are at depth `depth`; keys are strictly ascending within and across leaves;
//  - a branch's key i bounds its children: keys under child i are >= key i and < key i+1;
//  - no node is empty; a root branch has at least two children;
//  - a committed page is never modified: a checkpoint writes changed nodes to pages that no
//    reachable tree uses.
import { u32 } from '../pager/bytes.js';
import { CorruptionError } from '../platform/errors.js';
import { pageNo, type PageNo } from '../pager/ids.js';
import { GENERIC_HEADER_SIZE } from '../pager/page-format.js';
import { PrivatePages, type PageSource } from '../pager/reader.js';
import { OVERFLOW_PAYLOAD, overflowPagesFor } from './node-format.js';
import { cellAt, childAt, count, isBranch, isLeaf, isOverflowCell, leafValue, searchBranch, searchLeaf, valueLengthOfCell, valueStartOfCell } from './node.js';

export interface TreeDesc {
  readonly root: number;
  readonly depth: number;
  readonly entries: number;
}

export const EMPTY_TREE: TreeDesc = { root: 0, depth: 0, entries: 0 };

export type ReadPage = (no: PageNo) => Buffer;

/** The value of `key` (a copy), or undefined. `pages` is a PageSource, or a function returning private pages. */
export function get(pages: PageSource | ReadPage, desc: TreeDesc, key: Buffer): Buffer | undefined {
  if (desc.root === 0) return undefined;
  const src = typeof pages === 'function' ? new PrivatePages(pages) : pages;
  src.begin();
  try {
    const cell = findCell(src, desc, key);
    return cell < 0 ? undefined : copyValue(src, cell);
  } finally {
    src.end();
  }
}

/**
 * The leaf cell of `key`: its offset in `src.bytes`, or -1 if the tree does not hold the key.
 * Inside src.begin()/end(), on a tree that is not empty. Checks each level's page kind, so that a
 * descriptor that does not match its pages is reported, not followed.
 */
export function findCell(src: PageSource, desc: TreeDesc, key: Buffer): number {
  let no = desc.root;
  let off = src.pageAt(no);
  for (let level = desc.depth; level > 1; level--) {
    const b = src.bytes;
    if (!isBranch(b, off)) throw new CorruptionError(`page ${no} should be a branch at height ${level}`, { pageNo: no });
    no = childAt(b, searchBranch(b, key, off), off);
    off = src.pageAt(no);
  }
  const b = src.bytes;
  if (!isLeaf(b, off)) throw new CorruptionError(`page ${no} should be a leaf`, { pageNo: no });
  const i = searchLeaf(b, key, 0, off);
  return i < 0 ? -1 : cellAt(b, i, off);
}

/**
 * A copy of the value of the leaf cell at `cell` in `src.bytes` (inside begin()/end()). An
 * overflow value is gathered page by page; those reads may miss, so the leaf's offset is not
 * valid after this call.
 */
export function copyValue(src: PageSource, cell: number): Buffer {
  const b = src.bytes;
  const len = valueLengthOfCell(b, cell);
  const at = valueStartOfCell(b, cell);
  if (!isOverflowCell(b, cell)) {
    const out = Buffer.allocUnsafe(len);
    b.copy(out, 0, at, at + len);
    return out;
  }
  return copyOverflow(src, u32(b, at), len);
}

/** A value of `len` bytes from the overflow pages starting at `first`. */
export function copyOverflow(src: PageSource, first: number, len: number, out: Buffer = Buffer.allocUnsafe(len)): Buffer {
  const pages = overflowPagesFor(len);
  for (let k = 0; k < pages; k++) {
    const off = src.pageAt(first + k);
    const n = Math.min(OVERFLOW_PAYLOAD, len - k * OVERFLOW_PAYLOAD);
    src.bytes.copy(out, k * OVERFLOW_PAYLOAD, off + GENERIC_HEADER_SIZE, off + GENERIC_HEADER_SIZE + n);
  }
  return out.subarray(0, len);
}

/** A copy of slot i's value of a private leaf page, gathered from overflow pages through `read` if it has them. */
export function readValue(read: ReadPage, leaf: Buffer, i: number): Buffer {
  const src = new PrivatePages(read);
  src.bytes = leaf;
  return copyValue(src, cellAt(leaf, i));
}

/** Calls `free` for every page of the tree: its nodes and its values' overflow pages (dropping it). */
export function freeTree(read: ReadPage, desc: TreeDesc, free: (no: PageNo) => void): void {
  if (desc.root === 0) return;
  const visit = (no: PageNo): void => {
    const buf = read(no);
    const n = count(buf);
    if (isLeaf(buf)) {
      for (let i = 0; i < n; i++) freeOverflow(buf, i, free);
    } else {
      for (let i = 0; i < n; i++) visit(pageNo(childAt(buf, i)));
    }
    free(no);
  };
  visit(pageNo(desc.root));
}

/** Frees the overflow pages of leaf slot i's value, if it has any. */
export function freeOverflow(leaf: Buffer, i: number, free: (no: PageNo) => void): void {
  const ref = leafValue(leaf, i);
  if (!ref.overflow) return;
  const pages = overflowPagesFor(ref.valueLen);
  for (let k = 0; k < pages; k++) free(pageNo(ref.at + k));
}
