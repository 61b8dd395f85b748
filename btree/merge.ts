// Merging a checkpoint's operations into a copy-on-write B+Tree, in bulk and in key order.
//
// The operations of one tree arrive sorted by key, one per key (the last one written wins). The
// merge walks down only into subtrees that some operation reaches; every node it reaches is
// rebuilt once, into pages that no reachable tree uses, and the old node is freed; every other
// node keeps its page. That is why a checkpoint costs what it touches, not what it holds: random
// keys touch most leaves once per checkpoint however many commits put them there, and ascending
// keys touch only the right edge.
//
// Packing: a run of consecutive touched leaves under one parent is rebuilt as one sequence of
// cells, cut into pages filled up to NODE_CAPACITY (so leaves a random load touches again and
// again stay nearly full instead of settling at a split tree's ~70%). A run whose last page would
// be under half full takes in the untouched leaf after it when that leaf's cells fit the page (one
// more page read and written, one page fewer kept). Then, if the last page is still under half
// full, the last two pages share their cells evenly, so that a run does not end in a sliver;
// except at the tree's right edge, where ascending keys go on filling the last page. Branches are
// packed the same way.
//
// The root: new levels grow on top while a level has more than one node; a root branch left with
// one child gives way to that child. Separators between leaves are the shortest prefix of the
// right page's first key that sorts after the left page's last key.
import { pageNo, type PageNo } from '../pager/ids.js';
import { GENERIC_HEADER_SIZE, PageKind, initPage } from '../pager/page-format.js';
import { LEAF_CELL_HEADER, MAX_INLINE_LEAF_CELL, NODE_CAPACITY, OVERFLOW_PAYLOAD, overflowPagesFor } from './node-format.js';
import {
  buildNode, cellBytes, cellCost, childAt, compareAt, count, isLeaf, keyAt, keyOfLeafCell, makeBranchCell, makeLeafCell, searchLeaf, usedBytes,
} from './node.js';
import { EMPTY_TREE, freeOverflow, type TreeDesc } from './tree.js';

/** What the merge needs from the checkpoint that runs it. */
export interface PageSink {
  /** The newest image of page `no`: committed, or built earlier in this checkpoint. Never modify it. */
  read(no: PageNo): Buffer;
  /** `n` contiguous page numbers no reachable tree uses, for pages about to be built. */
  allocate(n: number): PageNo;
  /** A finished page (its generic header set): sealed and written before the checkpoint's meta. */
  emit(no: PageNo, page: Buffer): void;
  /** A page the new trees no longer reach. */
  free(no: PageNo): void;
  /** A page-sized buffer to build into. */
  newPage(): Buffer;
  /** Pages about to be read (a branch's touched children): read them ahead, in runs, if it pays. */
  prefetch?(nos: readonly number[]): void;
}

/** One operation of a checkpoint on one key: a put (value) or a delete (null). */
export interface MergeOp {
  key: Buffer;
  value: Buffer | null;
}

/** A node of a rebuilt level and the lowest key it may hold (null: the bound of its parent). */
interface Entry {
  sep: Buffer | null;
  page: number;
}

const EMPTY_KEY = Buffer.alloc(0);

export function mergeTree(sink: PageSink, desc: TreeDesc, ops: readonly MergeOp[]): TreeDesc {
  if (ops.length === 0) return desc;
  const m = new Merge(sink);
  let level: Entry[];
  let height: number;
  if (desc.root === 0) {
    const cells: Buffer[] = [];
    for (const op of ops) {
      if (op.value === null) continue;
      cells.push(m.leafCell(op.key, op.value));
      m.entries++;
    }
    level = m.packLeaves(cells, true);
    height = 1;
  } else {
    m.entries = desc.entries;
    const root = sink.read(pageNo(desc.root));
    if (isLeaf(root)) {
      level = m.packLeaves(m.mergeLeafCells(pageNo(desc.root), root, ops, 0, ops.length), true);
      height = 1;
    } else {
      level = m.mergeChildren(pageNo(desc.root), root, desc.depth, ops, 0, ops.length, true);
      height = desc.depth - 1;
    }
  }
  while (level.length > 1) {
    level = m.packBranches(level);
    height++;
  }
  const top = level[0];
  if (top === undefined) {
    if (m.entries !== 0) throw new Error(`birchdb assertion failed: an empty tree counts ${m.entries} entries`);
    return EMPTY_TREE;
  }
  let root = top.page;
  for (;;) {
    if (height <= 1) break;
    const page = sink.read(pageNo(root));
    if (count(page) > 1) break;
    sink.free(pageNo(root));
    root = childAt(page, 0);
    height--;
  }
  return { root, depth: height, entries: m.entries };
}

