// The free-page list: which pages may be allocated now, which wait for old snapshots to end, and
// how the list is stored in the data file.
//
// Deferral: a page freed by checkpoint C was reachable from the trees of checkpoint C-1, so a
// snapshot that reads those trees may still read it, and so may an opening that finds the meta of
// C damaged and falls back to the meta of C-1. It waits in `pending[C]` until `release` is given
// a checkpoint of at least C (the oldest checkpoint a snapshot reads, and the older of the two
// metas, whichever is older); only then does it join `free`.
//
// Allocation policy (AllocationPolicy): the cost of a data-file flush is the number of separate
// write runs (seeks), not bytes, so allocation prefers to hand out pages that are contiguous:
//  - 'runs-first' (default): continue the run the last allocation came from; otherwise take the
//    lowest free run of at least `minRunPages` pages; otherwise grow the file at its end, which is
//    one more contiguous run. Scattered short runs are left alone until they make up more than
//    `scatterLimit` of the file, and are then reused lowest first, so the file cannot grow without
//    bound. Trade-off: the file is up to `scatterLimit` larger than it must be, in exchange for
//    fewer write runs per flush.
//  - 'first-fit': the lowest free page first (what LMDB does): the smallest file, the most runs.
//
// On disk the list is a bitmap: a chain of FreeList pages, page k of the chain covering data-file
// pages [k * BITMAP_BITS_PER_PAGE, (k + 1) * BITMAP_BITS_PER_PAGE). A set bit marks a page not in
// use: free and pending pages alike (after a reopen no snapshot is live, and both metas are
// brought to the reopened state (DataFile.settle), so every pending page is free).
//
//   12          16           20                                     PAGE_SIZE
//   +-----------+------------+--------------------------------------+
//   | next page | first page | bits: page (first + i) is bit i%8    |
//   |           |            | of byte i/8                          |
//   +-----------+------------+--------------------------------------+
//
// Invariants: first page = k * BITMAP_BITS_PER_PAGE for the k-th page of the chain; the chain has
// exactly bitmapPagesFor(pageCount) pages; bits for pages at or past pageCount are zero.
// Why a bitmap: its size is fixed by the file's (one page per 128 MiB of data file), whatever
// the number of free runs, and a checkpoint rewrites it whole at the cost of a few page writes.
import { readU32, writeU32 } from './bytes.js';
import { CorruptionError } from '../platform/errors.js';
import { pageNo, type PageNo } from './ids.js';
import { GENERIC_HEADER_SIZE, PAGE_SIZE, PageKind, initPage, pageKind } from './page-format.js';

export const BITMAP_NEXT_OFFSET = GENERIC_HEADER_SIZE;
export const BITMAP_FIRST_OFFSET = BITMAP_NEXT_OFFSET + 4;
export const BITMAP_BITS_OFFSET = BITMAP_FIRST_OFFSET + 4;
export const BITMAP_BITS_PER_PAGE = (PAGE_SIZE - BITMAP_BITS_OFFSET) * 8;

export type AllocationPolicy = 'runs-first' | 'first-fit';

export interface AllocationOptions {
  policy: AllocationPolicy;
  /** runs-first: a free run shorter than this is "scattered". */
  minRunPages: number;
  /** runs-first: scattered free pages are reused once they exceed this fraction of the file. */
  scatterLimit: number;
}

export const DEFAULT_ALLOCATION: AllocationOptions = { policy: 'runs-first', minRunPages: 16, scatterLimit: 0.25 };

/** A set of page numbers kept as sorted, coalesced runs. */
export class RunSet {
  starts: number[] = [];
  lens: number[] = [];
  pages = 0;

  /** Index of the last run starting at or before `page`, or -1. */
  #floor(page: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.starts[mid] as number) <= page) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }

  has(page: number): boolean {
    const i = this.#floor(page);
    return i >= 0 && page < (this.starts[i] as number) + (this.lens[i] as number);
  }

  /** Adds the pages [start, start+len), none of which may be in the set already. */
  addRun(start: number, len: number): void {
    if (len <= 0) return;
    const i = this.#floor(start + len - 1);
    if (i >= 0 && (this.starts[i] as number) + (this.lens[i] as number) > start) throw new Error(`run ${start}+${len} freed twice`);
    const joinsPrev = i >= 0 && (this.starts[i] as number) + (this.lens[i] as number) === start;
    const joinsNext = i + 1 < this.starts.length && this.starts[i + 1] === start + len;
    this.pages += len;
    if (joinsPrev && joinsNext) {
      this.lens[i] = (this.lens[i] as number) + len + (this.lens[i + 1] as number);
      this.starts.splice(i + 1, 1);
      this.lens.splice(i + 1, 1);
    } else if (joinsPrev) {
      this.lens[i] = (this.lens[i] as number) + len;
    } else if (joinsNext) {
      this.starts[i + 1] = start;
      this.lens[i + 1] = (this.lens[i + 1] as number) + len;
    } else {
      this.starts.splice(i + 1, 0, start);
      this.lens.splice(i + 1, 0, len);
    }
  }

  add(page: number): void {
    this.addRun(page, 1);
  }

