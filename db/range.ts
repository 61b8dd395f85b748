// Ranges over one tree of one View: the tree's entries (a TreeCursor over the checkpoint's pages)
// merged in key order with the write buffer's generations (newest first; a newer source wins for a
// key, a tombstone hides it). A plain iterator object, not a stack of generators: a tree whose
// buffer holds nothing costs a batch refill per leaf and one tuple per entry, and `limit` bounds
// what the tree side reads ahead.
import { NO_SLOT, type TreeBuffer } from './buffer.js';
import { asBytes, latin1 } from '../pager/bytes.js';
import { BirchError } from '../platform/errors.js';
import { seekSpan, type Span, type TreeCursor } from '../btree/cursor.js';

/** Entries read from the tree per refill: at most a few leaves, so a broken-off range wastes little. */
const TREE_BATCH = 128;
/** Entries of a buffered tree read per step of a range: never an index iterator held across a yield. */
const BUFFER_CHUNK = 64;

type Entry = [Buffer, Buffer | null];

/** Where a range reads from: its buffered generations at its seq, and a cursor over the tree for a span. */
export interface RangeSources {
  buffered: readonly TreeBuffer[];
  seq: number;
  /** A cursor over the tree's entries within `span`; undefined if the view has no tree (or a buffered drop hides it). */
  cursor(span: Span): TreeCursor | undefined;
}

export class RangeIterator implements IterableIterator<[Buffer, Buffer]> {
  readonly #sources: RangeSources;
  /** The span the range was opened with: a seek narrows it afresh, never the last seek's. */
  readonly #span: Span;
  #cursor: TreeCursor | undefined;
  #buffers: Iterator<Entry>[] = [];
  #heads: (Entry | undefined)[] = [];
  readonly #dir: 1 | -1;
  readonly #check: () => void;
  #left: number;
  #finished = false;
  // The tree's current batch.
  readonly #keys: Buffer[] = [];
  readonly #values: Buffer[] = [];
  #pos = 0;
  #treeDone = false;

  constructor(sources: RangeSources, span: Span, check: () => void) {
    this.#sources = sources;
    this.#span = span;
    this.#dir = span.reverse ? -1 : 1;
    this.#left = span.limit;
    this.#check = check;
    this.#start(span);
  }

