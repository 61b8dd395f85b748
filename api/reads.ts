// Reading, on the caller's thread: snapshots, ranges and the argument checks of every read call.
// Reads never wait for the writer: they see the write buffer, then the trees of the last
// checkpoint through the page cache that every thread shares.
import { BirchError } from '../platform/errors.js';
import { MAX_KEY_BYTES } from '../btree/node-format.js';
import type { RangeBounds } from '../btree/cursor.js';
import type { RangeIterator } from '../db/range.js';
import type { Checkpointed, View, ViewHold } from '../db/view.js';
import type { Generation } from '../db/buffer.js';
import { checkOptionNames, toBound, toKey, toTreeName, treeOption, type Bytes } from './input.js';

/**
 * Bounds of a range. Every bound given must hold: with both `gt` and `gte` (or `lt` and `lte`,
 * or a `prefix` beside them) the tighter one decides, so `{ gte: 30, gt: 40 }` starts after 40.
 * (abstract-level lets `gte` and `lte` take precedence instead; birchdb/level follows that rule.)
 */
export interface RangeOptions {
  gt?: Bytes;
  gte?: Bytes;
  lt?: Bytes;
  lte?: Bytes;
  prefix?: Bytes;
  reverse?: boolean;
  limit?: number;
  tree?: string;
}

/** A reader's claim on one state: its seq, buffer generations and checkpoint. */
export interface Pin {
  seq: number;
  checkpointId: number;
  since: number;
  /** The buffer generations its view reads: kept in memory while it lives, even once checkpointed. */
  gens?: readonly Generation[];
}

/** What a snapshot needs of its database. */
export interface SnapshotOwner {
  /** Throws DB_CLOSED once the database is closing. */
  assertReadable(): void;
  /** Ends a zero-copy view: called by every read. */
  readonly hold: ViewHold;
  unpin(pin: Pin): void;
}

export function treeOf(tree: unknown): string {
  return tree === undefined ? '' : toTreeName(tree);
}

/**
 * Keys of point reads, checked like any key; a string is encoded into one reused buffer (a read
 * keeps no key), so that a read of a string key allocates nothing for it.
 */
export class ReadKeys {
  readonly #scratch = Buffer.allocUnsafeSlow(3 * MAX_KEY_BYTES);
  /** A view of the scratch for each length, made once: handing one out allocates nothing. */
  readonly #views: Buffer[] = [];

