// Building a tree from scratch, bottom-up, from entries that arrive in ascending key order: what a
// compacting backup writes (and an import will). Unlike a checkpoint's merge (btree/merge.ts),
// there is no old tree to read and nothing to free, and the entries need not all be in memory:
// each level keeps at most two pages' worth of cells, and writes out its first page whenever it
// holds more, filled up to NODE_CAPACITY. At the end each level cuts what it holds with the
// merge's own rule (the last two pages share their cells evenly when the last would be under half
// full), so no level ends in a sliver, and every page but those last two is full.
//
// Pages are allocated from the sink as they are finished, so a sink that hands out consecutive
// numbers gets them in the order it receives them: overflow runs just before the leaf that points
// to them, each branch just after its last child.
import { PageKind, initPage } from '../pager/page-format.js';
import { NODE_CAPACITY } from './node-format.js';
import { buildNode, cellCost, keyOfLeafCell, makeBranchCell } from './node.js';
import { cut, leafCellFor, shortestSeparator, type PageSink } from './merge.js';
import { EMPTY_TREE, type TreeDesc } from './tree.js';

/** What the builder needs: fresh page numbers, page buffers, and somewhere to put finished pages. */
export type BuildSink = Pick<PageSink, 'allocate' | 'emit' | 'newPage'>;

const EMPTY_KEY = Buffer.alloc(0);

/** One level's cells not yet written; for a branch level, each cell's child and separator too. */
interface Level {
  cells: Buffer[];
  /** Branch levels: the lowest key each child may hold (null: the first child of the level). */
  seps: (Buffer | null)[];
  children: number[];
  cost: number;
  /** Pages this level has written so far. */
  written: number;
}

export class TreeBuilder {
  readonly #sink: BuildSink;
  readonly #levels: Level[] = [];
  #entries = 0;
  #lastKey: Buffer | undefined;
  /** The last key of the last leaf written: the left side of the next leaf's separator. */
  #leafLastKey: Buffer | undefined;
  #done = false;

  constructor(sink: BuildSink) {
    this.#sink = sink;
  }

  get entries(): number {
    return this.#entries;
  }

  /** Adds an entry; keys must be strictly ascending (unsigned byte order). */
  add(key: Buffer, value: Buffer): void {
    if (this.#done) throw new Error('birchdb assertion failed: the tree was already finished');
    if (this.#lastKey !== undefined && Buffer.compare(this.#lastKey, key) >= 0) throw new Error('birchdb assertion failed: a tree is built from strictly ascending keys');
    const cell = leafCellFor(this.#sink, key, value);
    this.#lastKey = keyOfLeafCell(cell);
    this.#entries++;
    this.#push(0, cell, null, 0);
  }

  /** Writes what is left, level by level, and returns the tree's descriptor. */
  finish(): TreeDesc {
    if (this.#done) throw new Error('birchdb assertion failed: the tree was already finished');
    this.#done = true;
    if (this.#entries === 0) return EMPTY_TREE;
    for (let level = 0; ; level++) {
      const l = this.#levels[level] as Level;
      const pages = cut(l.cells, false);
      if (l.written === 0 && pages.length === 1) {
        // The only page of the highest level: the root, with no parent to tell.
        return { root: this.#write(level, 0, l.cells.length, false), depth: level + 1, entries: this.#entries };
      }
      for (const [start, end] of pages) this.#writeAndPush(level, start, end);
      l.cells = [];
      l.seps = [];
      l.children = [];
      l.cost = 0;
    }
  }

  #level(level: number): Level {
    let l = this.#levels[level];
    if (l === undefined) {
      l = { cells: [], seps: [], children: [], cost: 0, written: 0 };
      this.#levels[level] = l;
    }
    return l;
  }

  #push(level: number, cell: Buffer, sep: Buffer | null, child: number): void {
    const l = this.#level(level);
    l.cells.push(cell);
    if (level > 0) {
      l.seps.push(sep);
      l.children.push(child);
    }
    l.cost += cellCost(cell);
    // More than two pages' worth: the first page is full and can go (what stays is more than a
    // page, so the level's last two pages are still cut together at the end).
    if (l.cost <= 2 * NODE_CAPACITY) return;
    let end = 0;
    let used = 0;
    while (used + cellCost(l.cells[end] as Buffer) <= NODE_CAPACITY) used += cellCost(l.cells[end++] as Buffer);
    this.#writeAndPush(level, 0, end);
    l.cells.splice(0, end);
    if (level > 0) {
      l.seps.splice(0, end);
      l.children.splice(0, end);
    }
    l.cost -= used;
  }

  /** Writes cells [start, end) of `level` as one page and adds it to the level above. */
  #writeAndPush(level: number, start: number, end: number): void {
    const l = this.#levels[level] as Level;
    let sep: Buffer | null;
    if (level === 0) {
      const first = keyOfLeafCell(l.cells[start] as Buffer);
      sep = this.#leafLastKey === undefined ? null : shortestSeparator(this.#leafLastKey, first);
      this.#leafLastKey = Buffer.from(keyOfLeafCell(l.cells[end - 1] as Buffer));
    } else sep = l.seps[start] ?? null;
    const no = this.#write(level, start, end, true);
    this.#push(level + 1, makeBranchCell(sep ?? EMPTY_KEY, no), sep, no);
  }

  #write(level: number, start: number, end: number, counted: boolean): number {
    const l = this.#levels[level] as Level;
    const no = this.#sink.allocate(1);
    const page = this.#sink.newPage();
    initPage(page, no, level === 0 ? PageKind.Leaf : PageKind.Branch);
    const own = l.cells.slice(start, end);
    // A branch page's first cell has an empty key: its child takes everything below the second.
    if (level > 0) own[0] = makeBranchCell(EMPTY_KEY, l.children[start] as number);
    buildNode(page, own);
    this.#sink.emit(no, page);
    if (counted) l.written++;
    return no;
  }
}
