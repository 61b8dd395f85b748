// The one definition of what the main thread and the writer thread say to each other. Both sides
// import these types and codecs; no constant is defined twice.
//
// Batches travel in bulk: every batch queued during one event-loop turn is encoded into one
// ArrayBuffer that is transferred (not copied) in one message. Layout, little-endian:
//
//   batch:     id u32 | opCount u32 | condCount u32 | ops... | conds...
//   op:        type u8 | treeLen u16 | keyLen u16 | valueLen u32 | tree | key | value
//   cond:      present u8 | treeLen u16 | keyLen u16 | valueLen u32 | tree | key | value
//   type: OP_PUT, OP_DEL (no value), OP_DROP_TREE (no key, no value). treeLen 0: the default tree.
//   A cond with present 0 requires the key to be absent.
//
// Commits come back as a message with the new state and the commit's page images in one
// transferred buffer (encodePages): count x pageNo u32 | count x images.
import { BirchError, type ErrorCode } from '../pager/errors.js';
import { PAGE_SIZE } from '../pager/page-format.js';
import type { DatabaseStats } from './stats.js';
import type { FaultPlan } from '../pager/faults.js';

export const OP_PUT = 1;
export const OP_DEL = 2;
export const OP_DROP_TREE = 3;

const BATCH_HEADER = 12;
const ITEM_HEADER = 9;

export interface EncodedOp {
  type: typeof OP_PUT | typeof OP_DEL | typeof OP_DROP_TREE;
  tree: Buffer | undefined;
  key: Buffer | undefined;
  value: Buffer | undefined;
}

export interface EncodedCond {
  tree: Buffer | undefined;
  key: Buffer;
  /** undefined: the key must be absent. */
  value: Buffer | undefined;
}

export interface DecodedBatch {
  id: number;
  ops: EncodedOp[];
  conds: EncodedCond[];
  bytes: number;
}

function itemBytes(tree: Buffer | undefined, key: Buffer | undefined, value: Buffer | undefined): number {
  return ITEM_HEADER + (tree?.length ?? 0) + (key?.length ?? 0) + (value?.length ?? 0);
}

export function batchBytes(ops: readonly EncodedOp[], conds: readonly EncodedCond[]): number {
  let n = BATCH_HEADER;
  for (const o of ops) n += itemBytes(o.tree, o.key, o.value);
  for (const c of conds) n += itemBytes(c.tree, c.key, c.value);
  return n;
}

function writeItem(buf: Buffer, off: number, tag: number, tree: Buffer | undefined, key: Buffer | undefined, value: Buffer | undefined): number {
  buf.writeUInt8(tag, off);
  buf.writeUInt16LE(tree?.length ?? 0, off + 1);
  buf.writeUInt16LE(key?.length ?? 0, off + 3);
  buf.writeUInt32LE(value?.length ?? 0, off + 5);
  off += ITEM_HEADER;
  if (tree !== undefined) off += tree.copy(buf, off);
  if (key !== undefined) off += key.copy(buf, off);
  if (value !== undefined) off += value.copy(buf, off);
  return off;
}

/** Encodes one batch at `off` of `buf` (which has batchBytes() room); returns the end offset. */
export function encodeBatch(buf: Buffer, off: number, id: number, ops: readonly EncodedOp[], conds: readonly EncodedCond[]): number {
  buf.writeUInt32LE(id, off);
  buf.writeUInt32LE(ops.length, off + 4);
  buf.writeUInt32LE(conds.length, off + 8);
  off += BATCH_HEADER;
  for (const o of ops) off = writeItem(buf, off, o.type, o.tree, o.key, o.value);
  for (const c of conds) off = writeItem(buf, off, c.value === undefined ? 0 : 1, c.tree, c.key, c.value);
  return off;
}

