// B+Tree node pages (leaf and branch): a slot array growing up from the header, cells growing down
// from the end of the page. A checkpoint builds each node whole (node.ts buildNode) and never
// edits a committed one.
//
//   12       14       16            18            20                upper              PAGE_SIZE
//   +--------+--------+-------------+-------------+-- slots --> ... <-- cells ---------+
//   | count  | upper  | fragmented  | reserved    | u16 offsets in key order |  cells  |
//   +--------+--------+-------------+-------------+--------------------------+---------+
//
//  - count: number of slots (cells).
//  - upper: offset of the lowest cell byte (0 in an empty node: no cells).
//  - fragmented: bytes of dead cells inside [upper, PAGE_SIZE); always 0 in a node built whole,
//    kept so that the layout can describe nodes edited in place.
//  - reserved: 0xFFFF. (Format 2 kept the slot of the last insertion here, for per-key splits.)
//
// Leaf cell:   u16 keyLen | u8 flags | u32 valueLen | key | value (inline) or u32 first overflow page
// Branch cell: u32 child  | u16 keyLen | key.  Slot 0 of a branch has an empty key: its child holds
//              every key below slot 1's key. Invariant: keys of child i are >= key i and < key i+1.
//
// Overflow page: the generic header, then OVERFLOW_PAYLOAD bytes of the value. A value's overflow
// pages are one contiguous run; the cell stores the first page and valueLen gives the count.
import { GENERIC_HEADER_SIZE, PAGE_SIZE } from '../pager/page-format.js';

export const NODE_COUNT_OFFSET = GENERIC_HEADER_SIZE;
export const NODE_UPPER_OFFSET = NODE_COUNT_OFFSET + 2;
export const NODE_FRAGMENTED_OFFSET = NODE_UPPER_OFFSET + 2;
export const NODE_RESERVED_OFFSET = NODE_FRAGMENTED_OFFSET + 2;
export const NODE_HEADER_SIZE = NODE_RESERVED_OFFSET + 2;
export const SLOT_SIZE = 2;
export const NODE_RESERVED_VALUE = 0xffff;

export const LEAF_KEY_LEN_OFFSET = 0;
export const LEAF_FLAGS_OFFSET = LEAF_KEY_LEN_OFFSET + 2;
export const LEAF_VALUE_LEN_OFFSET = LEAF_FLAGS_OFFSET + 1;
export const LEAF_CELL_HEADER = LEAF_VALUE_LEN_OFFSET + 4;
export const LEAF_FLAG_OVERFLOW = 1;
export const OVERFLOW_REF_SIZE = 4;

export const BRANCH_CHILD_OFFSET = 0;
export const BRANCH_KEY_LEN_OFFSET = BRANCH_CHILD_OFFSET + 4;
export const BRANCH_CELL_HEADER = BRANCH_KEY_LEN_OFFSET + 2;

export const OVERFLOW_PAYLOAD = PAGE_SIZE - GENERIC_HEADER_SIZE;

/** Bytes a node can give to cells and slots. */
export const NODE_CAPACITY = PAGE_SIZE - NODE_HEADER_SIZE;

/** Keys are 1..MAX_KEY_BYTES bytes. With it, a branch page always holds at least 3 cells. */
export const MAX_KEY_BYTES = 1024;

/**
 * The largest leaf cell kept inline: half a page, so any two cells fit one page and packing cells
 * into pages always succeeds. A larger value moves to overflow pages. This threshold is what keeps 1.1 KB values
 * inline (three to a page) instead of one wasted page each (Voron's old 1 KB threshold cost 4x).
 */
export const MAX_INLINE_LEAF_CELL = Math.floor(NODE_CAPACITY / 2) - SLOT_SIZE;

/** Largest value accepted: 256 MiB (a journal record and the write buffer hold it in memory). */
export const MAX_VALUE_BYTES = 256 * 1024 * 1024;

export function overflowPagesFor(valueBytes: number): number {
  return Math.ceil(valueBytes / OVERFLOW_PAYLOAD);
}

if (BRANCH_CELL_HEADER + MAX_KEY_BYTES + SLOT_SIZE > NODE_CAPACITY / 3) throw new Error('branch pages must hold 3 maximal keys');
if (LEAF_CELL_HEADER + MAX_KEY_BYTES + OVERFLOW_REF_SIZE > MAX_INLINE_LEAF_CELL) throw new Error('a maximal key with an overflow ref must fit inline');