/** A leaf cell for a put: the value inline, or written to a run of overflow pages allocated from `sink`. */
export function leafCellFor(sink: Pick<PageSink, 'allocate' | 'emit' | 'newPage'>, key: Buffer, value: Buffer): Buffer {
  if (LEAF_CELL_HEADER + key.length + value.length <= MAX_INLINE_LEAF_CELL) return makeLeafCell(key, value, value.length, 0);
  const pages = overflowPagesFor(value.length);
  const first = sink.allocate(pages);
  for (let k = 0; k < pages; k++) {
    const page = sink.newPage();
    initPage(page, pageNo(first + k), PageKind.Overflow);
    value.copy(page, GENERIC_HEADER_SIZE, k * OVERFLOW_PAYLOAD, Math.min(value.length, (k + 1) * OVERFLOW_PAYLOAD));
    sink.emit(pageNo(first + k), page);
  }
  return makeLeafCell(key, null, value.length, first);
}

class Merge {
  readonly #sink: PageSink;
  entries = 0;
  constructor(sink: PageSink) {
    this.#sink = sink;
  }

  leafCell(key: Buffer, value: Buffer): Buffer {
    return leafCellFor(this.#sink, key, value);
  }

  /** The cells of leaf `page` with ops[lo, hi) applied; the old leaf (and replaced values) freed. */
  mergeLeafCells(no: PageNo, page: Buffer, ops: readonly MergeOp[], lo: number, hi: number): Buffer[] {
    const sink = this.#sink;
    const free = (p: PageNo): void => sink.free(p);
    const n = count(page);
    const cells: Buffer[] = [];
    let i = 0;
    for (let j = lo; j < hi; j++) {
      const op = ops[j] as MergeOp;
      // The cells before the op's key, found by binary search from i: a leaf of dozens of cells
      // usually takes a few operations per checkpoint, so searching beats walking every cell.
      const r = searchLeaf(page, op.key, i);
      const found = r >= 0;
      const a = found ? r : ~r;
      while (i < a) cells.push(cellBytes(page, i++, true));
      if (found) {
        freeOverflow(page, i++, free);
        if (op.value === null) this.entries--;
        else cells.push(this.leafCell(op.key, op.value));
      } else if (op.value !== null) {
        cells.push(this.leafCell(op.key, op.value));
        this.entries++;
      }
    }
    while (i < n) cells.push(cellBytes(page, i++, true));
    sink.free(no);
    return cells;
  }

  /**
   * The children of branch `no` (at height `height`) with ops[lo, hi) merged into them: a list of
   * nodes at height - 1, the first with a null separator. The old branch is freed.
   */
  mergeChildren(no: PageNo, page: Buffer, height: number, ops: readonly MergeOp[], lo: number, hi: number, rightEdge: boolean): Entry[] {
    const sink = this.#sink;
    const n = count(page);
    const kids: Entry[] = [];
    /** Consecutive touched leaves, merged as one run of cells (height 2 only). */
    let run: Buffer[] | undefined;
    let runSep: Buffer | null = null;
    /** Bytes in the last page of the run if it were cut now (greedy fill). */
    let runTail = 0;
    const addToRun = (cells: readonly Buffer[]): void => {
      for (const c of cells) {
        (run as Buffer[]).push(c);
        const cost = cellCost(c);
        runTail = runTail + cost > NODE_CAPACITY ? cost : runTail + cost;
      }
    };
    const endRun = (atEdge: boolean): void => {
      if (run === undefined) return;
      const packed = this.packLeaves(run, atEdge);
      const first = packed[0];
      if (first !== undefined) first.sep = runSep;
      for (const e of packed) kids.push(e);
      run = undefined;
    };
    // ops[ends[i - 1], ends[i]) go to child i: their keys sort below separator i + 1.
    const ends: number[] = new Array(n);
    const touched: number[] = [];
    let e = lo;
    for (let i = 0; i < n; i++) {
      const start = e;
      if (i + 1 < n) {
        while (e < hi && compareAt(page, i + 1, (ops[e] as MergeOp).key, false) > 0) e++;
      } else e = hi;
      ends[i] = e;
      if (e > start) touched.push(childAt(page, i));
    }
    sink.prefetch?.(touched);
    let j = lo;
    for (let i = 0; i < n; i++) {
      const child = pageNo(childAt(page, i));
      const sep = i === 0 ? null : Buffer.from(keyAt(page, i, false));
      const end = ends[i] as number;
      const lastChild = i === n - 1;
      if (end === j) {
        if (run !== undefined && runTail > 0 && runTail < NODE_CAPACITY / 2) {
          // The run would end in a page under half full: take this leaf in if it fits that page.
          const leafPage = sink.read(child);
          if (runTail + usedBytes(leafPage) <= NODE_CAPACITY) {
            addToRun(this.mergeLeafCells(child, leafPage, ops, j, j));
            if (lastChild) endRun(rightEdge);
            continue;
          }
        }
        endRun(false);
        kids.push({ sep, page: child });
        continue;
      }
      const childPage = sink.read(child);
      if (height === 2) {
        if (run === undefined) {
          run = [];
          runSep = sep;
          runTail = 0;
        }
        addToRun(this.mergeLeafCells(child, childPage, ops, j, end));
      } else {
        const sub = this.packBranches(this.mergeChildren(child, childPage, height - 1, ops, j, end, rightEdge && lastChild));
        const first = sub[0];
        if (first !== undefined) first.sep = sep;
        for (const e of sub) kids.push(e);
      }
      j = end;
    }
    endRun(rightEdge);
    const first = kids[0];
    if (first !== undefined) first.sep = null;
    sink.free(no);
    return kids;
  }

  /** Leaf cells (in key order) into leaf pages. */
  packLeaves(cells: readonly Buffer[], rightEdge: boolean): Entry[] {
    const out: Entry[] = [];
    for (const [start, end] of cut(cells, rightEdge)) {
      const no = this.#sink.allocate(1);
      const page = this.#sink.newPage();
      initPage(page, no, PageKind.Leaf);
      buildNode(page, cells.slice(start, end));
      this.#sink.emit(no, page);
      const prev = cells[start - 1];
      out.push({ sep: prev === undefined ? null : shortestSeparator(keyOfLeafCell(prev), keyOfLeafCell(cells[start] as Buffer)), page: no });
    }
    return out;
  }

  /** Nodes of one level into branch pages above them. */
  packBranches(kids: readonly Entry[]): Entry[] {
    if (kids.length === 0) return [];
    const cells = kids.map((k, i) => makeBranchCell(i === 0 || k.sep === null ? EMPTY_KEY : k.sep, k.page));
    const out: Entry[] = [];
    for (const [start, end] of cut(cells, false)) {
      const no = this.#sink.allocate(1);
      const page = this.#sink.newPage();
      initPage(page, no, PageKind.Branch);
      // A branch page's first cell has an empty key: its child takes everything below the second.
      const own = cells.slice(start, end);
      own[0] = makeBranchCell(EMPTY_KEY, (kids[start] as Entry).page);
      buildNode(page, own);
      this.#sink.emit(no, page);
      out.push({ sep: (kids[start] as Entry).sep, page: no });
    }
    return out;
  }
}

/**
 * Cuts cells into pages: [start, end) index pairs. Each page is filled up to NODE_CAPACITY; if the
 * last page would be under half full, the last two share their cells evenly (unless `rightEdge`).
 * Every cell costs at most half a page (MAX_INLINE_LEAF_CELL), so every page takes at least one
 * cell and any two cells fit one page.
 */
export function cut(cells: readonly Buffer[], rightEdge: boolean): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  while (start < cells.length) {
    let used = 0;
    let end = start;
    while (end < cells.length && used + cellCost(cells[end] as Buffer) <= NODE_CAPACITY) used += cellCost(cells[end++] as Buffer);
    out.push([start, end]);
    start = end;
  }
  const last = out[out.length - 1];
  const prev = out[out.length - 2];
  if (!rightEdge && last !== undefined && prev !== undefined) {
    const bytes = (s: number, e: number): number => {
      let n = 0;
      for (let i = s; i < e; i++) n += cellCost(cells[i] as Buffer);
      return n;
    };
    if (bytes(last[0], last[1]) < NODE_CAPACITY / 2) {
      // Move cells from the end of the previous page while that brings the two closer.
      let split = last[0];
      let left = bytes(prev[0], split);
      let right = bytes(split, last[1]);
      while (split - 1 > prev[0]) {
        const c = cellCost(cells[split - 1] as Buffer);
        if (right + c > NODE_CAPACITY || Math.abs(left - c - (right + c)) >= Math.abs(left - right)) break;
        left -= c;
        right += c;
        split--;
      }
      prev[1] = split;
      last[0] = split;
    }
  }
  return out;
}

/** The shortest prefix of `right` that is still greater than `left` (so left < sep <= right). */
export function shortestSeparator(left: Buffer, right: Buffer): Buffer {
  let p = 0;
  while (p < left.length && p < right.length && left[p] === right[p]) p++;
  return Buffer.from(right.subarray(0, Math.min(right.length, p + 1)));
}
