// Range iteration over one tree of one snapshot. The pages it reads belong to a pinned snapshot,
// so they cannot change under it; keys and values are yielded as copies.
import { pageNo } from '../pager/ids.js';
import { childAt, count, isLeaf, keyAt, searchBranch, searchLeaf } from './node.js';
import { readValue, type ReadPage, type TreeDesc } from './tree.js';

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

/** True if `key` is past `bound` in the direction of travel (so the range ends before it). */
export function pastBound(key: Buffer, bound: Bound | undefined, reverse: boolean): boolean {
  if (bound === undefined) return false;
  const c = key.compare(bound.key);
  return reverse ? c < 0 || (c === 0 && !bound.inclusive) : c > 0 || (c === 0 && !bound.inclusive);
}

export function* iterate(read: ReadPage, desc: TreeDesc, opts: RangeBounds): Generator<[Buffer, Buffer]> {
  yield* iterateSpan(read, desc, toSpan(opts));
}

/** [key, value] pairs of the tree within `span`, as copies. */
export function* iterateSpan(read: ReadPage, desc: TreeDesc, span: Span): Generator<[Buffer, Buffer]> {
  const { lower, upper, reverse, limit } = span;
  if (desc.root === 0 || limit <= 0) return;
  const start = reverse ? upper : lower;
  const stack: { page: Buffer; idx: number }[] = [];
  let page = read(pageNo(desc.root));
  while (!isLeaf(page)) {
    const idx = start === undefined ? (reverse ? count(page) - 1 : 0) : searchBranch(page, start.key);
    stack.push({ page, idx });
    page = read(pageNo(childAt(page, idx)));
  }
  let idx: number;
  if (start === undefined) idx = reverse ? count(page) - 1 : 0;
  else {
    const { index, found } = searchLeaf(page, start.key);
    if (reverse) idx = found && start.inclusive ? index : index - 1;
    else idx = found && !start.inclusive ? index + 1 : index;
  }
  const step = reverse ? -1 : 1;
  const stop = reverse ? lower : upper;
  let yielded = 0;
  for (;;) {
    while (idx >= 0 && idx < count(page)) {
      const key = keyAt(page, idx, true);
      if (pastBound(key, stop, reverse)) return;
      yield [Buffer.from(key), readValue(read, page, idx)];
      if (++yielded >= limit) return;
      idx += step;
    }
    // Next leaf: climb to the nearest branch with a sibling in this direction, then descend.
    let top = stack.pop();
    while (top !== undefined && (top.idx + step < 0 || top.idx + step >= count(top.page))) top = stack.pop();
    if (top === undefined) return;
    top.idx += step;
    stack.push(top);
    page = read(pageNo(childAt(top.page, top.idx)));
    while (!isLeaf(page)) {
      const i = reverse ? count(page) - 1 : 0;
      stack.push({ page, idx: i });
      page = read(pageNo(childAt(page, i)));
    }
    idx = reverse ? count(page) - 1 : 0;
  }
}
