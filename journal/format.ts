// The write-ahead journal's on-disk layout. The journal knows page images, transaction ids and
// an opaque database state (pager/meta-format.ts); it knows nothing of trees.
//
// A journal is a set of preallocated segment files `journal-<seq>.wal`. A segment starts with a
// one-page header; records follow, each starting on a 4 KiB boundary so that a torn write of one
// record can never damage the sector of the record before it.
//
// Segment header (page 0 of the segment):
//   0          4          8          12         16         24
//   +----------+----------+----------+----------+----------+
//   | checksum |  magic   | version  | reserved |   seq    |
//   +----------+----------+----------+----------+----------+
//   checksum = xxh32(header[4, SEGMENT_HEADER_END), seed JOURNAL_SEED).
//   seq grows every time a segment file is (re)started, so records left over from a segment's
//   previous use carry an older seq and are rejected.
//
// Record (at a 4 KiB-aligned offset >= SEGMENT_DATA_OFFSET):
//   0        4         8        16       24        28          32           36        40       44    48
//   +--------+---------+--------+--------+---------+-----------+------------+---------+--------+-----+------------+
//   | magic  | hdr sum | seq    | txnId  | pages   | rawBytes  | compressed | bodySum | length |flags| state (88) |
//   +--------+---------+--------+--------+---------+-----------+------------+---------+--------+-----+------------+
//   followed by the body and zero padding up to `length` (a multiple of 4 KiB). The body is
//   LZ4-compressed, unless flags has REC_FLAG_STORED: then it is stored as is (compressed ==
//   rawBytes), for commits whose pages do not compress (journal.ts: adaptive compression).
//   hdr sum = xxh32(header[8, RECORD_HEADER_SIZE)); bodySum = xxh32(body as written).
//   rawBytes is the body's size before compression.
//
// Record body (before compression): `pages` delta entries, ascending by page number, each one
// page image described as its differences from a base image (delta.ts):
//   0        4        8          12
//   +--------+--------+----------+-------------------------------------------+
//   | pageNo | baseNo | runBytes | runs (runBytes bytes)                     |
//   +--------+--------+----------+-------------------------------------------+
//   run:  0        2        4
//         +--------+--------+----------------+
//         | offset | length | length bytes   |   the image's bytes [offset, offset + length)
//         +--------+--------+----------------+
//   Bytes no run covers equal the base's. baseNo = DELTA_NO_BASE: the base is a page of zeros;
//   otherwise it is page baseNo as of the transaction before this record's (the committed page
//   that this one was copied from). Every rebuilt image must verify (page-format.ts checksum).
//
// Why a base is still intact when recovery needs it: recovery replays records after a meta of
// the data file, in order, rebuilding each image from the images replayed before it or, failing
// that, from the data file. A page freed by txn T is the base of records up to T only, and it is
// reused (so possibly overwritten by a flush) only once both metas of the data file are at or past
// T (engine/database.ts, beginWrite), so no recovery that still replays T can find it overwritten.
//
// Invariants: txn ids of the records that recovery accepts are consecutive; a record is valid
// only if its magic, both checksums, its seq, its sizes and its state's txn id all agree.
import { readU32, readU64, writeU32, writeU64 } from '../pager/bytes.js';
import { checksum } from '../pager/checksum.js';
import { BirchError } from '../pager/errors.js';
import { PAGE_SIZE } from '../pager/page-format.js';
import { STATE_SIZE } from '../pager/meta-format.js';

export const JOURNAL_SEED = 0x4a524e4c;
export const SEGMENT_MAGIC = 0x4c4e4a42; // "BJNL"
export const RECORD_MAGIC = 0x43455242; // "BREC"
/** 2: record bodies are page deltas (1: whole page images, no longer read). */
export const JOURNAL_VERSION = 2;

