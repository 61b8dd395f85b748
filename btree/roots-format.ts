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
import { readU32, readU64, u64Fits, writeU32, writeU64 } from '../pager/bytes.js';
import { CorruptionError, type CorruptionSite } from '../platform/errors.js';
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

/**
 * The descriptor at `off` of `buf`. `site` names where it was read (a meta page, or the catalog's
 * entry of a tree): a descriptor cut short or with an entry count of 2^53 or more is refused there
 * with a CorruptionError.
 */
export function decodeDesc(buf: Buffer, off = 0, site: CorruptionSite & { what?: string } = {}): TreeDesc {
  const { what = 'a tree descriptor', ...where } = site;
  if (buf.length - off < TREE_DESC_SIZE) throw new CorruptionError(`${what} has ${buf.length - off} bytes, not ${TREE_DESC_SIZE}`, where);
  if (!u64Fits(buf, off + DESC_ENTRIES_OFFSET)) throw new CorruptionError(`${what} counts 2^53 or more entries`, where);
  return { root: readU32(buf, off + DESC_ROOT_OFFSET), depth: readU32(buf, off + DESC_DEPTH_OFFSET), entries: readU64(buf, off + DESC_ENTRIES_OFFSET) };
}

/** A catalog value: the descriptor of tree `name`, exactly TREE_DESC_SIZE bytes (CorruptionError at `site` if not). */
export function decodeCatalogValue(raw: Buffer, name: string, site: CorruptionSite = {}): TreeDesc {
  const what = `the catalog's descriptor of tree '${name}'`;
  if (raw.length !== TREE_DESC_SIZE) throw new CorruptionError(`${what} has ${raw.length} bytes, not ${TREE_DESC_SIZE}`, site);
  return decodeDesc(raw, 0, { ...site, what });
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

/** Throws a CorruptionError at `site` if a meta's roots area is damaged (pager/meta-format.ts's RootsCheck). */
export function checkRoots(buf: Buffer, site: CorruptionSite): void {
  decodeRoots(buf, site);
}

/** The roots area `buf` of a meta; `site` names the meta page, for a CorruptionError. */
export function decodeRoots(buf: Buffer, site: CorruptionSite = {}): Roots {
  return {
    main: decodeDesc(buf, ROOTS_MAIN, { ...site, what: "the default tree's descriptor" }),
    catalog: decodeDesc(buf, ROOTS_CATALOG, { ...site, what: "the catalog's descriptor" }),
  };
}
