// Reading node pages, and building one whole (layout: node-format.ts). Functions take the page
// buffer directly so that the hot paths (search) allocate nothing.
import { readU16, readU32, u16, u32, writeU16, writeU32, writeU8 } from '../pager/bytes.js';
import { KIND_OFFSET, PAGE_SIZE, PageKind } from '../pager/page-format.js';
import {
  BRANCH_CELL_HEADER, BRANCH_CHILD_OFFSET, BRANCH_KEY_LEN_OFFSET, LEAF_CELL_HEADER, LEAF_FLAGS_OFFSET, LEAF_FLAG_OVERFLOW,
  LEAF_KEY_LEN_OFFSET, LEAF_VALUE_LEN_OFFSET, NODE_COUNT_OFFSET, NODE_FRAGMENTED_OFFSET, NODE_HEADER_SIZE,
  NODE_RESERVED_OFFSET, NODE_RESERVED_VALUE, NODE_UPPER_OFFSET, OVERFLOW_REF_SIZE, SLOT_SIZE,
} from './node-format.js';

// Every reader takes the page as `page` plus `base`, the byte offset where the page starts in it:
// 0 for a page of its own, a frame's offset for a page read in place in the shared page cache.

export function isLeaf(page: Uint8Array, base = 0): boolean {
  return page[base + KIND_OFFSET] === PageKind.Leaf;
}
export function isBranch(page: Uint8Array, base = 0): boolean {
  return page[base + KIND_OFFSET] === PageKind.Branch;
}
export function count(page: Uint8Array, base = 0): number {
  return u16(page, base + NODE_COUNT_OFFSET);
}
function upper(page: Buffer): number {
  const u = readU16(page, NODE_UPPER_OFFSET);
  return u === 0 ? PAGE_SIZE : u; // an empty node has upper 0, meaning "no cells yet"
}
/** Where slot i's cell starts in `page` (an absolute offset: base plus the slot's value). */
export function cellAt(page: Uint8Array, i: number, base = 0): number {
  return base + u16(page, base + NODE_HEADER_SIZE + i * SLOT_SIZE);
}

/**
 * Lays `cells` (in key order) into `page`, whose generic header is set: slots from the header up,
 * cells from the end down. The cells must fit (packing in merge.ts sees to it).
 */
export function buildNode(page: Buffer, cells: readonly Buffer[]): void {
  let bytes = 0;
  for (const c of cells) bytes += c.length + SLOT_SIZE;
  if (NODE_HEADER_SIZE + bytes > PAGE_SIZE) throw new Error('birchdb assertion failed: cells overflow the node');
  let top = PAGE_SIZE;
  for (let i = 0; i < cells.length; i++) {
    const c = cells[i] as Buffer;
    top -= c.length;
    c.copy(page, top);
    writeU16(page, NODE_HEADER_SIZE + i * SLOT_SIZE, top);
  }
  page.fill(0, NODE_HEADER_SIZE + cells.length * SLOT_SIZE, top);
  writeU16(page, NODE_COUNT_OFFSET, cells.length);
  writeU16(page, NODE_UPPER_OFFSET, top === PAGE_SIZE ? 0 : top);
  writeU16(page, NODE_FRAGMENTED_OFFSET, 0);
  writeU16(page, NODE_RESERVED_OFFSET, NODE_RESERVED_VALUE);
}

// ---- cells -------------------------------------------------------------------------------------

export function keyStart(cell: number, leaf: boolean): number {
  return cell + (leaf ? LEAF_CELL_HEADER : BRANCH_CELL_HEADER);
}
export function keyLength(page: Uint8Array, cell: number, leaf: boolean): number {
  return u16(page, cell + (leaf ? LEAF_KEY_LEN_OFFSET : BRANCH_KEY_LEN_OFFSET));
}
/** A view of slot i's key (valid while the page is). */
export function keyAt(page: Buffer, i: number, leaf: boolean): Buffer {
  const cell = cellAt(page, i);
  const start = keyStart(cell, leaf);
  return page.subarray(start, start + keyLength(page, cell, leaf));
}
export function cellSize(page: Buffer, cell: number, leaf: boolean): number {
  if (!leaf) return BRANCH_CELL_HEADER + readU16(page, cell + BRANCH_KEY_LEN_OFFSET);
  const keyLen = readU16(page, cell + LEAF_KEY_LEN_OFFSET);
  return LEAF_CELL_HEADER + keyLen + (isOverflowCell(page, cell) ? OVERFLOW_REF_SIZE : readU32(page, cell + LEAF_VALUE_LEN_OFFSET));
}
/** A view of slot i's whole cell (valid while the page is). */
export function cellBytes(page: Buffer, i: number, leaf: boolean): Buffer {
  const cell = cellAt(page, i);
  return page.subarray(cell, cell + cellSize(page, cell, leaf));
}
export function childAt(page: Uint8Array, i: number, base = 0): number {
  return u32(page, cellAt(page, i, base) + BRANCH_CHILD_OFFSET);
}
/** Points branch slot i at another child (on a page being built, never a committed one). */
export function setChildAt(page: Buffer, i: number, child: number): void {
  writeU32(page, cellAt(page, i) + BRANCH_CHILD_OFFSET, child);
}
/** Points leaf slot i's overflow value at another first page (on a page being built). */
export function setOverflowRef(page: Buffer, i: number, first: number): void {
  const cell = cellAt(page, i);
  writeU32(page, cell + LEAF_CELL_HEADER + readU16(page, cell + LEAF_KEY_LEN_OFFSET), first);
}