  key(k: unknown): Buffer {
    // A string of at most MAX_KEY_BYTES UTF-16 units has at most 3 bytes of UTF-8 per unit.
    if (typeof k !== 'string' || k.length === 0 || k.length > MAX_KEY_BYTES) return toKey(k);
    const n = this.#scratch.write(k, 0, 'utf8');
    if (n > MAX_KEY_BYTES) return toKey(k);
    return (this.#views[n] ??= this.#scratch.subarray(0, n));
  }
}

const RANGE_OPTION_NAMES = ['gt', 'gte', 'lt', 'lte', 'prefix', 'reverse', 'limit', 'tree'] as const;

export function toRangeBounds(opts: RangeOptions): RangeBounds {
  if (typeof opts !== 'object' || opts === null) throw new BirchError('BAD_OPTION', 'range options must be an object');
  checkOptionNames(opts, RANGE_OPTION_NAMES, 'range()');
  if (opts.limit !== undefined && (typeof opts.limit !== 'number' || !(Number.isInteger(opts.limit) || opts.limit === Infinity) || opts.limit < 0)) {
    throw new BirchError('BAD_OPTION', `range option limit must be a whole number of entries, 0 or more (Infinity: no limit), not ${String(opts.limit)}`);
  }
  if (opts.reverse !== undefined && typeof opts.reverse !== 'boolean') throw new BirchError('BAD_OPTION', 'range option reverse must be a boolean');
  const b: RangeBounds = {};
  for (const name of ['gt', 'gte', 'lt', 'lte', 'prefix'] as const) {
    const v = toBound(opts[name], name);
    if (v !== undefined) b[name] = v;
  }
  if (opts.reverse !== undefined) b.reverse = opts.reverse;
  if (opts.limit !== undefined) b.limit = opts.limit;
  return b;
}

/** A pinned, read-only view of one state. Release it: until then its pages are not reused. */
export class Snapshot {
  readonly #db: SnapshotOwner;
  readonly #view: View;
  readonly #pin: Pin;
  readonly #keys: ReadKeys;
  #released = false;
  /** @internal */
  constructor(db: SnapshotOwner, view: View, pin: Pin, keys: ReadKeys) {
    this.#db = db;
    this.#view = view;
    this.#pin = pin;
    this.#keys = keys;
  }
  /** The last batch this snapshot sees. */
  get seq(): number {
    return this.#view.seq;
  }
  #check(): void {
    if (this.#released) throw new BirchError('TXN_CLOSED', `the snapshot at batch ${this.#view.seq} was released`);
    this.#db.assertReadable();
  }
  get(key: Bytes, opts: { tree?: string } = {}): Buffer | undefined {
    this.#check();
    this.#db.hold.release();
    return this.#view.get(treeOption(opts, 'snapshot.get()'), this.#keys.key(key));
  }
  /** Values of `keys` in order (undefined where absent), as of this snapshot. */
  getMany(keys: readonly Bytes[], opts: { tree?: string } = {}): (Buffer | undefined)[] {
    this.#check();
    this.#db.hold.release();
    if (!Array.isArray(keys)) throw new BirchError('BAD_OPTION', 'getMany() takes an array of keys');
    const tree = treeOption(opts, 'snapshot.getMany()');
    const out: (Buffer | undefined)[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = this.#view.get(tree, this.#keys.key(keys[i]));
    return out;
  }
  /** A zero-copy read (see Birch.getView): valid until the next read on this thread. */
  getView(key: Bytes, opts: { tree?: string } = {}): Buffer | undefined {
    this.#check();
    const hold = this.#db.hold;
    hold.release();
    return this.#view.getView(treeOption(opts, 'snapshot.getView()'), this.#keys.key(key), hold);
  }
  range(opts: RangeOptions = {}): RangeIterator {
    return this.rangeOf(treeOf(opts.tree), toRangeBounds(opts));
  }
  /** @internal A range of checked options. */
  rangeOf(tree: string, bounds: RangeBounds): RangeIterator {
    this.#check();
    return this.#view.range(tree, bounds, () => {
      this.#check();
      this.#db.hold.release();
    });
  }
  trees(): string[] {
    this.#check();
    return this.#view.trees();
  }
  /** @internal The checkpoint under this snapshot (its write buffer aside): export reads it from other threads. */
  get checkpointed(): Checkpointed {
    this.#check();
    return this.#view.base;
  }
  /** @internal The entries of `tree` as of this snapshot's checkpoint (writes buffered since not counted): for progress. */
  checkpointedEntries(tree: string | undefined): number {
    this.#check();
    return this.#view.base.desc(treeOf(tree))?.entries ?? 0;
  }
  get released(): boolean {
    return this.#released;
  }
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#db.unpin(this.#pin);
  }
}

/** A range's entries in order, and seek() to move within them (see RangeIterator.seek). */
export interface SeekableRange extends IterableIterator<[Buffer, Buffer]> {
  seek(target: Bytes): void;
}

/** What a LiveRange opens at its first step: a snapshot (of this thread or a reader thread) and a range over it. */
export interface LiveRangeParts {
  snap: { release(): void };
  it: Iterator<[Buffer, Buffer]> & Pick<SeekableRange, 'seek'>;
}

/**
 * A range of the live state that takes its snapshot at its first step (as a generator would), so
 * that a range made and never iterated holds nothing back; the snapshot is released at its end, or
 * when a loop breaks out of it.
 */
export class LiveRange implements SeekableRange {
  readonly #open: () => LiveRangeParts;
  #inner: LiveRangeParts | undefined;
  #ended = false;

  constructor(open: () => LiveRangeParts) {
    this.#open = open;
  }

  [Symbol.iterator](): this {
    return this;
  }

  next(): IteratorResult<[Buffer, Buffer]> {
    if (this.#ended) return { done: true, value: undefined };
    const inner = (this.#inner ??= this.#open());
    let r: IteratorResult<[Buffer, Buffer]>;
    try {
      r = inner.it.next();
    } catch (err) {
      this.#end();
      throw err;
    }
    if (r.done === true) this.#end();
    return r;
  }

  return(): IteratorResult<[Buffer, Buffer]> {
    this.#end();
    return { done: true, value: undefined };
  }

  throw(err?: unknown): IteratorResult<[Buffer, Buffer]> {
    this.#end();
    throw err;
  }

  /**
   * Moves the range (see RangeIterator.seek), on the snapshot its first step took (or takes now).
   * Once it has ended, its snapshot is released and it cannot seek: to seek back after the end,
   * iterate `db.snapshot().range()`, which ends when you release the snapshot.
   */
  seek(target: Bytes): void {
    if (this.#ended) throw new BirchError('TXN_CLOSED', 'seek(): this range ended and released its snapshot; to seek after the end, range over db.snapshot() instead');
    const inner = (this.#inner ??= this.#open());
    try {
      inner.it.seek(target);
    } catch (err) {
      this.#end();
      throw err;
    }
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#inner?.it.return?.();
    this.#inner?.snap.release();
  }
}
