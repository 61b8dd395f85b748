// The generic header that every page of the data file starts with. Kind-specific layouts
// (meta, tree nodes, overflow, free list) start at GENERIC_HEADER_SIZE and are described in
// their own *-format.ts files.
//
//   0        4        8    9    10       12
//   +--------+--------+----+----+--------+---- kind-specific ...
//   |checksum| pageNo |kind|flag|reserved|
//   +--------+--------+----+----+--------+
//
// Invariants:
//  - checksum = xxh32(page[4, PAGE_SIZE)), so it also covers the page number: a page written to
//    the wrong place fails verification at its real place.
//  - a page is sealed (checksum written) exactly once, when its transaction commits; committed
//    pages are never modified in place afterwards.
import { readU32, readU8, writeU32, writeU8 } from './bytes.js';
import { checksum, checksumInPlace } from './checksum.js';
import { CorruptionError } from '../platform/errors.js';
import type { PageNo } from './ids.js';

export const PAGE_SIZE = 4096;

export const CHECKSUM_OFFSET = 0;
export const PAGE_NO_OFFSET = CHECKSUM_OFFSET + 4;
export const KIND_OFFSET = PAGE_NO_OFFSET + 4;
export const FLAGS_OFFSET = KIND_OFFSET + 1;
export const RESERVED_OFFSET = FLAGS_OFFSET + 1;
export const GENERIC_HEADER_SIZE = RESERVED_OFFSET + 2;

export const enum PageKind {
  FileHeader = 1,
  Meta = 2,
  Leaf = 3,
  Branch = 4,
  Overflow = 5,
  FreeList = 6,
}

export const PAGE_KIND_NAMES: Record<number, string> = {
  1: 'file header',
  2: 'meta',
  3: 'leaf',
  4: 'branch',
  5: 'overflow',
  6: 'free list',
};

/** Pages 0..2 are the file header and the two meta slots; tree data starts here. */
export const FIRST_DATA_PAGE = 3;

export function pagesFor(bytes: number): number {
  return Math.ceil(bytes / PAGE_SIZE);
}
export function pageOffsetBytes(page: number): number {
  return page * PAGE_SIZE;
}

export function pageKind(page: Buffer): number {
  return readU8(page, KIND_OFFSET);
}
export function pageNoOf(page: Buffer): number {
  return readU32(page, PAGE_NO_OFFSET);
}

/** Starts a fresh page image of the given kind. */
export function initPage(page: Buffer, no: PageNo, kind: PageKind): void {
  page.fill(0);
  writeU32(page, PAGE_NO_OFFSET, no);
  writeU8(page, KIND_OFFSET, kind);
}

/** Writes the checksum; called once per page, at commit. */
export function sealPage(page: Buffer): void {
  writeU32(page, CHECKSUM_OFFSET, checksum(page, PAGE_NO_OFFSET, PAGE_SIZE));
}

/** Throws a CorruptionError naming the page unless the image is the intact page `expected`. */
export function verifyPage(page: Buffer, expected: number, file?: string): void {
  const stored = readU32(page, CHECKSUM_OFFSET);
  const actual = checksum(page, PAGE_NO_OFFSET, PAGE_SIZE);
  if (stored !== actual) {
    throw new CorruptionError(`page checksum mismatch (stored ${stored.toString(16)}, computed ${actual.toString(16)})`, { file, pageNo: expected });
  }
  const no = pageNoOf(page);
  if (no !== expected) throw new CorruptionError(`page carries page number ${no}`, { file, pageNo: expected });
}

/**
 * verifyPage for a page at byte `off` of shared memory, checksummed in place: `words` is an
 * Int32Array over the same memory as `bytes`, and `off` a multiple of PAGE_SIZE.
 */
export function verifyPageAt(bytes: Buffer, words: Int32Array, off: number, expected: number, file?: string): void {
  const stored = readU32(bytes, off + CHECKSUM_OFFSET);
  const actual = checksumInPlace(bytes, words, off + PAGE_NO_OFFSET, off + PAGE_SIZE, 0);
  if (stored !== actual) {
    throw new CorruptionError(`page checksum mismatch (stored ${stored.toString(16)}, computed ${actual.toString(16)})`, { file, pageNo: expected });
  }
  const no = readU32(bytes, off + PAGE_NO_OFFSET);
  if (no !== expected) throw new CorruptionError(`page carries page number ${no}`, { file, pageNo: expected });
}
