// Range iteration over one tree of one snapshot. The pages it reads belong to a pinned snapshot,
// so they cannot change under it; keys and values come out as copies.
import { CorruptionError } from '../platform/errors.js';
import { MAX_READ_RUN_PAGES, PrivatePages, type PageSource } from '../pager/reader.js';
import { cellAt, childAt, compareBytes, count, isBranch, isOverflowCell, keyLength, keyStart, searchBranch, searchLeaf } from './node.js';
import { copyValue, type ReadPage, type TreeDesc } from './tree.js';

export interface RangeBounds {
  gt?: Buffer;
  gte?: Buffer;
  lt?: Buffer;
  lte?: Buffer;
  prefix?: Buffer;
  reverse?: boolean;
  limit?: number;
}

export interface Bound {
  key: Buffer;
  inclusive: boolean;
}

/** A range as two bounds, a direction and a limit: what every source of a range iterates. */
export interface Span {
  lower: Bound | undefined;
  upper: Bound | undefined;
  reverse: boolean;
  limit: number;
}

/** The smallest key greater than every key that starts with `prefix`, or undefined if none. */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return undefined;
}

function tighterLower(a: Bound | undefined, b: Bound | undefined): Bound | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const c = a.key.compare(b.key);
  if (c !== 0) return c > 0 ? a : b;
  return a.inclusive ? b : a;
}
function tighterUpper(a: Bound | undefined, b: Bound | undefined): Bound | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const c = a.key.compare(b.key);
  if (c !== 0) return c < 0 ? a : b;
  return a.inclusive ? b : a;
}

/** The span of range options: gt/gte/lt/lte and prefix folded into the tightest two bounds. */
export function toSpan(opts: RangeBounds): Span {
  let lower = tighterLower(opts.gt ? { key: opts.gt, inclusive: false } : undefined, opts.gte ? { key: opts.gte, inclusive: true } : undefined);
  let upper = tighterUpper(opts.lt ? { key: opts.lt, inclusive: false } : undefined, opts.lte ? { key: opts.lte, inclusive: true } : undefined);
  if (opts.prefix !== undefined) {
    lower = tighterLower(lower, { key: opts.prefix, inclusive: true });
    const end = prefixEnd(opts.prefix);
    if (end !== undefined) upper = tighterUpper(upper, { key: end, inclusive: false });
  }
  return { lower, upper, reverse: opts.reverse === true, limit: opts.limit ?? Infinity };
}

/**
 * The part of `span` from `target` on in its direction of travel: forward, its entries at or after
 * `target`; reverse, at or before it (a seek). The limit is the caller's to keep.
 */
export function seekSpan(span: Span, target: Buffer): Span {
  const from: Bound = { key: target, inclusive: true };
  return span.reverse ? { ...span, upper: tighterUpper(span.upper, from) } : { ...span, lower: tighterLower(span.lower, from) };
}

/** True if `key` is past `bound` in the direction of travel (so the range ends before it). */
export function pastBound(key: Buffer, bound: Bound | undefined, reverse: boolean): boolean {
  if (bound === undefined) return false;
  const c = key.compare(bound.key);
  return reverse ? c < 0 || (c === 0 && !bound.inclusive) : c > 0 || (c === 0 && !bound.inclusive);
}

/**
 * [key, value] pairs of a tree within a span, as copies, over private pages (tools, the
 * checkpointer, tests). Readers of the database use TreeCursor through the shared cache.
 */
export function* iterate(read: ReadPage, desc: TreeDesc, opts: RangeBounds): Generator<[Buffer, Buffer]> {
  yield* iterateSpan(read, desc, toSpan(opts));
}

export function* iterateSpan(read: ReadPage, desc: TreeDesc, span: Span): Generator<[Buffer, Buffer]> {
  const cursor = new TreeCursor(new PrivatePages(read), desc, span);
  const keys: Buffer[] = [];
  const values: Buffer[] = [];
  let left = span.limit;
  while (left > 0) {
    keys.length = 0;
    values.length = 0;
    const n = cursor.next(keys, values, Math.min(left, 256), left);
    if (n === 0) return;
    for (let i = 0; i < n; i++) yield [keys[i] as Buffer, values[i] as Buffer];
    left -= n;
  }
}

/**
 * A walk over one tree within a span, leaf to leaf: it keeps the branches from the root down (page
 * numbers and slots, not pages) and climbs only as far as the next sibling, never re-descending
 * from the root. Entries come out in batches read inside one begin()/end() of the page source: the
 * leaf is found again at each batch (a cache hit), so nothing of the cache is held between batches
 * (user code runs between them). When it moves to a leaf that is not cached and its parent's next
 * children sit in a run of consecutive pages (checkpoints write leaves in key order), it reads the
 * run with one read, as far as the entries still wanted are likely to reach.
 */
export class TreeCursor {
  readonly #src: PageSource;
  readonly #desc: TreeDesc;
  readonly #span: Span;
  readonly #step: 1 | -1;
  /** The branches from the root down to the leaf's parent, and the slot taken in each. */
  readonly #branches: number[] = [];
  readonly #slots: number[] = [];
  #leaf = 0;
  #idx = 0;
  #started = false;
  #done = false;
  /** Entries per leaf, as last seen: how far a read-ahead should go. */
  #perLeaf = 32;

  constructor(src: PageSource, desc: TreeDesc, span: Span) {
    this.#src = src;
    this.#desc = desc;
    this.#span = span;
    this.#step = span.reverse ? -1 : 1;
    this.#done = desc.root === 0 || span.limit <= 0;
  }

