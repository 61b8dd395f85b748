// The write-ahead journal's on-disk layout. The journal knows operations (a tree name, a key, a
// value or a tombstone, a tree drop) and the sequence numbers of the batches they came in; it
// knows nothing of pages or trees.
//
// A journal is a set of preallocated segment files `journal-<seq>.wal`. A segment starts with a
// one-page header; records follow, each starting on a 512-byte (sector) boundary, so that writing
// one record never rewrites a sector of the record before it: a torn write can damage only the
// record being written, never an acknowledged one.
//
// Segment header (page 0 of the segment):
//   0          4          8          12         16         24
//   +----------+----------+----------+----------+----------+
//   | checksum |  magic   | version  | reserved | segSeq   |
//   +----------+----------+----------+----------+----------+
//   checksum = xxh32(header[4, SEGMENT_HEADER_END), seed JOURNAL_SEED).
//   segSeq grows every time a segment file is (re)started, so records left over from a segment's
//   previous use carry an older segSeq and are rejected.
//
// Record (at a RECORD_ALIGN-aligned offset >= SEGMENT_DATA_OFFSET), one per group commit:
//   0       4         8        16         24        32       36        40        44       48       52      56
//   +-------+---------+--------+----------+---------+--------+---------+---------+--------+--------+-------+
//   | magic | hdr sum | segSeq | firstSeq | lastSeq | ops    | rawBytes| stored  | bodySum| length | flags |
//   +-------+---------+--------+----------+---------+--------+---------+---------+--------+--------+-------+
//   followed by the body (`stored` bytes) and zero padding up to `length` (a multiple of
//   RECORD_ALIGN). The record holds the batches firstSeq..lastSeq, whole: their operations, in
//   the order they were admitted, `ops` of them, `rawBytes` long before compression. The body is
//   LZ4-compressed (codec.ts framing) unless flags has REC_FLAG_STORED (then stored == rawBytes).
//   hdr sum = xxh32(header[8, RECORD_HEADER_SIZE), seed JOURNAL_SEED); bodySum = xxh32(body as
//   written, seed JOURNAL_SEED).
//
// Operation (in the body, and in the batches the main thread hands the writer thread: one layout):
//   0      1         3        5          9
//   +------+---------+--------+----------+------+-----+-------+
//   | type | treeLen | keyLen | valueLen | tree | key | value |
//   +------+---------+--------+----------+------+-----+-------+
//   OP_PUT: key and value. OP_DEL: key, no value (a tombstone). OP_DROP_TREE: tree, no key, no
//   value: every entry of the tree before it is gone. treeLen 0 names the default tree.
//   Operations are recorded after every condition was decided: replay never decides anything.
//
// Invariants: the records recovery accepts hold consecutive sequence numbers (each firstSeq is the
// previous lastSeq + 1); a record is valid only if its magic, both checksums, its segSeq, its
// sizes and its operations all agree.
import { readU32, readU64, setU16, setU32, u64Fits, writeU32, writeU64 } from '../pager/bytes.js';
import { checksum } from '../pager/checksum.js';
import { BirchError } from '../platform/errors.js';
import { PAGE_SIZE } from '../pager/page-format.js';

export const JOURNAL_SEED = 0x4a524e4c;
export const SEGMENT_MAGIC = 0x4c4e4a42; // "BJNL"
export const RECORD_MAGIC = 0x43455242; // "BREC"
/** 3: records of operations. 2: page deltas, 1: page images (neither is read any more). */
export const JOURNAL_VERSION = 3;

export const SEG_CHECKSUM_OFFSET = 0;
export const SEG_MAGIC_OFFSET = SEG_CHECKSUM_OFFSET + 4;
export const SEG_VERSION_OFFSET = SEG_MAGIC_OFFSET + 4;
export const SEG_RESERVED_OFFSET = SEG_VERSION_OFFSET + 4;
export const SEG_SEQ_OFFSET = SEG_RESERVED_OFFSET + 4;
export const SEGMENT_HEADER_END = SEG_SEQ_OFFSET + 8;
export const SEGMENT_DATA_OFFSET = PAGE_SIZE;

