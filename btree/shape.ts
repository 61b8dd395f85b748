// Tree shapes for stats(): depth, pages of each kind, leaf fill. Measured by walking every page of
// every tree: O(pages), meant for tools and tests.
import { pageNo } from '../pager/ids.js';
import { iterate } from './cursor.js';
import type { ReadPage, TreeDesc } from './tree.js';
import { childAt, count, isLeaf, leafValue, usedBytes } from './node.js';
import { NODE_CAPACITY, overflowPagesFor } from './node-format.js';
import { decodeCatalogValue, type Roots } from './roots-format.js';
import { DATA_FILE } from '../pager/data-file.js';

export interface TreeStats {
  /** null: the default tree. */
  name: string | null;
  /** Entries in the tree at the published checkpoint (batches since then are in the write buffer). */
  entries: number;
  depth: number;
  leafPages: number;
  branchPages: number;
  overflowPages: number;
  /** Bytes used in leaves over the bytes leaves could hold, 0..1. */
  leafFill: number;
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
  for (const [k, v] of iterate(read, roots.catalog, {})) trees.push(treeShape(read, k.toString('utf8'), decodeCatalogValue(v, k.toString('utf8'), { file: DATA_FILE })));
  return trees;
}