  /** Removes `n` pages from the front of run `i`, returning the first. */
  takeFrom(i: number, n: number): number {
    const start = this.starts[i] as number;
    const len = this.lens[i] as number;
    if (n > len) throw new Error('run too short');
    this.pages -= n;
    if (n === len) {
      this.starts.splice(i, 1);
      this.lens.splice(i, 1);
    } else {
      this.starts[i] = start + n;
      this.lens[i] = len - n;
    }
    return start;
  }

  indexOfStart(page: number): number {
    const i = this.#floor(page);
    return i >= 0 && this.starts[i] === page ? i : -1;
  }

  clone(): RunSet {
    const c = new RunSet();
    c.starts = this.starts.slice();
    c.lens = this.lens.slice();
    c.pages = this.pages;
    return c;
  }

  *runs(): Generator<[number, number]> {
    for (let i = 0; i < this.starts.length; i++) yield [this.starts[i] as number, this.lens[i] as number];
  }
}

export class FreeList {
  readonly free = new RunSet();
  /** checkpoint id -> pages that checkpoint freed; insertion (and so checkpoint) order. */
  readonly pending = new Map<number, PageNo[]>();
  pendingPages = 0;
  #cursor = -1;
  /** False once a scan found no run of minRunPages; set again whenever pages are freed. */
  #longRunsMaybe = true;
  readonly options: AllocationOptions;

  constructor(options: AllocationOptions = DEFAULT_ALLOCATION) {
    this.options = options;
  }

  /** Makes [start, start+len) free now (pages nothing can read: loaded, rolled back, or never seen). */
  addFree(start: number, len: number): void {
    this.free.addRun(start, len);
    this.#longRunsMaybe = true;
  }

  addPending(checkpoint: number, pages: PageNo[]): void {
    if (pages.length === 0) return;
    this.pending.set(checkpoint, pages);
    this.pendingPages += pages.length;
  }

  /** Moves to `free` every page freed by a checkpoint <= upTo: nothing can read them any more. */
  release(upTo: number): void {
    for (const [c, pages] of this.pending) {
      if (c > upTo) break;
      for (const p of pages) this.addFree(p, 1);
      this.pendingPages -= pages.length;
      this.pending.delete(c);
    }
  }

  /**
   * Removes the free run that ends at `pageCount` (the end of the file), if any, and returns the
   * file's new end: a file gives back its free tail instead of only growing.
   */
  trimTail(pageCount: number): number {
    const start = this.tailStart(pageCount);
    if (start === pageCount) return pageCount;
    const last = this.free.starts.length - 1;
    this.free.takeFrom(last, this.free.lens[last] as number);
    if (this.#cursor >= start) this.#cursor = -1;
    return start;
  }

  /** Where the file's free tail starts (pageCount if the last page is in use); changes nothing. */
  tailStart(pageCount: number): number {
    const f = this.free;
    const last = f.starts.length - 1;
    if (last < 0) return pageCount;
    const start = f.starts[last] as number;
    return start + (f.lens[last] as number) === pageCount ? start : pageCount;
  }

  /**
   * Takes `n` contiguous free pages under the policy, or returns undefined when the caller should
   * grow the file instead. `pageCount` is the current end of the file, in pages.
   */
  take(n: number, pageCount: number): PageNo | undefined {
    const f = this.free;
    if (f.pages < n) return undefined;
    if (this.options.policy === 'first-fit') return this.#firstFit(n, 1);
    // Continue the run we took from last, so one transaction's pages stay adjacent.
    const at = f.indexOfStart(this.#cursor);
    if (at >= 0 && (f.lens[at] as number) >= n) return this.#takeAt(at, n);
    if (this.#longRunsMaybe || n > 1) {
      const fromRun = this.#firstFit(n, this.options.minRunPages);
      if (fromRun !== undefined) return fromRun;
      if (n === 1) this.#longRunsMaybe = false;
    }
    if (f.pages > this.options.scatterLimit * pageCount) return this.#firstFit(n, 1);
    return undefined;
  }

  /** The lowest `n` contiguous free pages, whatever the policy (to move pages toward the file's start). */
  takeLowest(n: number): PageNo | undefined {
    return this.#firstFit(n, 1);
  }

  #firstFit(n: number, minLen: number): PageNo | undefined {
    const f = this.free;
    const need = Math.max(n, minLen);
    for (let i = 0; i < f.starts.length; i++) {
      if ((f.lens[i] as number) >= need) return this.#takeAt(i, n);
    }
    return undefined;
  }

  #takeAt(i: number, n: number): PageNo {
    const start = this.free.takeFrom(i, n);
    this.#cursor = start + n;
    return pageNo(start);
  }