export const REC_MAGIC_OFFSET = 0;
export const REC_HEADER_SUM_OFFSET = REC_MAGIC_OFFSET + 4;
export const REC_SEG_SEQ_OFFSET = REC_HEADER_SUM_OFFSET + 4;
export const REC_FIRST_SEQ_OFFSET = REC_SEG_SEQ_OFFSET + 8;
export const REC_LAST_SEQ_OFFSET = REC_FIRST_SEQ_OFFSET + 8;
export const REC_OPS_OFFSET = REC_LAST_SEQ_OFFSET + 8;
export const REC_RAW_BYTES_OFFSET = REC_OPS_OFFSET + 4;
export const REC_STORED_BYTES_OFFSET = REC_RAW_BYTES_OFFSET + 4;
export const REC_BODY_SUM_OFFSET = REC_STORED_BYTES_OFFSET + 4;
export const REC_LENGTH_OFFSET = REC_BODY_SUM_OFFSET + 4;
export const REC_FLAGS_OFFSET = REC_LENGTH_OFFSET + 4;
export const RECORD_HEADER_SIZE = REC_FLAGS_OFFSET + 4;

/** The body is stored uncompressed. */
export const REC_FLAG_STORED = 1;

export const RECORD_ALIGN = 512;

export const OP_TYPE_OFFSET = 0;
export const OP_TREE_LEN_OFFSET = OP_TYPE_OFFSET + 1;
export const OP_KEY_LEN_OFFSET = OP_TREE_LEN_OFFSET + 2;
export const OP_VALUE_LEN_OFFSET = OP_KEY_LEN_OFFSET + 2;
export const OP_HEADER_SIZE = OP_VALUE_LEN_OFFSET + 4;

export const OP_PUT = 1;
export const OP_DEL = 2;
export const OP_DROP_TREE = 3;
export type OpType = typeof OP_PUT | typeof OP_DEL | typeof OP_DROP_TREE;

if (RECORD_HEADER_SIZE > RECORD_ALIGN || SEGMENT_HEADER_END > SEGMENT_DATA_OFFSET) throw new Error('journal headers do not fit');

export function alignRecord(bytes: number): number {
  return Math.ceil(bytes / RECORD_ALIGN) * RECORD_ALIGN;
}

export function segmentName(segSeq: number): string {
  return `journal-${String(segSeq).padStart(12, '0')}.wal`;
}

export function parseSegmentName(name: string): number | undefined {
  const m = /^journal-(\d{12})\.wal$/.exec(name);
  return m === null ? undefined : Number(m[1]);
}

export function encodeSegmentHeader(segSeq: number): Buffer {
  const buf = Buffer.alloc(SEGMENT_DATA_OFFSET);
  writeU32(buf, SEG_MAGIC_OFFSET, SEGMENT_MAGIC);
  writeU32(buf, SEG_VERSION_OFFSET, JOURNAL_VERSION);
  writeU64(buf, SEG_SEQ_OFFSET, segSeq);
  writeU32(buf, SEG_CHECKSUM_OFFSET, checksum(buf, SEG_MAGIC_OFFSET, SEGMENT_HEADER_END, JOURNAL_SEED));
  return buf;
}

/**
 * The segment's segSeq, or undefined if the header is not intact; throws FORMAT_UNSUPPORTED for an
 * intact header of another version (its records may be needed, so it must not be reused).
 */
export function decodeSegmentHeader(buf: Buffer, name = 'journal segment'): number | undefined {
  if (buf.length < SEGMENT_HEADER_END) return undefined;
  if (readU32(buf, SEG_MAGIC_OFFSET) !== SEGMENT_MAGIC) return undefined;
  if (readU32(buf, SEG_CHECKSUM_OFFSET) !== checksum(buf, SEG_MAGIC_OFFSET, SEGMENT_HEADER_END, JOURNAL_SEED)) return undefined;
  const version = readU32(buf, SEG_VERSION_OFFSET);
  if (version !== JOURNAL_VERSION) {
    throw new BirchError('FORMAT_UNSUPPORTED', `${name} has journal format version ${version}; this birchdb reads version ${JOURNAL_VERSION}`, { site: { file: name } });
  }
  // An intact header whose segSeq is 2^53 or more is damage, not a header never written: its
  // records may be needed, so the journal is refused rather than the segment reused.
  return readU64(buf, SEG_SEQ_OFFSET, { file: name });
}

