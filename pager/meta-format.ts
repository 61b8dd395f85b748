// The file header page (page 0) and the two meta pages (pages 1 and 2) of the data file.
//
// File header page, written once when the file is created:
//   12             20        24        28
//   +--------------+---------+---------+
//   | magic (8)    | version | pageSize|
//   +--------------+---------+---------+
//
// Meta page (after the generic header), one per checkpoint:
//   12             20        24             32        40        44          48 ... 112
//   +--------------+---------+--------------+---------+---------+-----------+--------------+
//   | magic (8)    | version | checkpointId | seq     | pageCnt | freeRoot  | roots (64)   |
//   +--------------+---------+--------------+---------+---------+-----------+--------------+
//
// `checkpointId` through `roots` form the checkpoint's *state* (DbState):
//  - checkpointId: counts checkpoints; checkpoint c writes its meta to slot c % 2, so the other
//    slot always holds the previous intact meta;
//  - seq: every batch up to this sequence number is in the trees; the journal replays the rest;
//  - pageCount: pages in use, i.e. the next page number at the end of the file;
//  - freeRoot: first page of the free-space bitmap chain (0: none);
//  - roots: opaque to the pager; the trees' descriptors (btree/roots-format.ts).
//
// Invariants: a meta is written only after every page its state reaches is durable (data-file
// sync before the meta write); opening picks the valid meta with the highest checkpointId and
// refuses a file with neither valid.
import { readU32, readU64, writeU32, writeU64 } from './bytes.js';
import { CorruptionError, BirchError, type CorruptionSite } from '../platform/errors.js';
import { GENERIC_HEADER_SIZE, PAGE_SIZE, PageKind, initPage, pageKind, sealPage, verifyPage } from './page-format.js';
import { checkpointId, pageNo, seq, type CheckpointId, type PageNo, type Seq } from './ids.js';

export const MAGIC = Buffer.from('BIRCHDB\0', 'latin1');
/**
 * 3: checkpoints of an operation journal (meta: checkpointId, seq). 2: metas of a page-image
 * journal (txnId); 1: the free list stored as runs. Older versions are refused, naming both.
 */
export const FORMAT_VERSION = 3;

export const MAGIC_OFFSET = GENERIC_HEADER_SIZE;
export const VERSION_OFFSET = MAGIC_OFFSET + 8;
export const PAGE_SIZE_OFFSET = VERSION_OFFSET + 4;
export const FILE_HEADER_END = PAGE_SIZE_OFFSET + 4;

export const STATE_OFFSET = VERSION_OFFSET + 4;
// Offsets inside the encoded state.
export const STATE_CHECKPOINT_ID = 0;
export const STATE_SEQ = STATE_CHECKPOINT_ID + 8;
export const STATE_PAGE_COUNT = STATE_SEQ + 8;
export const STATE_FREE_ROOT = STATE_PAGE_COUNT + 4;
export const STATE_ROOTS = STATE_FREE_ROOT + 4;
export const ROOTS_SIZE = 64;
export const STATE_SIZE = STATE_ROOTS + ROOTS_SIZE;
export const META_END = STATE_OFFSET + STATE_SIZE;

export const FILE_HEADER_PAGE = 0 as PageNo;
export const META_PAGES: readonly PageNo[] = [1 as PageNo, 2 as PageNo];

if (META_END > PAGE_SIZE || FILE_HEADER_END > PAGE_SIZE) throw new Error('meta layout does not fit a page');

export interface DbState {
  readonly checkpointId: CheckpointId;
  readonly seq: Seq;
  readonly pageCount: number;
  readonly freeRoot: PageNo;
  /** ROOTS_SIZE bytes, owned by the tree layer. */
  readonly roots: Buffer;
}

/** The meta slot (page number) of checkpoint `id`. */
export function metaPageOf(id: number): PageNo {
  return META_PAGES[id % 2] as PageNo;
}

export function encodeState(state: DbState, buf: Buffer = Buffer.alloc(STATE_SIZE), off = 0): Buffer {
  writeU64(buf, off + STATE_CHECKPOINT_ID, state.checkpointId);
  writeU64(buf, off + STATE_SEQ, state.seq);
  writeU32(buf, off + STATE_PAGE_COUNT, state.pageCount);
  writeU32(buf, off + STATE_FREE_ROOT, state.freeRoot);
  buf.fill(0, off + STATE_ROOTS, off + STATE_ROOTS + ROOTS_SIZE);
  state.roots.copy(buf, off + STATE_ROOTS, 0, ROOTS_SIZE);
  return buf;
}

/** The state at `off` of `buf`; `site` names where it was read, for a CorruptionError. */
export function decodeState(buf: Uint8Array, off = 0, site: CorruptionSite = {}): DbState {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    checkpointId: checkpointId(readU64(b, off + STATE_CHECKPOINT_ID, site)),
    seq: seq(readU64(b, off + STATE_SEQ, site)),
    pageCount: readU32(b, off + STATE_PAGE_COUNT),
    freeRoot: pageNo(readU32(b, off + STATE_FREE_ROOT)),
    roots: Buffer.from(b.subarray(off + STATE_ROOTS, off + STATE_ROOTS + ROOTS_SIZE)),
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
    throw new BirchError('FORMAT_UNSUPPORTED', `${file}: format version ${version}, page size ${size}; this birchdb reads version ${FORMAT_VERSION}, page size ${PAGE_SIZE}`, { site: { file, pageNo: 0 } });
  }
}

export function encodeMeta(state: DbState): Buffer {
  const slot = metaPageOf(state.checkpointId);
  const page = Buffer.alloc(PAGE_SIZE);
  initPage(page, slot, PageKind.Meta);
  MAGIC.copy(page, MAGIC_OFFSET);
  writeU32(page, VERSION_OFFSET, FORMAT_VERSION);
  encodeState(state, page, STATE_OFFSET);
  sealPage(page);
  return page;
}

/**
 * Checks a meta's roots area (its layout belongs to the trees' layer: btree/roots-format.ts),
 * throwing a CorruptionError at `site` if it is damaged.
 */
export type RootsCheck = (roots: Buffer, site: CorruptionSite) => void;

/**
 * The meta in `page`, or an error saying why it is not a valid meta. `checkRoots` also judges its
 * roots: a meta whose descriptors are damaged is invalid like any other, so that the other meta
 * opens instead (and settling never copies the damage over it).
 */
export function decodeMeta(page: Buffer, slot: PageNo, file: string, checkRoots?: RootsCheck): DbState | CorruptionError {
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
  // A checkpoint id or seq of 2^53 or more makes the meta invalid like any other damage: the
  // other meta is used.
  let state: DbState;
  try {
    state = decodeState(page, STATE_OFFSET, { file, pageNo: slot });
    checkRoots?.(state.roots, { file, pageNo: slot });
  } catch (err) {
    if (err instanceof CorruptionError) return err;
    throw err;
  }
  if (metaPageOf(state.checkpointId) !== slot) return new CorruptionError(`meta of checkpoint ${state.checkpointId} sits in the wrong slot`, { file, pageNo: slot });
  return state;
}
