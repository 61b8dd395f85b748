// The file header page (page 0) and the two meta pages (pages 1 and 2) of the data file.
//
// File header page, written once when the file is created:
//   12             20        24        28
//   +--------------+---------+---------+
//   | magic (8)    | version | pageSize|
//   +--------------+---------+---------+
//
// Meta page (after the generic header):
//   12             20        24        32             40        44          48 ... 112
//   +--------------+---------+---------+--------------+---------+-----------+--------------+
//   | magic (8)    | version | txnId   | journalTxnId | pageCnt | freeRoot  | roots (64)   |
//   +--------------+---------+---------+--------------+---------+-----------+--------------+
//
// `txnId` through `roots` form the database *state* (DbState): the same 88 bytes travel in every
// journal record, so recovery can install the state of the last replayed commit.
//  - txnId: the transaction whose state this is.
//  - journalTxnId: the last journal transaction whose pages the data file holds. A meta is only
//    ever written by a data-file flush, after the flushed pages are durable, so the two are equal
//    in a meta; they are kept apart because the journal record carries the state, not the flush.
//  - pageCount: pages in use, i.e. the next page number at the end of the file.
//  - freeRoot: first page of the free-list chain (0: empty).
//  - roots: opaque to the pager; the engine stores its tree roots there (engine/roots-format.ts).
//
// Invariants: metas are written alternately, slot = flush number % 2, so the other slot always
// holds the previous intact meta; opening picks the valid meta with the highest txnId and refuses
// a file with neither valid.
import { readU32, readU64, writeU32, writeU64 } from './bytes.js';
import { CorruptionError, BirchError } from './errors.js';
import { GENERIC_HEADER_SIZE, PAGE_SIZE, PageKind, initPage, pageKind, sealPage, verifyPage } from './page-format.js';
import { pageNo, txnId, type PageNo, type TxnId } from './ids.js';

export const MAGIC = Buffer.from('BIRCHDB\0', 'latin1');
/** 2: the free list is a bitmap (freelist.ts); 1 stored it as runs. */
export const FORMAT_VERSION = 2;

export const MAGIC_OFFSET = GENERIC_HEADER_SIZE;
export const VERSION_OFFSET = MAGIC_OFFSET + 8;
export const PAGE_SIZE_OFFSET = VERSION_OFFSET + 4;
export const FILE_HEADER_END = PAGE_SIZE_OFFSET + 4;

export const STATE_OFFSET = VERSION_OFFSET + 4;
// Offsets inside the encoded state (also used by the journal record header).
export const STATE_TXN_ID = 0;
export const STATE_JOURNAL_TXN_ID = STATE_TXN_ID + 8;
export const STATE_PAGE_COUNT = STATE_JOURNAL_TXN_ID + 8;
export const STATE_FREE_ROOT = STATE_PAGE_COUNT + 4;
export const STATE_ROOTS = STATE_FREE_ROOT + 4;
export const ROOTS_SIZE = 64;
export const STATE_SIZE = STATE_ROOTS + ROOTS_SIZE;
export const META_END = STATE_OFFSET + STATE_SIZE;

export const FILE_HEADER_PAGE = 0 as PageNo;
export const META_PAGES: readonly PageNo[] = [1 as PageNo, 2 as PageNo];

if (META_END > PAGE_SIZE || FILE_HEADER_END > PAGE_SIZE) throw new Error('meta layout does not fit a page');

export interface DbState {
  readonly txnId: TxnId;
  readonly journalTxnId: TxnId;
  readonly pageCount: number;
  readonly freeRoot: PageNo;
  /** ROOTS_SIZE bytes, owned by the engine. */
  readonly roots: Buffer;
}

export function encodeState(state: DbState, buf: Buffer, off: number): void {
  writeU64(buf, off + STATE_TXN_ID, state.txnId);
  writeU64(buf, off + STATE_JOURNAL_TXN_ID, state.journalTxnId);
  writeU32(buf, off + STATE_PAGE_COUNT, state.pageCount);
  writeU32(buf, off + STATE_FREE_ROOT, state.freeRoot);
  buf.fill(0, off + STATE_ROOTS, off + STATE_ROOTS + ROOTS_SIZE);
  state.roots.copy(buf, off + STATE_ROOTS, 0, ROOTS_SIZE);
}

export function decodeState(buf: Buffer, off: number): DbState {
  return {
    txnId: txnId(readU64(buf, off + STATE_TXN_ID)),
    journalTxnId: txnId(readU64(buf, off + STATE_JOURNAL_TXN_ID)),
    pageCount: readU32(buf, off + STATE_PAGE_COUNT),
    freeRoot: pageNo(readU32(buf, off + STATE_FREE_ROOT)),
    roots: Buffer.from(buf.subarray(off + STATE_ROOTS, off + STATE_ROOTS + ROOTS_SIZE)),
  };
}

export function encodeFileHeader(): Buffer {
  const page = Buffer.alloc(PAGE_SIZE);
  initPage(page, FILE_HEADER_PAGE, PageKind.FileHeader);
  MAGIC.copy(page, MAGIC_OFFSET);
  writeU32(page, VERSION_OFFSET, FORMAT_VERSION);
  writeU32(page, PAGE_SIZE_OFFSET, PAGE_SIZE);
  sealPage(page);
  return page;
}

/** Validates page 0; a file that is not a birchdb file, or one of another version, is refused. */
export function checkFileHeader(page: Buffer, file: string): void {
  verifyPage(page, FILE_HEADER_PAGE, file);
  if (!page.subarray(MAGIC_OFFSET, MAGIC_OFFSET + 8).equals(MAGIC) || pageKind(page) !== PageKind.FileHeader) {
    throw new CorruptionError('file header has no birchdb magic', { file, pageNo: 0 });
  }
  const version = readU32(page, VERSION_OFFSET);
  const size = readU32(page, PAGE_SIZE_OFFSET);
  if (version !== FORMAT_VERSION || size !== PAGE_SIZE) {
    throw new BirchError('FORMAT_UNSUPPORTED', `${file}: format version ${version}, page size ${size}; this birchdb reads version ${FORMAT_VERSION}, page size ${PAGE_SIZE}`);
  }
}

export function encodeMeta(slot: PageNo, state: DbState): Buffer {
  const page = Buffer.alloc(PAGE_SIZE);
  initPage(page, slot, PageKind.Meta);
  MAGIC.copy(page, MAGIC_OFFSET);
  writeU32(page, VERSION_OFFSET, FORMAT_VERSION);
  encodeState(state, page, STATE_OFFSET);
  sealPage(page);
  return page;
}

/** The meta in `page`, or an error saying why it is not a valid meta. */
export function decodeMeta(page: Buffer, slot: PageNo, file: string): DbState | CorruptionError {
  try {
    verifyPage(page, slot, file);
  } catch (err) {
    return err as CorruptionError;
  }
  if (pageKind(page) !== PageKind.Meta || !page.subarray(MAGIC_OFFSET, MAGIC_OFFSET + 8).equals(MAGIC)) {
    return new CorruptionError('meta page has the wrong kind or magic', { file, pageNo: slot });
  }
  if (readU32(page, VERSION_OFFSET) !== FORMAT_VERSION) {
    return new CorruptionError(`meta page has format version ${readU32(page, VERSION_OFFSET)}`, { file, pageNo: slot });
  }
  return decodeState(page, STATE_OFFSET);
}