export interface RecordHeader {
  segSeq: number;
  firstSeq: number;
  lastSeq: number;
  ops: number;
  rawBytes: number;
  storedBytes: number;
  bodySum: number;
  length: number;
  flags: number;
}

export function encodeRecordHeader(h: RecordHeader, buf: Buffer = Buffer.alloc(RECORD_HEADER_SIZE)): Buffer {
  writeU32(buf, REC_MAGIC_OFFSET, RECORD_MAGIC);
  writeU64(buf, REC_SEG_SEQ_OFFSET, h.segSeq);
  writeU64(buf, REC_FIRST_SEQ_OFFSET, h.firstSeq);
  writeU64(buf, REC_LAST_SEQ_OFFSET, h.lastSeq);
  writeU32(buf, REC_OPS_OFFSET, h.ops);
  writeU32(buf, REC_RAW_BYTES_OFFSET, h.rawBytes);
  writeU32(buf, REC_STORED_BYTES_OFFSET, h.storedBytes);
  writeU32(buf, REC_BODY_SUM_OFFSET, h.bodySum);
  writeU32(buf, REC_LENGTH_OFFSET, h.length);
  writeU32(buf, REC_FLAGS_OFFSET, h.flags);
  writeU32(buf, REC_HEADER_SUM_OFFSET, checksum(buf, REC_SEG_SEQ_OFFSET, RECORD_HEADER_SIZE, JOURNAL_SEED));
  return buf;
}

/** The header in `buf`, or a reason it is not a valid record header. */
export function decodeRecordHeader(buf: Buffer): RecordHeader | string {
  if (readU32(buf, REC_MAGIC_OFFSET) !== RECORD_MAGIC) return 'no record magic';
  if (readU32(buf, REC_HEADER_SUM_OFFSET) !== checksum(buf, REC_SEG_SEQ_OFFSET, RECORD_HEADER_SIZE, JOURNAL_SEED)) return 'record header checksum mismatch';
  if (!u64Fits(buf, REC_SEG_SEQ_OFFSET) || !u64Fits(buf, REC_FIRST_SEQ_OFFSET) || !u64Fits(buf, REC_LAST_SEQ_OFFSET)) return 'record has a 64-bit field of 2^53 or more';
  const h: RecordHeader = {
    segSeq: readU64(buf, REC_SEG_SEQ_OFFSET),
    firstSeq: readU64(buf, REC_FIRST_SEQ_OFFSET),
    lastSeq: readU64(buf, REC_LAST_SEQ_OFFSET),
    ops: readU32(buf, REC_OPS_OFFSET),
    rawBytes: readU32(buf, REC_RAW_BYTES_OFFSET),
    storedBytes: readU32(buf, REC_STORED_BYTES_OFFSET),
    bodySum: readU32(buf, REC_BODY_SUM_OFFSET),
    length: readU32(buf, REC_LENGTH_OFFSET),
    flags: readU32(buf, REC_FLAGS_OFFSET),
  };
  if (h.firstSeq < 1 || h.lastSeq < h.firstSeq) return 'record sequence numbers are out of order';
  if (h.rawBytes < h.ops * OP_HEADER_SIZE) return 'record op count and size disagree';
  if (h.length !== alignRecord(RECORD_HEADER_SIZE + h.storedBytes)) return 'record length disagrees with its sizes';
  if ((h.flags & ~REC_FLAG_STORED) !== 0) return `record has unknown flags ${h.flags}`;
  if ((h.flags & REC_FLAG_STORED) !== 0 && h.storedBytes !== h.rawBytes) return 'stored record body has the wrong size';
  return h;
}

