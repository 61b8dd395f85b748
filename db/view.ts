// Reading the database as of one batch: the write buffer's generations first (newest first), then
// the trees of the published checkpoint. A View is one such reading: the live state (the last
// acknowledged batch) or a pinned snapshot. Ranges merge the sources in key order (range.ts); a
// newer source wins for a key, and a tombstone hides the key.
import { PAGE_SIZE } from '../pager/page-format.js';
import { PageReader, type PageSource } from '../pager/reader.js';
import { metaPageOf, type DbState } from '../pager/meta-format.js';
import { DATA_FILE } from '../pager/data-file.js';
import { copyOverflow, findCell, get as treeGet, type TreeDesc } from '../btree/tree.js';
import { isOverflowCell, valueLengthOfCell, valueStartOfCell } from '../btree/node.js';
import { u32 } from '../pager/bytes.js';
import { TreeCursor, toSpan, type RangeBounds, type Span } from '../btree/cursor.js';
import { decodeCatalogValue, decodeRoots, type Roots } from '../btree/roots-format.js';
import { NO_SLOT, hashBytes, type Generation, type TreeBuffer } from './buffer.js';
import { RangeIterator } from './range.js';

/** The trees of one checkpoint, as the main thread reads them. */
export class Checkpointed {
  readonly state: DbState;
  readonly roots: Roots;
  readonly pages: PageSource;
  /** Named trees' descriptors, looked up in the catalog once each (this checkpoint never changes). */
  readonly #descs = new Map<string, TreeDesc | null>();

  constructor(state: DbState, pages: PageSource) {
    this.state = state;
    this.roots = decodeRoots(state.roots, { file: DATA_FILE, pageNo: metaPageOf(state.checkpointId) });
    this.pages = pages;
  }

  /** The descriptor of tree `name` ('' for the default tree), or undefined if it does not exist. */
  desc(name: string): TreeDesc | undefined {
    if (name === '') return this.roots.main;
    let d = this.#descs.get(name);
    if (d === undefined) {
      const raw = treeGet(this.pages, this.roots.catalog, Buffer.from(name, 'utf8'));
      d = raw === undefined ? null : decodeCatalogValue(raw, name, { file: DATA_FILE });
      this.#descs.set(name, d);
    }
    return d ?? undefined;
  }

  names(): string[] {
    const out: string[] = [];
    const cursor = new TreeCursor(this.pages, this.roots.catalog, toSpan({}));
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    while (cursor.next(keys, values, 256, Infinity) > 0) {
      for (const k of keys) out.push(k.toString('utf8'));
      keys.length = 0;
      values.length = 0;
    }
    return out;
  }
}

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
    const gens = this.gens;
    // The buffer first: a generation that holds nothing of the tree costs one probe of a small
    // map; one that holds it, a hash of the key's bytes (no string is made).
    // The key's hash, once for every generation that holds the tree (-1: not needed yet).
    let h = -1;
    for (let g = 0; g < gens.length; g++) {
      const t = (gens[g] as Generation).trees.get(tree)?.at(this.seq);
      if (t === undefined) continue;
      if (h < 0) h = hashBytes(key, 0, key.length);
      const v = t.visibleAt(t.find(key, 0, key.length, h), this.seq);
      if (v !== NO_SLOT) return t.valueOf(v) ?? undefined;
      if (t.droppedAt > 0) return undefined;
    }
    const desc = this.base.desc(tree);
    return desc === undefined ? undefined : treeGet(this.base.pages, desc, key);
  }

  /**
   * The value of `key` without a copy where it can be had (a zero-copy read): a view of the cached
   * page's bytes, whose frame `hold` pins until its next release(); of the buffered batch's bytes;
   * or, for a value on overflow pages or a page read outside the cache, of a copy `hold` keeps.
   */
  getView(tree: string, key: Buffer, hold: ViewHold): Buffer | undefined {
    let h = -1;
    for (const g of this.gens) {
      const t = g.trees.get(tree)?.at(this.seq);
      if (t === undefined) continue;
      if (h < 0) h = hashBytes(key, 0, key.length);
      const v = t.visibleAt(t.find(key, 0, key.length, h), this.seq);
      if (v !== NO_SLOT) {
        hold.generation = g;
        return t.valueView(v);
      }
      if (t.droppedAt > 0) return undefined;
    }
    const desc = this.base.desc(tree);
    if (desc === undefined || desc.root === 0) return undefined;
    const src = this.base.pages;
    src.begin();
    try {
      const cell = findCell(src, desc, key);
      if (cell < 0) return undefined;
      const b = src.bytes;
      const len = valueLengthOfCell(b, cell);
      const at = valueStartOfCell(b, cell);
      // An overflow value is gathered straight into the hold's reused buffer: one copy.
      if (isOverflowCell(b, cell)) return copyOverflow(src, u32(b, at), len, hold.scratch(len));
      if (src instanceof PageReader && b === src.cache.bytes) {
        // Pinned inside the epoch, so that no thread can reuse the frame before the pin counts.
        hold.pin(src, cell - (cell % PAGE_SIZE));
        return b.subarray(at, at + len);
      }
      return hold.keep(b, at, len);
    } finally {
      src.end();
    }
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

  /**
   * [key, value] pairs within the range options, merged from every source. `check` runs before
   * each entry is handed out (a released snapshot, a closing database), `done` once at the end.
   */
  range(tree: string, opts: RangeBounds, check: () => void): RangeIterator {
    const span = toSpan(opts);
    const buffered: TreeBuffer[] = [];
    let hidden = false;
    for (const g of this.gens) {
      const t = g.trees.get(tree)?.at(this.seq);
      if (t === undefined) continue;
      buffered.push(t);
      if (t.droppedAt > 0) {
        hidden = true;
        break;
      }
    }
    const desc = hidden ? undefined : this.base.desc(tree);
    const pages = this.base.pages;
    const cursor = (s: Span): TreeCursor | undefined => (desc === undefined ? undefined : new TreeCursor(pages, desc, s));
    return new RangeIterator({ buffered, seq: this.seq, cursor }, span, check);
  }
}

/**
 * What a thread's last zero-copy read holds until its next read: a pinned frame of the page cache
 * (it stays as it is while pinned, even if its page is freed and its number reused), or a private
 * copy (values on overflow pages, pages read outside the cache).
 */
export class ViewHold {
  #reader: PageReader | undefined;
  #pinned = -1;
  #copy: Buffer = Buffer.alloc(0);
  /** The write-buffer generation the last view lies in (its bytes are not reused while held). */
  generation: Generation | undefined;

  pin(reader: PageReader, frameOffset: number): void {
    reader.cache.pin(frameOffset);
    this.#reader = reader;
    this.#pinned = frameOffset;
  }

  /** A view of a private copy of `len` bytes at `at` of `src`, reused by the next such read. */
  keep(src: Buffer, at: number, len: number): Buffer {
    const out = this.scratch(len);
    src.copy(out, 0, at, at + len);
    return out.subarray(0, len);
  }

  /** The reused buffer, at least `len` bytes: what the next kept or gathered value is copied into. */
  scratch(len: number): Buffer {
    if (this.#copy.length < len) this.#copy = Buffer.allocUnsafeSlow(Math.max(len, 2 * this.#copy.length, 4096));
    return this.#copy;
  }

  /** Called by every read of the thread: the previous view may change from now on. */
  release(): void {
    this.generation = undefined;
    if (this.#pinned < 0) return;
    (this.#reader as PageReader).cache.unpin(this.#pinned);
    this.#pinned = -1;
  }
}