  /** Sources positioned at the start of `span`, and no tree batch read yet. */
  #start(span: Span): void {
    const s = this.#sources;
    this.#cursor = s.cursor(span);
    this.#buffers = s.buffered.map((t) => bufferEntries(t, s.seq, span));
    this.#heads = this.#buffers.map((b) => nextOf(b));
    this.#keys.length = 0;
    this.#values.length = 0;
    this.#pos = 0;
    this.#treeDone = this.#cursor === undefined;
  }

  /**
   * Moves to the first entry at or after `target` (a reverse range: at or before it) that the
   * range's own bounds allow, from wherever the range is, ended or not: the next step yields it.
   * A target before the range's start (in its direction) moves to that start; one past its end
   * leaves nothing to yield. The entries already yielded still count toward `limit`. The range
   * reads the same state as before: a seek never sees newer writes.
   */
  seek(target: Uint8Array | string): void {
    const key = seekTarget(target);
    this.#check();
    this.#finished = false;
    this.#start(seekSpan(this.#span, key));
  }

  [Symbol.iterator](): this {
    return this;
  }

  /**
   * The next entry. A step that throws (a released snapshot, a closed database, a damaged page or
   * a failed read) ends the range: the cursor's position after a failed read is not known, so a
   * later step must not go on from it (it could skip or repeat entries); it reports the end.
   */
  next(): IteratorResult<[Buffer, Buffer]> {
    if (this.#finished) return { done: true, value: undefined };
    try {
      return this.#step();
    } catch (err) {
      this.#finish();
      throw err;
    }
  }

  #step(): IteratorResult<[Buffer, Buffer]> {
    this.#check();
    if (this.#left <= 0) return this.#finish();
    if (this.#buffers.length === 0) {
      if (this.#pos === this.#keys.length && !this.#refill()) return this.#finish();
      const i = this.#pos++;
      this.#left--;
      return { done: false, value: [this.#keys[i] as Buffer, this.#values[i] as Buffer] };
    }
    return this.#nextMerged();
  }

  /** The next entry of the merge: the smallest key in the direction of travel; equal keys in older sources are skipped. */
  #nextMerged(): IteratorResult<[Buffer, Buffer]> {
    const heads = this.#heads;
    const dir = this.#dir;
    for (;;) {
      let bestKey: Buffer | undefined;
      let bestValue: Buffer | null = null;
      for (let i = 0; i < heads.length; i++) {
        const h = heads[i];
        if (h !== undefined && (bestKey === undefined || dir * h[0].compare(bestKey) < 0)) {
          bestKey = h[0];
          bestValue = h[1];
        }
      }
      // The tree is the oldest source: it wins only with a key no buffer holds.
      if (this.#pos === this.#keys.length && !this.#treeDone) this.#refill();
      const treeKey = this.#pos < this.#keys.length ? (this.#keys[this.#pos] as Buffer) : undefined;
      if (treeKey !== undefined) {
        const c = bestKey === undefined ? -1 : dir * treeKey.compare(bestKey);
        if (c < 0) {
          bestKey = treeKey;
          bestValue = this.#values[this.#pos] as Buffer;
          this.#pos++;
        } else if (c === 0) this.#pos++;
      }
      if (bestKey === undefined) return this.#finish();
      for (let i = 0; i < heads.length; i++) {
        const h = heads[i];
        if (h !== undefined && h[0].equals(bestKey)) heads[i] = nextOf(this.#buffers[i] as Iterator<Entry>);
      }
      if (bestValue === null) continue;
      this.#left--;
      return { done: false, value: [bestKey, bestValue] };
    }
  }

  /** The tree's next batch; false when it has no more. */
  #refill(): boolean {
    if (this.#treeDone) return false;
    const keys = this.#keys;
    const values = this.#values;
    keys.length = 0;
    values.length = 0;
    this.#pos = 0;
    const n = (this.#cursor as TreeCursor).next(keys, values, Math.min(TREE_BATCH, this.#left), this.#left);
    if (n === 0) this.#treeDone = true;
    return n > 0;
  }

  #finish(): IteratorResult<[Buffer, Buffer]> {
    if (!this.#finished) {
      this.#finished = true;
      this.#keys.length = 0;
      this.#values.length = 0;
    }
    return { done: true, value: undefined };
  }

  /** Ends the range early (a `break` out of for...of): what it holds is released. */
  return(): IteratorResult<[Buffer, Buffer]> {
    return this.#finish();
  }

  throw(err?: unknown): IteratorResult<[Buffer, Buffer]> {
    this.#finish();
    throw err;
  }
}

/** A seek's target as bytes: a string is UTF-8, as keys are everywhere. */
function seekTarget(t: unknown): Buffer {
  const b = asBytes(t);
  if (b === undefined) throw new BirchError('KEY_INVALID', `seek() takes a Uint8Array or a string, not ${t === null ? 'null' : typeof t}`);
  return b;
}

function nextOf(it: Iterator<Entry>): Entry | undefined {
  const r = it.next();
  return r.done === true ? undefined : r.value;
}

/** One tree buffer's entries visible at `seq` within `span`, tombstones included (value null). */
function* bufferEntries(t: TreeBuffer, seq: number, span: Span): Generator<Entry> {
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
    for (const [k, entry] of reverse ? index.entriesReversed(from) : index.entries(from)) {
      if (skipFrom && k === from) continue;
      if (past(k)) break;
      if (scanned === BUFFER_CHUNK) {
        done = false;
        break;
      }
      scanned++;
      from = k;
      const v = t.visibleAt(entry, seq);
      if (v !== NO_SLOT) chunk.push([k, t.valueOf(v)]);
    }
    for (const [k, value] of chunk) yield [Buffer.from(k, 'latin1'), value];
    if (done) return;
    skipFrom = true;
  }
}