// ---- operations ----------------------------------------------------------------------------------

export function opBytes(treeLen: number, keyLen: number, valueLen: number): number {
  return OP_HEADER_SIZE + treeLen + keyLen + valueLen;
}

/**
 * Writes one operation at `off` (which has opBytes() room); returns the end offset. The lengths
 * go through the unchecked setU16/setU32 and the parts are copied with set(): for the few bytes of
 * an operation, Buffer's checked writers and copy() cost more than the bytes (this runs for every
 * put on the caller's thread).
 */
export function writeOp(buf: Buffer, off: number, type: OpType, tree: Buffer | undefined, key: Buffer | undefined, value: Buffer | undefined): number {
  const treeLen = tree?.length ?? 0;
  const keyLen = key?.length ?? 0;
  const valueLen = value?.length ?? 0;
  // Lengths are bounded by the input checks (tree names 255 bytes, keys MAX_KEY_BYTES, values
  // MAX_VALUE_BYTES), so the unchecked stores cannot truncate.
  buf[off + OP_TYPE_OFFSET] = type;
  setU16(buf, off + OP_TREE_LEN_OFFSET, treeLen);
  setU16(buf, off + OP_KEY_LEN_OFFSET, keyLen);
  setU32(buf, off + OP_VALUE_LEN_OFFSET, valueLen);
  off += OP_HEADER_SIZE;
  if (tree !== undefined) {
    buf.set(tree, off);
    off += treeLen;
  }
  if (key !== undefined) {
    buf.set(key, off);
    off += keyLen;
  }
  if (value !== undefined) {
    buf.set(value, off);
    off += valueLen;
  }
  return off;
}

/** One operation as read from a body: views into the body, valid while it is. */
export interface RawOp {
  type: OpType;
  /** Empty for the default tree. */
  tree: Buffer;
  key: Buffer;
  /** PUT only; empty otherwise. */
  value: Buffer;
}

/**
 * Calls `visit` for each of the `count` operations of `body`, in order; returns a reason if the
 * body is malformed (checked before anything is visited, so a bad body visits nothing).
 */
export function forEachOp(body: Buffer, count: number, visit: (op: RawOp) => void): string | undefined {
  const bad = checkOps(body, count);
  if (bad !== undefined) return bad;
  let off = 0;
  for (let i = 0; i < count; i++) {
    const type = body[off] as OpType;
    const treeLen = body.readUInt16LE(off + OP_TREE_LEN_OFFSET);
    const keyLen = body.readUInt16LE(off + OP_KEY_LEN_OFFSET);
    const valueLen = body.readUInt32LE(off + OP_VALUE_LEN_OFFSET);
    const t = off + OP_HEADER_SIZE;
    const k = t + treeLen;
    const v = k + keyLen;
    off = v + valueLen;
    visit({ type, tree: body.subarray(t, k), key: body.subarray(k, v), value: body.subarray(v, off) });
  }
  return undefined;
}

function checkOps(body: Buffer, count: number): string | undefined {
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + OP_HEADER_SIZE > body.length) return `operation ${i} runs past the end of the body`;
    const type = body[off];
    const treeLen = body.readUInt16LE(off + OP_TREE_LEN_OFFSET);
    const keyLen = body.readUInt16LE(off + OP_KEY_LEN_OFFSET);
    const valueLen = body.readUInt32LE(off + OP_VALUE_LEN_OFFSET);
    if (type === OP_PUT ? keyLen === 0 : type === OP_DEL ? keyLen === 0 || valueLen !== 0 : type === OP_DROP_TREE ? treeLen === 0 || keyLen !== 0 || valueLen !== 0 : true) {
      return `operation ${i} is malformed (type ${type}, tree ${treeLen} B, key ${keyLen} B, value ${valueLen} B)`;
    }
    off += OP_HEADER_SIZE + treeLen + keyLen + valueLen;
    if (off > body.length) return `operation ${i} runs past the end of the body`;
  }
  return off === body.length ? undefined : 'the body is longer than its operations';
}
