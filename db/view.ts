// Reading the database as of one batch: the write buffer's generations first (newest first), then
// the trees of the published checkpoint. A View is one such reading: the live state (the last
// acknowledged batch) or a pinned snapshot. Ranges merge the sources in key order; a newer source
// wins for a key, and a tombstone hides the key.
import { latin1 } from '../pager/bytes.js';
import { get as treeGet, type ReadPage, type TreeDesc } from '../btree/tree.js';
import { iterateSpan, toSpan, type RangeBounds, type Span } from '../btree/cursor.js';
import { decodeDesc, decodeRoots, type Roots } from '../btree/roots-format.js';
import type { DbState } from '../pager/meta-format.js';
import { valueOf, visible, type Generation, type TreeBuffer } from './buffer.js';

/** The trees of one checkpoint, as the main thread reads them. */
export class Checkpointed {
  readonly state: DbState;
  readonly roots: Roots;
  readonly read: ReadPage;
  /** Named trees' descriptors, looked up in the catalog once each (this checkpoint never changes). */
  readonly #descs = new Map<string, TreeDesc | null>();

  constructor(state: DbState, read: ReadPage) {
    this.state = state;
    this.roots = decodeRoots(state.roots);
    this.read = read;
  }

  /** The descriptor of tree `name` ('' for the default tree), or undefined if it does not exist. */
  desc(name: string): TreeDesc | undefined {
    if (name === '') return this.roots.main;
    let d = this.#descs.get(name);
    if (d === undefined) {
      const raw = treeGet(this.read, this.roots.catalog, Buffer.from(name, 'utf8'));
      d = raw === undefined ? null : decodeDesc(raw);
      this.#descs.set(name, d);
    }
    return d ?? undefined;
  }

  names(): string[] {
    const out: string[] = [];
    for (const [k] of iterateSpan(this.read, this.roots.catalog, toSpan({}))) out.push(k.toString('utf8'));
    return out;
  }
}

/** Entries of a buffered tree read per step of a range: never an iterator held across a yield. */
const CHUNK = 64;

export class View {
  /** The batch this view reads at. */
  readonly seq: number;
  /** Buffer generations, newest first. */
  readonly gens: readonly Generation[];
  readonly base: Checkpointed;

  constructor(seq: number, gens: readonly Generation[], base: Checkpointed) {
    this.seq = seq;
    this.gens = gens;
    this.base = base;
  }

  get(tree: string, key: Buffer): Buffer | undefined {
    let k: string | undefined;
    for (const g of this.gens) {
      const t = g.trees.get(tree)?.at(this.seq);
      if (t === undefined) continue;
      k ??= latin1(key);
      const v = visible(t.map.get(k), this.seq);
      if (v !== undefined) return valueOf(v) ?? undefined;
      if (t.droppedAt > 0) return undefined;
    }
    const desc = this.base.desc(tree);
    return desc === undefined ? undefined : treeGet(this.base.read, desc, key);
  }

  hasTree(tree: string): boolean {
    if (tree === '') return true;
    for (const g of this.gens) {
      const t = g.trees.get(tree)?.at(this.seq);
      if (t === undefined) continue;
      if (t.createdAt !== 0 && t.createdAt <= this.seq) return true;
      if (t.droppedAt > 0) return false;
    }
    return this.base.desc(tree) !== undefined;
  }

  /** Named trees that exist in this view, in byte order of their UTF-8 names. */
  trees(): string[] {
    const names = new Set(this.base.names());
    for (const g of this.gens) for (const name of g.trees.keys()) if (name !== '') names.add(name);
    const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
    return [...names].filter((n) => this.hasTree(n)).sort((a, b) => Buffer.compare(utf8(a), utf8(b)));
  }

  /** [key, value] pairs within the range options, merged from every source. */
  *range(tree: string, opts: RangeBounds): Generator<[Buffer, Buffer]> {
    const span = toSpan(opts);
    if (span.limit <= 0) return;
    const sources: Iterator<[Buffer, Buffer | null]>[] = [];
    let hidden = false;
    for (const g of this.gens) {
      const t = g.trees.get(tree)?.at(this.seq);
      if (t === undefined) continue;
      sources.push(bufferEntries(t, this.seq, span));
      if (t.droppedAt > 0) {
        hidden = true;
        break;
      }
    }
    const desc = hidden ? undefined : this.base.desc(tree);
    if (sources.length === 0) {
      if (desc !== undefined) yield* iterateSpan(this.base.read, desc, span);
      return;
    }
    if (desc !== undefined) sources.push(iterateSpan(this.base.read, desc, { ...span, limit: Infinity }));
    yield* merge(sources, span);
  }
}

/** One tree buffer's entries visible at `seq` within `span`, tombstones included (value null). */
function* bufferEntries(t: TreeBuffer, seq: number, span: Span): Generator<[Buffer, Buffer | null]> {
  const { reverse } = span;
  const start = reverse ? span.upper : span.lower;
  const stop = reverse ? span.lower : span.upper;
  // Keys compare as latin1 strings (string order is byte order).
  const stopKey = stop === undefined ? undefined : latin1(stop.key);
  const past = (k: string): boolean => {
    if (stopKey === undefined) return false;
    if (k === stopKey) return !(stop as { inclusive: boolean }).inclusive;
    return reverse ? k < stopKey : k > stopKey;
  };
  let from = start === undefined ? undefined : latin1(start.key);
  let skipFrom = start !== undefined && !start.inclusive;
  for (;;) {
    // A chunk is read synchronously; the index may change between chunks (new writes), so the next
    // chunk seeks again from the last key rather than keep an iterator. Keys are never removed
    // from a map, and newer writes are invisible at `seq`, so nothing is skipped or repeated.
    const chunk: [string, Buffer | null][] = [];
    let scanned = 0;
    let done = true;
    const index = t.index();
    for (const [k] of reverse ? index.entriesReversed(from) : index.entries(from)) {
      if (skipFrom && k === from) continue;
      if (past(k)) break;
      if (scanned === CHUNK) {
        done = false;
        break;
      }
      scanned++;
      from = k;
      const v = visible(t.map.get(k), seq);
      if (v !== undefined) chunk.push([k, valueOf(v)]);
    }
    for (const [k, value] of chunk) yield [Buffer.from(k, 'latin1'), value];
    if (done) return;
    skipFrom = true;
  }
}

/** Merges sources (highest priority first) in key order; the first source holding a key wins. */
function* merge(sources: Iterator<[Buffer, Buffer | null]>[], span: Span): Generator<[Buffer, Buffer]> {
  const dir = span.reverse ? -1 : 1;
  const heads = sources.map((s) => s.next());
  let yielded = 0;
  for (;;) {
    let best = -1;
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i] as IteratorResult<[Buffer, Buffer | null]>;
      if (h.done === true) continue;
      if (best < 0 || dir * h.value[0].compare((heads[best] as IteratorYieldResult<[Buffer, Buffer | null]>).value[0]) < 0) best = i;
    }
    if (best < 0) return;
    const [key, value] = (heads[best] as IteratorYieldResult<[Buffer, Buffer | null]>).value;
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i] as IteratorResult<[Buffer, Buffer | null]>;
      if (h.done !== true && h.value[0].equals(key)) heads[i] = (sources[i] as Iterator<[Buffer, Buffer | null]>).next();
    }
    if (value === null) continue;
    yield [key, value];
    if (++yielded >= span.limit) return;
  }
}
