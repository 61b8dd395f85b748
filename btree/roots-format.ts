// The engine's part of the database state: the roots area of the meta page and journal record
// (pager/meta-format.ts, ROOTS_SIZE bytes), and the catalog's values.
//
// Tree descriptor (16 bytes):
//   0        4        8                  16
//   +--------+--------+------------------+
//   | root   | depth  | entries (u64)    |
//   +--------+--------+------------------+
//   root 0 means the tree is empty (page 0 is the file header, never a tree page).
//
// Roots area: the default tree's descriptor at ROOTS_MAIN, the catalog tree's at ROOTS_CATALOG.
// The catalog maps a tree name (UTF-8 bytes) to that tree's descriptor.
import { readU32, readU64, writeU32, writeU64 } from '../pager/bytes.js';
import { ROOTS_SIZE } from '../pager/meta-format.js';
import type { TreeDesc } from './tree.js';

export const DESC_ROOT_OFFSET = 0;
export const DESC_DEPTH_OFFSET = DESC_ROOT_OFFSET + 4;
export const DESC_ENTRIES_OFFSET = DESC_DEPTH_OFFSET + 4;
export const TREE_DESC_SIZE = DESC_ENTRIES_OFFSET + 8;

export const ROOTS_MAIN = 0;
export const ROOTS_CATALOG = ROOTS_MAIN + TREE_DESC_SIZE;
export const ROOTS_END = ROOTS_CATALOG + TREE_DESC_SIZE;
if (ROOTS_END > ROOTS_SIZE) throw new Error('roots do not fit the meta roots area');

export function encodeDesc(desc: TreeDesc, buf: Buffer = Buffer.alloc(TREE_DESC_SIZE), off = 0): Buffer {
  writeU32(buf, off + DESC_ROOT_OFFSET, desc.root);
  writeU32(buf, off + DESC_DEPTH_OFFSET, desc.depth);
  writeU64(buf, off + DESC_ENTRIES_OFFSET, desc.entries);
  return buf;
}

export function decodeDesc(buf: Buffer, off = 0): TreeDesc {
  return { root: readU32(buf, off + DESC_ROOT_OFFSET), depth: readU32(buf, off + DESC_DEPTH_OFFSET), entries: readU64(buf, off + DESC_ENTRIES_OFFSET) };
}

export interface Roots {
  main: TreeDesc;
  catalog: TreeDesc;
}

export function encodeRoots(roots: Roots): Buffer {
  const buf = Buffer.alloc(ROOTS_SIZE);
  encodeDesc(roots.main, buf, ROOTS_MAIN);
  encodeDesc(roots.catalog, buf, ROOTS_CATALOG);
  return buf;
}

export function decodeRoots(buf: Buffer): Roots {
  return { main: decodeDesc(buf, ROOTS_MAIN), catalog: decodeDesc(buf, ROOTS_CATALOG) };
}