  /**
   * Appends up to `max` next entries (copies) to `keys` and `values`; returns how many (0: the
   * span is done). `wanted` is how many entries the caller may still take, for read-ahead.
   */
  next(keys: Buffer[], values: Buffer[], max: number, wanted: number): number {
    if (this.#done) return 0;
    const src = this.#src;
    const reverse = this.#span.reverse;
    const stop = reverse ? this.#span.lower : this.#span.upper;
    let n = 0;
    src.begin();
    try {
      if (!this.#started) {
        this.#started = true;
        this.#position(wanted);
      }
      let off = src.pageAt(this.#leaf);
      let b = src.bytes;
      while (n < max) {
        const idx = this.#idx;
        if (idx < 0 || idx >= count(b, off)) {
          if (!this.#advance(wanted - n)) {
            this.#done = true;
            break;
          }
          off = src.pageAt(this.#leaf);
          b = src.bytes;
          continue;
        }
        const cell = cellAt(b, idx, off);
        const kStart = keyStart(cell, true);
        const kLen = keyLength(b, cell, true);
        if (stop !== undefined) {
          const c = compareBytes(b, kStart, kLen, stop.key);
          if (reverse ? c < 0 || (c === 0 && !stop.inclusive) : c > 0 || (c === 0 && !stop.inclusive)) {
            this.#done = true;
            break;
          }
        }
        const key = Buffer.allocUnsafe(kLen);
        b.copy(key, 0, kStart, kStart + kLen);
        keys.push(key);
        const overflow = isOverflowCell(b, cell);
        values.push(copyValue(src, cell));
        if (overflow) {
          // Its pages may have missed, which leaves the epoch: find the leaf again.
          off = src.pageAt(this.#leaf);
          b = src.bytes;
        }
        this.#idx = idx + this.#step;
        n++;
      }
    } finally {
      src.end();
    }
    return n;
  }

  /** Descends to the first entry of the span. */
  #position(wanted: number): void {
    const src = this.#src;
    const { reverse } = this.#span;
    const start = reverse ? this.#span.upper : this.#span.lower;
    let no = this.#desc.root;
    for (let level = this.#desc.depth; level > 1; level--) {
      const off = src.pageAt(no);
      const b = src.bytes;
      if (!isBranch(b, off)) throw new CorruptionError(`page ${no} should be a branch at height ${level}`, { pageNo: no });
      const slot = start === undefined ? (reverse ? count(b, off) - 1 : 0) : searchBranch(b, start.key, off);
      this.#branches.push(no);
      this.#slots.push(slot);
      no = childAt(b, slot, off);
    }
    this.#toLeaf(no, wanted);
    const off = src.pageAt(no);
    const b = src.bytes;
    if (start === undefined) this.#idx = reverse ? count(b, off) - 1 : 0;
    else {
      const r = searchLeaf(b, start.key, 0, off);
      const found = r >= 0;
      const index = found ? r : ~r;
      if (reverse) this.#idx = found && start.inclusive ? index : index - 1;
      else this.#idx = found && !start.inclusive ? index + 1 : index;
    }
  }

  /** Moves to the next leaf in the direction of travel; false at the tree's end. */
  #advance(wanted: number): boolean {
    const src = this.#src;
    const step = this.#step;
    const branches = this.#branches;
    const slots = this.#slots;
    let level = branches.length - 1;
    let no = 0;
    for (; level >= 0; level--) {
      const off = src.pageAt(branches[level] as number);
      const b = src.bytes;
      const s = (slots[level] as number) + step;
      if (s >= 0 && s < count(b, off)) {
        slots[level] = s;
        no = childAt(b, s, off);
        break;
      }
    }
    if (level < 0) return false;
    // Down the near edge of the next subtree.
    for (let l = level + 1; l < branches.length; l++) {
      const off = src.pageAt(no);
      const b = src.bytes;
      if (!isBranch(b, off)) throw new CorruptionError(`page ${no} should be a branch`, { pageNo: no });
      const s = step > 0 ? 0 : count(b, off) - 1;
      branches[l] = no;
      slots[l] = s;
      no = childAt(b, s, off);
    }
    this.#toLeaf(no, wanted);
    const off = src.pageAt(no);
    this.#idx = step > 0 ? 0 : count(src.bytes, off) - 1;
    return true;
  }

  /** Makes `no` the current leaf; reads ahead the run of leaves it starts, if it is not cached. */
  #toLeaf(no: number, wanted: number): void {
    const src = this.#src;
    this.#leaf = no;
    const last = this.#branches.length - 1;
    if (last < 0 || src.cached(no)) return;
    const pages = Math.min(MAX_READ_RUN_PAGES, wanted === Infinity ? MAX_READ_RUN_PAGES : Math.ceil(wanted / this.#perLeaf) + 1);
    if (pages <= 1) return;
    const off = src.pageAt(this.#branches[last] as number);
    const b = src.bytes;
    const slot = this.#slots[last] as number;
    const n = count(b, off);
    const step = this.#step;
    let run = 1;
    while (run < pages) {
      const s = slot + run * step;
      // The run ends at the first sibling that is not next on disk, or is cached already (reading
      // it again would only cost a copy, a verify and a frame).
      if (s < 0 || s >= n || childAt(b, s, off) !== no + run * step || src.cached(no + run * step)) break;
      run++;
    }
    if (run > 1) src.readRun(step > 0 ? no : no - run + 1, run);
    const leafOff = src.pageAt(no);
    this.#perLeaf = Math.max(1, count(src.bytes, leafOff));
  }
}