export function decodeBatches(buf: Buffer): DecodedBatch[] {
  const out: DecodedBatch[] = [];
  let off = 0;
  while (off < buf.length) {
    const start = off;
    const id = buf.readUInt32LE(off);
    const opCount = buf.readUInt32LE(off + 4);
    const condCount = buf.readUInt32LE(off + 8);
    off += BATCH_HEADER;
    const ops: EncodedOp[] = [];
    const conds: EncodedCond[] = [];
    for (let i = 0; i < opCount + condCount; i++) {
      const tag = buf.readUInt8(off);
      const treeLen = buf.readUInt16LE(off + 1);
      const keyLen = buf.readUInt16LE(off + 3);
      const valueLen = buf.readUInt32LE(off + 5);
      off += ITEM_HEADER;
      const tree = treeLen > 0 ? buf.subarray(off, off + treeLen) : undefined;
      off += treeLen;
      const key = keyLen > 0 ? buf.subarray(off, off + keyLen) : undefined;
      off += keyLen;
      const value = buf.subarray(off, off + valueLen);
      off += valueLen;
      // Ops first, then conds (encodeBatch); a cond's tag says whether it carries a value.
      if (i < opCount) ops.push({ type: tag as EncodedOp['type'], tree, key, value: tag === OP_PUT ? value : undefined });
      else conds.push({ tree, key: key as Buffer, value: tag === 1 ? value : undefined });
    }
    out.push({ id, ops, conds, bytes: off - start });
  }
  return out;
}

export interface WireError {
  code: ErrorCode;
  message: string;
}

export function toWireError(err: unknown): WireError {
  if (err instanceof BirchError) return { code: err.code, message: err.message };
  return { code: 'IO', message: err instanceof Error ? err.message : String(err) };
}

export function fromWireError(e: WireError): BirchError {
  return new BirchError(e.code, e.message);
}

/** What the writer counts, sent with each commit (cheap: no tree walks). */
export type WriterCounters = Omit<DatabaseStats, 'trees'>;

export interface WriterInit {
  dir: string;
  options: {
    sync: boolean;
    cacheSize: number;
    journalSegmentSize?: number;
    checkpointBytes?: number;
    maxMergeOps: number;
    maxMergeBytes: number;
  };
  /** BigInt64Array[1]: the oldest txn the main thread's readers may still read. */
  floor: SharedArrayBuffer;
  /** Tests only: fail the writer's Nth write or sync (pager/faults.ts). */
  faults?: FaultPlan;
}

export type ToWriter = { kind: 'batches'; buf: ArrayBuffer } | { kind: 'close' };

export type FromWriter =
  | { kind: 'ready'; state: Uint8Array; counters: WriterCounters }
  | { kind: 'openFailed'; error: WireError }
  | {
      kind: 'committed';
      txnId: number;
      state: Uint8Array;
      /** encodePages: pageNo u32 x pageCount | images (transferred, not copied) */
      pages: ArrayBuffer;
      pageCount: number;
      ids: number[];
      rejected: { id: number; error: WireError }[];
      counters: WriterCounters;
      /**
       * false: written to the journal, not yet synced. The main thread stages the pages (no
       * snapshot can reach them yet) and publishes the commit, settling its batches, only on the
       * 'synced' message that covers its txnId. The writer sends that message before any later
       * report, so reports are still handled in commit order.
       */
      synced: boolean;
    }
  | { kind: 'synced'; txnId: number }
  | { kind: 'rejected'; rejected: { id: number; error: WireError }[] }
  | { kind: 'flushed'; txnId: number }
  | { kind: 'fatal'; error: WireError }
  | { kind: 'closed'; error?: WireError };

/**
 * A commit's page images for the main thread, in one buffer of their own (transferred, not
 * copied): `count` page numbers (u32), then the `count` images in the same order.
 */
export function encodePages(pages: ReadonlyMap<number, Buffer>): ArrayBuffer {
  const count = pages.size;
  // Its own, unpooled memory (transferable), not zero-filled: every byte is written below.
  const buf = Buffer.allocUnsafeSlow(count * (4 + PAGE_SIZE));
  let i = 0;
  for (const [no, img] of pages) {
    buf.writeUInt32LE(no, i * 4);
    img.copy(buf, count * 4 + i * PAGE_SIZE);
    i++;
  }
  return buf.buffer as ArrayBuffer;
}

/** The page images of a commit message (encodePages). */
export function decodePages(ab: ArrayBuffer, count: number): [number, Buffer][] {
  const buf = Buffer.from(ab);
  const out: [number, Buffer][] = [];
  for (let i = 0; i < count; i++) out.push([buf.readUInt32LE(i * 4), buf.subarray(count * 4 + i * PAGE_SIZE, count * 4 + (i + 1) * PAGE_SIZE)]);
  return out;
}
