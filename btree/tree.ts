// Reading copy-on-write B+Trees, and freeing one whole. A tree is identified by its descriptor
// (root page, depth, entry count). Trees are written only by checkpoints, in bulk (merge.ts).
//
// Invariants (checked by verify.ts):
//  - all leaves are at depth `depth`; keys are strictly ascending within and across leaves;
//  - a branch's key i bounds its children: keys under child i are >= key i and < key i+1;
//  - no node is empty; a root branch has at least two children;
//  - a committed page is never modified: a checkpoint writes changed nodes to pages that no
//    reachable tree uses.
import { pageNo, type PageNo } from '../pager/ids.js';
import { GENERIC_HEADER_SIZE } from '../pager/page-format.js';
import { OVERFLOW_PAYLOAD, overflowPagesFor } from './node-format.js';
import { childAt, count, isLeaf, leafValue, searchBranch, searchLeaf } from './node.js';

export interface TreeDesc {
  readonly root: number;
  readonly depth: number;
  readonly entries: number;
}

export const EMPTY_TREE: TreeDesc = { root: 0, depth: 0, entries: 0 };

export type ReadPage = (no: PageNo) => Buffer;

export function findLeaf(read: ReadPage, desc: TreeDesc, key: Buffer): Buffer | undefined {
  if (desc.root === 0) return undefined;
  let page = read(pageNo(desc.root));
  while (!isLeaf(page)) page = read(pageNo(childAt(page, searchBranch(page, key))));
  return page;
}

export function get(read: ReadPage, desc: TreeDesc, key: Buffer): Buffer | undefined {
  const leaf = findLeaf(read, desc, key);
  if (leaf === undefined) return undefined;
  const { index, found } = searchLeaf(leaf, key);
  return found ? readValue(read, leaf, index) : undefined;
}

/** A copy of slot i's value, assembled from overflow pages if it has them. */
export function readValue(read: ReadPage, leaf: Buffer, i: number): Buffer {
  const ref = leafValue(leaf, i);
  if (!ref.overflow) return Buffer.from(leaf.subarray(ref.at, ref.at + ref.valueLen));
  const out = Buffer.allocUnsafe(ref.valueLen);
  const pages = overflowPagesFor(ref.valueLen);
  for (let k = 0; k < pages; k++) {
    const src = read(pageNo(ref.at + k));
    const n = Math.min(OVERFLOW_PAYLOAD, ref.valueLen - k * OVERFLOW_PAYLOAD);
    src.copy(out, k * OVERFLOW_PAYLOAD, GENERIC_HEADER_SIZE, GENERIC_HEADER_SIZE + n);
  }
  return out;
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