  /**
   * Free and pending pages together, as runs: what the on-disk bitmap records (for stats and
   * check). Linear in runs plus pages, after sorting the pending ones.
   */
  allRuns(extra: Iterable<number>): RunSet {
    const loose: number[] = [];
    for (const pages of this.pending.values()) for (const p of pages) loose.push(p);
    for (const p of extra) loose.push(p);
    loose.sort((a, b) => a - b);
    const all = new RunSet();
    const f = this.free;
    let i = 0;
    let j = 0;
    const append = (start: number, len: number): void => {
      const last = all.starts.length - 1;
      const lastEnd = last >= 0 ? (all.starts[last] as number) + (all.lens[last] as number) : -1;
      if (start < lastEnd) throw new Error(`page ${start} freed twice`);
      if (start === lastEnd) all.lens[last] = (all.lens[last] as number) + len;
      else {
        all.starts.push(start);
        all.lens.push(len);
      }
      all.pages += len;
    };
    while (i < f.starts.length || j < loose.length) {
      if (j >= loose.length || (i < f.starts.length && (f.starts[i] as number) < (loose[j] as number))) {
        append(f.starts[i] as number, f.lens[i] as number);
        i++;
      } else {
        append(loose[j] as number, 1);
        j++;
      }
    }
    return all;
  }
}

export function bitmapPagesFor(pageCount: number): number {
  return Math.max(1, Math.ceil(pageCount / BITMAP_BITS_PER_PAGE));
}

/** Makes `buf` the `index`-th bitmap page of a chain, with no bit set and no next page. */
export function initBitmapPage(buf: Buffer, no: PageNo, index: number): void {
  initPage(buf, no, PageKind.FreeList);
  writeU32(buf, BITMAP_NEXT_OFFSET, 0);
  writeU32(buf, BITMAP_FIRST_OFFSET, index * BITMAP_BITS_PER_PAGE);
  buf.fill(0, BITMAP_BITS_OFFSET, PAGE_SIZE);
}

export function setBitmapNext(buf: Buffer, next: PageNo | 0): void {
  writeU32(buf, BITMAP_NEXT_OFFSET, next);
}

/**
 * Sets (`free`) or clears the bits of pages [start, start + len) in a chain whose pages are
 * `chain`, in order; whole bytes at a time in the middle of a run.
 */
export function markPages(chain: readonly Buffer[], start: number, len: number, free: boolean): void {
  let p = start;
  const end = start + len;
  while (p < end) {
    const k = Math.floor(p / BITMAP_BITS_PER_PAGE);
    const buf = chain[k];
    if (buf === undefined) throw new Error(`page ${p} is past the free-space bitmap`);
    const first = k * BITMAP_BITS_PER_PAGE;
    const stop = Math.min(end, first + BITMAP_BITS_PER_PAGE);
    while (p < stop) {
      const bit = p - first;
      const at = BITMAP_BITS_OFFSET + (bit >> 3);
      if ((bit & 7) === 0 && p + 8 <= stop) {
        buf[at] = free ? 0xff : 0;
        p += 8;
      } else {
        const mask = 1 << (bit & 7);
        buf[at] = free ? (buf[at] as number) | mask : (buf[at] as number) & ~mask;
        p++;
      }
    }
  }
}

/** Reads the chain starting at `root`; `read` returns a verified page image. */
export function decodeFreeList(root: PageNo, pageCount: number, read: (no: PageNo) => Buffer): { runs: RunSet; pages: PageNo[] } {
  const runs = new RunSet();
  const pages: PageNo[] = [];
  const expected = bitmapPagesFor(pageCount);
  let no = root as number;
  let runStart = -1;
  while (no !== 0) {
    if (no >= pageCount || pages.length >= expected) throw new CorruptionError('free-space bitmap chain leaves the file or is too long', { pageNo: no });
    const buf = read(pageNo(no));
    if (pageKind(buf) !== PageKind.FreeList) throw new CorruptionError('expected a free-space bitmap page', { pageNo: no });
    const first = pages.length * BITMAP_BITS_PER_PAGE;
    if (readU32(buf, BITMAP_FIRST_OFFSET) !== first) throw new CorruptionError(`bitmap page claims to start at page ${readU32(buf, BITMAP_FIRST_OFFSET)}, not ${first}`, { pageNo: no });
    pages.push(pageNo(no));
    for (let i = 0; i < BITMAP_BITS_PER_PAGE / 8; i++) {
      const byte = buf[BITMAP_BITS_OFFSET + i] as number;
      if (byte === 0 && runStart < 0) continue;
      if (byte === 0xff && runStart >= 0 && first + i * 8 + 8 <= pageCount) continue;
      for (let b = 0; b < 8; b++) {
        const p = first + i * 8 + b;
        const set = (byte & (1 << b)) !== 0;
        if (set && p >= pageCount) throw new CorruptionError(`bitmap marks page ${p} free, past the end of the file (${pageCount} pages)`, { pageNo: no });
        if (set && runStart < 0) runStart = p;
        else if (!set && runStart >= 0) {
          runs.addRun(runStart, p - runStart);
          runStart = -1;
        }
      }
    }
    no = readU32(buf, BITMAP_NEXT_OFFSET);
  }
  if (pageCount > 0 && root !== 0 && pages.length !== expected) throw new CorruptionError(`free-space bitmap has ${pages.length} pages, the file needs ${expected}`, { pageNo: root });
  const end = pages.length * BITMAP_BITS_PER_PAGE;
  if (runStart >= 0) runs.addRun(runStart, end - runStart);
  return { runs, pages };
}
