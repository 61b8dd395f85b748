// The free-page list: which pages may be allocated now, which wait for old snapshots to end, and
// how the list is stored in the data file.
//
// Deferral: a page freed by transaction T was reachable in every state before T, so a snapshot
// taken at txn S < T may still read it. It waits in `pending[T]` until the oldest live snapshot
// is at least T; only then does it join `free`.
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
// On disk the list is a chain of FreeList pages holding (start, length) runs. It records free and
// pending pages alike: after a reopen no snapshot is live, so every pending page is free.
//
//   12          16          20                         PAGE_SIZE
//   +-----------+-----------+------------+-----+--------+
//   | next page | run count | start | len | ... |        |
//   +-----------+-----------+------------+-----+--------+
import { readU32, writeU32 } from './bytes.js';
import { CorruptionError } from './errors.js';
import { pageNo, type PageNo, type TxnId } from './ids.js';
import { GENERIC_HEADER_SIZE, PAGE_SIZE, PageKind, initPage, pageKind } from './page-format.js';

export const FREELIST_NEXT_OFFSET = GENERIC_HEADER_SIZE;
export const FREELIST_COUNT_OFFSET = FREELIST_NEXT_OFFSET + 4;
export const FREELIST_RUNS_OFFSET = FREELIST_COUNT_OFFSET + 4;
export const FREELIST_RUN_SIZE = 8;
export const FREELIST_RUNS_PER_PAGE = Math.floor((PAGE_SIZE - FREELIST_RUNS_OFFSET) / FREELIST_RUN_SIZE);

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
  /** txn id -> pages that txn freed; insertion (and so txn) order. */
  readonly pending = new Map<TxnId, PageNo[]>();
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

  addPending(txn: TxnId, pages: PageNo[]): void {
    if (pages.length === 0) return;
    this.pending.set(txn, pages);
    this.pendingPages += pages.length;
  }

  /** Moves to `free` every page freed by a txn <= oldestLive: no snapshot can read them any more. */
  release(oldestLive: TxnId): void {
    for (const [txn, pages] of this.pending) {
      if (txn > oldestLive) break;
      for (const p of pages) this.addFree(p, 1);
      this.pendingPages -= pages.length;
      this.pending.delete(txn);
    }
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

  /** Free and pending pages together, as runs: what the on-disk list records. */
  allRuns(extra: Iterable<number>): RunSet {
    const all = this.free.clone();
    for (const pages of this.pending.values()) for (const p of pages) all.add(p);
    for (const p of extra) all.add(p);
    return all;
  }
}

export function freeListPagesFor(runCount: number): number {
  return Math.max(1, Math.ceil(runCount / FREELIST_RUNS_PER_PAGE));
}

/** Writes `runs` into the given pages, chained in order. */
export function encodeFreeList(runs: RunSet, pages: { no: PageNo; buf: Buffer }[]): void {
  let r = 0;
  for (let i = 0; i < pages.length; i++) {
    const { no, buf } = pages[i] as { no: PageNo; buf: Buffer };
    initPage(buf, no, PageKind.FreeList);
    const next = i + 1 < pages.length ? (pages[i + 1] as { no: PageNo }).no : 0;
    writeU32(buf, FREELIST_NEXT_OFFSET, next);
    let count = 0;
    while (count < FREELIST_RUNS_PER_PAGE && r < runs.starts.length) {
      const off = FREELIST_RUNS_OFFSET + count * FREELIST_RUN_SIZE;
      writeU32(buf, off, runs.starts[r] as number);
      writeU32(buf, off + 4, runs.lens[r] as number);
      count++;
      r++;
    }
    writeU32(buf, FREELIST_COUNT_OFFSET, count);
  }
  if (r !== runs.starts.length) throw new Error('free list pages too few for its runs');
}

/** Reads the chain starting at `root`; `read` returns a verified page image. */
export function decodeFreeList(root: PageNo, pageCount: number, read: (no: PageNo) => Buffer): { runs: RunSet; pages: PageNo[] } {
  const runs = new RunSet();
  const pages: PageNo[] = [];
  let no = root as number;
  while (no !== 0) {
    if (no >= pageCount || pages.length > pageCount) throw new CorruptionError('free-list chain leaves the file or loops', { pageNo: no });
    const buf = read(pageNo(no));
    if (pageKind(buf) !== PageKind.FreeList) throw new CorruptionError('expected a free-list page', { pageNo: no });
    pages.push(pageNo(no));
    const count = readU32(buf, FREELIST_COUNT_OFFSET);
    if (count > FREELIST_RUNS_PER_PAGE) throw new CorruptionError(`free-list page claims ${count} runs`, { pageNo: no });
    for (let i = 0; i < count; i++) {
      const off = FREELIST_RUNS_OFFSET + i * FREELIST_RUN_SIZE;
      const start = readU32(buf, off);
      const len = readU32(buf, off + 4);
      if (start + len > pageCount || len === 0) throw new CorruptionError(`free run ${start}+${len} is outside the file`, { pageNo: no });
      try {
        runs.addRun(start, len);
      } catch (err) {
        throw new CorruptionError(`free run ${start}+${len} overlaps another`, { pageNo: no }, { cause: err });
      }
    }
    no = readU32(buf, FREELIST_NEXT_OFFSET);
  }
  return { runs, pages };
}