export const SEG_CHECKSUM_OFFSET = 0;
export const SEG_MAGIC_OFFSET = SEG_CHECKSUM_OFFSET + 4;
export const SEG_VERSION_OFFSET = SEG_MAGIC_OFFSET + 4;
export const SEG_RESERVED_OFFSET = SEG_VERSION_OFFSET + 4;
export const SEG_SEQ_OFFSET = SEG_RESERVED_OFFSET + 4;
export const SEGMENT_HEADER_END = SEG_SEQ_OFFSET + 8;
export const SEGMENT_DATA_OFFSET = PAGE_SIZE;

export const REC_MAGIC_OFFSET = 0;
export const REC_HEADER_SUM_OFFSET = REC_MAGIC_OFFSET + 4;
export const REC_SEQ_OFFSET = REC_HEADER_SUM_OFFSET + 4;
export const REC_TXN_OFFSET = REC_SEQ_OFFSET + 8;
export const REC_PAGES_OFFSET = REC_TXN_OFFSET + 8;
export const REC_RAW_BYTES_OFFSET = REC_PAGES_OFFSET + 4;
export const REC_COMPRESSED_OFFSET = REC_RAW_BYTES_OFFSET + 4;
export const REC_BODY_SUM_OFFSET = REC_COMPRESSED_OFFSET + 4;
export const REC_LENGTH_OFFSET = REC_BODY_SUM_OFFSET + 4;
export const REC_FLAGS_OFFSET = REC_LENGTH_OFFSET + 4;
export const REC_STATE_OFFSET = REC_FLAGS_OFFSET + 4;
export const DELTA_ENTRY_PAGE_OFFSET = 0;
export const DELTA_ENTRY_BASE_OFFSET = DELTA_ENTRY_PAGE_OFFSET + 4;
export const DELTA_ENTRY_RUN_BYTES_OFFSET = DELTA_ENTRY_BASE_OFFSET + 4;
export const DELTA_ENTRY_HEADER_SIZE = DELTA_ENTRY_RUN_BYTES_OFFSET + 4;
export const DELTA_RUN_OFFSET_OFFSET = 0;
export const DELTA_RUN_LENGTH_OFFSET = DELTA_RUN_OFFSET_OFFSET + 2;
export const DELTA_RUN_HEADER_SIZE = DELTA_RUN_LENGTH_OFFSET + 2;
/** baseNo of an entry whose base is a page of zeros (a page number the file can never reach). */
export const DELTA_NO_BASE = 0xffff_ffff;

/** The body is stored uncompressed. */
export const REC_FLAG_STORED = 1;
export const RECORD_HEADER_SIZE = REC_STATE_OFFSET + STATE_SIZE;

export const RECORD_ALIGN = 4096;

export function alignUp4K(bytes: number): number {
  return Math.ceil(bytes / RECORD_ALIGN) * RECORD_ALIGN;
}

export function segmentName(seq: number): string {
  return `journal-${String(seq).padStart(12, '0')}.wal`;
}

export function parseSegmentName(name: string): number | undefined {
  const m = /^journal-(\d{12})\.wal$/.exec(name);
  return m === null ? undefined : Number(m[1]);
}

export function encodeSegmentHeader(seq: number): Buffer {
  const buf = Buffer.alloc(SEGMENT_DATA_OFFSET);
  writeU32(buf, SEG_MAGIC_OFFSET, SEGMENT_MAGIC);
  writeU32(buf, SEG_VERSION_OFFSET, JOURNAL_VERSION);
  writeU64(buf, SEG_SEQ_OFFSET, seq);
  writeU32(buf, SEG_CHECKSUM_OFFSET, checksum(buf, SEG_MAGIC_OFFSET, SEGMENT_HEADER_END, JOURNAL_SEED));
  return buf;
}

/**
 * The segment's seq, or undefined if the header is not intact; throws FORMAT_UNSUPPORTED for an
 * intact header of another version (its records may be needed, so it must not be reused).
 */
