// Page deltas: how a journal record stores a page image as its differences from a base image
// (the committed page it was copied from, or a page of zeros). The layout is in format.ts
// ("Record body"); this file encodes and applies it.
//
// Why: a commit of random keys copies ~70 pages to change a few hundred bytes in each (a leaf's
// new cell and slot, a branch's child pointer). Whole images made each record ~290 KiB and its
// fdatasync the largest part of a commit; deltas made it ~10x smaller (286 -> 27 MB of journal
// for 1,000 such commits, concurrent benchmark).
//
// Runs are found a 32-bit word at a time (offsets and lengths are multiples of 4), and two runs
// one equal word apart are merged, since a run header costs as much as that word.
import { PAGE_SIZE } from '../pager/page-format.js';
import {
  DELTA_ENTRY_BASE_OFFSET, DELTA_ENTRY_HEADER_SIZE, DELTA_ENTRY_PAGE_OFFSET, DELTA_ENTRY_RUN_BYTES_OFFSET, DELTA_NO_BASE,
  DELTA_RUN_HEADER_SIZE, DELTA_RUN_LENGTH_OFFSET, DELTA_RUN_OFFSET_OFFSET,
} from './format.js';

const WORDS = PAGE_SIZE / 4;
/** The most bytes one entry can take: its header and one run covering the whole page. */
export const MAX_DELTA_ENTRY_BYTES = DELTA_ENTRY_HEADER_SIZE + DELTA_RUN_HEADER_SIZE + PAGE_SIZE;

const ZERO_PAGE = new Int32Array(WORDS);
/** Word views need 4-byte alignment; an unaligned image is copied here first. */
const alignedA = new Int32Array(WORDS);
const alignedB = new Int32Array(WORDS);

function words(img: Buffer, scratch: Int32Array): Int32Array {
  if (img.byteOffset % 4 === 0) return new Int32Array(img.buffer, img.byteOffset, WORDS);
  new Uint8Array(scratch.buffer).set(img.subarray(0, PAGE_SIZE));
  return scratch;
}

/**
 * Writes the entry for page `no` (image `img`, base page `baseNo` with image `base`, or no base:
 * zeros) into `out` at `at`; returns the offset after it. `out` must have MAX_DELTA_ENTRY_BYTES
 * free at `at`.
 */
export function encodeDelta(out: Buffer, at: number, no: number, img: Buffer, baseNo: number | undefined, base: Buffer | undefined): number {
  const a = words(img, alignedA);
  const b = base === undefined ? ZERO_PAGE : words(base, alignedB);
  out.writeUInt32LE(no, at + DELTA_ENTRY_PAGE_OFFSET);
  out.writeUInt32LE(baseNo ?? DELTA_NO_BASE, at + DELTA_ENTRY_BASE_OFFSET);
  let pos = at + DELTA_ENTRY_HEADER_SIZE;
  let w = 0;
  while (w < WORDS) {
    if (a[w] === b[w]) {
      w++;
      continue;
    }
    const start = w;
    let end = w + 1; // exclusive; extended while differences continue with gaps of at most one word
    for (let k = end; k < WORDS; k++) {
      if (a[k] !== b[k]) end = k + 1;
      else if (k - end >= 1) break;
    }
    const bytes = (end - start) * 4;
    out.writeUInt16LE(start * 4, pos + DELTA_RUN_OFFSET_OFFSET);
    out.writeUInt16LE(bytes, pos + DELTA_RUN_LENGTH_OFFSET);
    img.copy(out, pos + DELTA_RUN_HEADER_SIZE, start * 4, end * 4);
    pos += DELTA_RUN_HEADER_SIZE + bytes;
    w = end;
  }
  out.writeUInt32LE(pos - at - DELTA_ENTRY_HEADER_SIZE, at + DELTA_ENTRY_RUN_BYTES_OFFSET);
  return pos;
}

export interface DeltaEntry {
  no: number;
  /** The base page, or undefined for a page of zeros. */
  baseNo: number | undefined;
  /** The runs: [start, end) of `body`. */
  runsStart: number;
  runsEnd: number;
}

/** The entry at `at` of a record body, or a reason it is malformed. */
export function readDeltaEntry(body: Buffer, at: number): DeltaEntry | string {
  if (at + DELTA_ENTRY_HEADER_SIZE > body.length) return 'delta entry runs past the end of the record body';
  const base = body.readUInt32LE(at + DELTA_ENTRY_BASE_OFFSET);
  const runBytes = body.readUInt32LE(at + DELTA_ENTRY_RUN_BYTES_OFFSET);
  const runsStart = at + DELTA_ENTRY_HEADER_SIZE;
  if (runsStart + runBytes > body.length) return 'delta runs past the end of the record body';
  return { no: body.readUInt32LE(at + DELTA_ENTRY_PAGE_OFFSET), baseNo: base === DELTA_NO_BASE ? undefined : base, runsStart, runsEnd: runsStart + runBytes };
}

/** The image `e` describes, on top of `base` (zeros if undefined); a reason if the runs are malformed. */
export function applyDelta(body: Buffer, e: DeltaEntry, base: Buffer | undefined): Buffer | string {
  const img = base === undefined ? Buffer.alloc(PAGE_SIZE) : Buffer.from(base.subarray(0, PAGE_SIZE));
  let pos = e.runsStart;
  while (pos < e.runsEnd) {
    if (pos + DELTA_RUN_HEADER_SIZE > e.runsEnd) return `delta run header of page ${e.no} is cut short`;
    const off = body.readUInt16LE(pos + DELTA_RUN_OFFSET_OFFSET);
    const len = body.readUInt16LE(pos + DELTA_RUN_LENGTH_OFFSET);
    pos += DELTA_RUN_HEADER_SIZE;
    if (off + len > PAGE_SIZE || pos + len > e.runsEnd) return `delta run of page ${e.no} at ${off}+${len} is out of bounds`;
    body.copy(img, off, pos, pos + len);
    pos += len;
  }
  return img;
}