// Leaf cells, by the cell's offset (cellAt): no object per read.
/** Whether the leaf cell's value lives in overflow pages. */
export function isOverflowCell(page: Uint8Array, cell: number): boolean {
  return ((page[cell + LEAF_FLAGS_OFFSET] as number) & LEAF_FLAG_OVERFLOW) !== 0;
}
export function valueLengthOfCell(page: Uint8Array, cell: number): number {
  return u32(page, cell + LEAF_VALUE_LEN_OFFSET);
}
/** Where the value's bytes start (inline), or its first overflow page's number is stored (overflow). */
export function valueStartOfCell(page: Uint8Array, cell: number): number {
  return cell + LEAF_CELL_HEADER + u16(page, cell + LEAF_KEY_LEN_OFFSET);
}

export interface LeafValueRef {
  overflow: boolean;
  valueLen: number;
  /** inline: offset of the value bytes in the page; overflow: the first overflow page. */
  at: number;
}
/** Slot i's value, as an object (tools and the verifier; hot paths use the cell functions above). */
export function leafValue(page: Buffer, i: number): LeafValueRef {
  const cell = cellAt(page, i);
  const overflow = isOverflowCell(page, cell);
  const at = valueStartOfCell(page, cell);
  return { overflow, valueLen: valueLengthOfCell(page, cell), at: overflow ? readU32(page, at) : at };
}

/** A leaf cell: the value inline, or (value null) a reference to its first overflow page. */
export function makeLeafCell(key: Buffer, value: Buffer | null, valueLen: number, overflowPage: number): Buffer {
  const overflow = value === null;
  const cell = Buffer.allocUnsafe(LEAF_CELL_HEADER + key.length + (overflow ? OVERFLOW_REF_SIZE : valueLen));
  writeU16(cell, LEAF_KEY_LEN_OFFSET, key.length);
  writeU8(cell, LEAF_FLAGS_OFFSET, overflow ? LEAF_FLAG_OVERFLOW : 0);
  writeU32(cell, LEAF_VALUE_LEN_OFFSET, valueLen);
  key.copy(cell, LEAF_CELL_HEADER);
  if (overflow) writeU32(cell, LEAF_CELL_HEADER + key.length, overflowPage);
  else value.copy(cell, LEAF_CELL_HEADER + key.length);
  return cell;
}

export function makeBranchCell(key: Buffer, child: number): Buffer {
  const cell = Buffer.allocUnsafe(BRANCH_CELL_HEADER + key.length);
  writeU32(cell, BRANCH_CHILD_OFFSET, child);
  writeU16(cell, BRANCH_KEY_LEN_OFFSET, key.length);
  key.copy(cell, BRANCH_CELL_HEADER);
  return cell;
}

/** The key of a leaf cell built by makeLeafCell or taken whole from a page. */
export function keyOfLeafCell(cell: Buffer): Buffer {
  return cell.subarray(LEAF_CELL_HEADER, LEAF_CELL_HEADER + readU16(cell, LEAF_KEY_LEN_OFFSET));
}

// ---- search ------------------------------------------------------------------------------------

/** Keys up to this long are compared in a JS loop, longer ones with Buffer#compare. */
const LOOP_COMPARE_MAX = 32;

/**
 * Compares the `len` bytes at `start` of `page` with `key` as unsigned bytes (negative: the page's
 * bytes sort first). For short keys a plain loop beats Buffer#compare, whose argument checks cost
 * more than the comparison; for long keys with a shared prefix the native compare wins
 * (perf/micro.ts, this machine: 8 B keys 39M vs 16M compares/s, 16 B 27M vs 16M, 64 B 9M vs 15M,
 * 256 B 2.8M vs 16M).
 */
export function compareBytes(page: Uint8Array, start: number, len: number, key: Buffer): number {
  const n = len < key.length ? len : key.length;
  if (n > LOOP_COMPARE_MAX) return -key.compare(page, start, start + len);
  for (let j = 0; j < n; j++) {
    const d = (page[start + j] as number) - (key[j] as number);
    if (d !== 0) return d;
  }
  return len - key.length;
}

/** Compares slot i's key with `key` as unsigned bytes (negative: the slot's key sorts first). */
export function compareAt(page: Uint8Array, i: number, key: Buffer, leaf: boolean, base = 0): number {
  const cell = cellAt(page, i, base);
  return compareBytes(page, keyStart(cell, leaf), keyLength(page, cell, leaf), key);
}

/**
 * Leaf: the slot at or after `from` holding `key`, or, if none does, ~i (negative) where i is the
 * first slot whose key is greater (an integer, so that a search allocates nothing).
 */
export function searchLeaf(page: Uint8Array, key: Buffer, from = 0, base = 0): number {
  let lo = from;
  let hi = count(page, base);
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareAt(page, mid, key, true, base);
    if (c < 0) lo = mid + 1;
    else if (c > 0) hi = mid;
    else return mid;
  }
  return ~lo;
}

/** Branch: the slot whose child covers `key` (slot 0's key counts as minus infinity). */
export function searchBranch(page: Uint8Array, key: Buffer, base = 0): number {
  let lo = 1;
  let hi = count(page, base);
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareAt(page, mid, key, false, base) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

// ---- space -------------------------------------------------------------------------------------

/** Bytes in use by cells and slots (what the fill factor measures). */
export function usedBytes(page: Buffer): number {
  return PAGE_SIZE - upper(page) - readU16(page, NODE_FRAGMENTED_OFFSET) + count(page) * SLOT_SIZE;
}

/** Bytes a cell takes in a node: the cell and its slot. */
export function cellCost(cell: Buffer): number {
  return cell.length + SLOT_SIZE;
}