export function decodeSegmentHeader(buf: Buffer, name = 'journal segment'): number | undefined {
  if (buf.length < SEGMENT_HEADER_END) return undefined;
  if (readU32(buf, SEG_MAGIC_OFFSET) !== SEGMENT_MAGIC) return undefined;
  if (readU32(buf, SEG_CHECKSUM_OFFSET) !== checksum(buf, SEG_MAGIC_OFFSET, SEGMENT_HEADER_END, JOURNAL_SEED)) return undefined;
  const version = readU32(buf, SEG_VERSION_OFFSET);
  if (version !== JOURNAL_VERSION) {
    throw new BirchError('FORMAT_UNSUPPORTED', `${name} has journal format version ${version}; this build reads version ${JOURNAL_VERSION}`);
  }
  return readU64(buf, SEG_SEQ_OFFSET);
}

export interface RecordHeader {
  seq: number;
  txnId: number;
  pageCount: number;
  rawBytes: number;
  compressedBytes: number;
  bodySum: number;
  length: number;
  flags: number;
  /** The encoded DbState, STATE_SIZE bytes. */
  state: Buffer;
}

export function encodeRecordHeader(h: RecordHeader): Buffer {
  const buf = Buffer.alloc(RECORD_HEADER_SIZE);
  writeU32(buf, REC_MAGIC_OFFSET, RECORD_MAGIC);
  writeU64(buf, REC_SEQ_OFFSET, h.seq);
  writeU64(buf, REC_TXN_OFFSET, h.txnId);
  writeU32(buf, REC_PAGES_OFFSET, h.pageCount);
  writeU32(buf, REC_RAW_BYTES_OFFSET, h.rawBytes);
  writeU32(buf, REC_COMPRESSED_OFFSET, h.compressedBytes);
  writeU32(buf, REC_BODY_SUM_OFFSET, h.bodySum);
  writeU32(buf, REC_LENGTH_OFFSET, h.length);
  writeU32(buf, REC_FLAGS_OFFSET, h.flags);
  h.state.copy(buf, REC_STATE_OFFSET, 0, STATE_SIZE);
  writeU32(buf, REC_HEADER_SUM_OFFSET, checksum(buf, REC_SEQ_OFFSET, RECORD_HEADER_SIZE, JOURNAL_SEED));
  return buf;
}

/** The header in `buf`, or a reason it is not a valid record header. */
export function decodeRecordHeader(buf: Buffer): RecordHeader | string {
  if (readU32(buf, REC_MAGIC_OFFSET) !== RECORD_MAGIC) return 'no record magic';
  if (readU32(buf, REC_HEADER_SUM_OFFSET) !== checksum(buf, REC_SEQ_OFFSET, RECORD_HEADER_SIZE, JOURNAL_SEED)) return 'record header checksum mismatch';
  const h: RecordHeader = {
    seq: readU64(buf, REC_SEQ_OFFSET),
    txnId: readU64(buf, REC_TXN_OFFSET),
    pageCount: readU32(buf, REC_PAGES_OFFSET),
    rawBytes: readU32(buf, REC_RAW_BYTES_OFFSET),
    compressedBytes: readU32(buf, REC_COMPRESSED_OFFSET),
    bodySum: readU32(buf, REC_BODY_SUM_OFFSET),
    length: readU32(buf, REC_LENGTH_OFFSET),
    flags: readU32(buf, REC_FLAGS_OFFSET),
    state: Buffer.from(buf.subarray(REC_STATE_OFFSET, REC_STATE_OFFSET + STATE_SIZE)),
  };
  if (h.rawBytes < h.pageCount * DELTA_ENTRY_HEADER_SIZE) return 'record page count and size disagree';
  if (h.length !== alignUp4K(RECORD_HEADER_SIZE + h.compressedBytes)) return 'record length disagrees with its sizes';
  if ((h.flags & ~REC_FLAG_STORED) !== 0) return `record has unknown flags ${h.flags}`;
  if ((h.flags & REC_FLAG_STORED) !== 0 && h.compressedBytes !== h.rawBytes) return 'stored record body has the wrong size';
  return h;
}
