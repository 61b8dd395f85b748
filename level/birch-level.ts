// BirchLevel: a birchdb database behind abstract-level's interface (the one `level`,
// `classic-level` and `memory-level` share), so that code and plugins written for it (sublevels,
// encodings, hooks, events, read streams) run on birchdb by changing one line.
//
// It goes through birchdb's public API only. What differs between the two, and how it is mapped:
//  - Range bounds: abstract-level lets `gte` win over `gt` and `lte` over `lt`; birchdb's range()
//    holds every bound given. The adapter drops `gt` when `gte` is given, `lt` when `lte` is.
//  - The empty key: abstract-level stores it and sorts it first; birchdb's formats define a key as
//    1 to MAX_KEY_BYTES bytes (FORMAT.md: a journal operation with an empty key is invalid), and
//    one value of one key does not justify a format change. The adapter keeps the empty key's
//    value in a tree of its own (EMPTY_KEY_TREE, under a key that names the store's tree:
//    emptyKeySlot), written in the
//    same atomic batches as the rest, read in the same snapshots, and yields it first (last in
//    reverse) wherever the range allows it. Every other key is stored as it is, in the tree the
//    `tree` option names (the default tree unless given): a BirchLevel over an existing birchdb
//    directory reads its data as it is.
//  - Reads are synchronous in birchdb; the adapter's promises resolve at once, and each read, each
//    iterator and each getMany reads one state (an iterator pins a snapshot until it is closed).
import fs from 'node:fs';
import path from 'node:path';
import { AbstractIterator, AbstractKeyIterator, AbstractLevel, AbstractSnapshot, AbstractValueIterator } from 'abstract-level';
import type { AbstractDatabaseOptions, AbstractOpenOptions } from 'abstract-level';
import { MAX_KEY_BYTES, open, type Birch, type BirchOptions, type Snapshot, type SeekableRange, type RangeOptions } from '../api/index.js';

/** The tree that holds the empty key's value, and the key it is held under. */
export const EMPTY_KEY_TREE = 'birchdb/level: the empty key';
/**
 * The key EMPTY_KEY_TREE holds a store's empty key under: 0 for a store in the default tree, 1
 * and the tree's name for one in a named tree (stores in different trees of one directory keep
 * their empty keys apart).
 */
function emptyKeySlot(tree: string | undefined): Buffer {
  return tree === undefined ? Buffer.from([0]) : Buffer.concat([Buffer.from([1]), Buffer.from(tree, 'utf8')]);
}

type Format = Buffer | Uint8Array | string;
type Encoding = 'buffer' | 'view' | 'utf8';

export interface BirchLevelOptions<K, V> extends AbstractDatabaseOptions<K, V> {
  /** Options for birchdb's open() (cache size, memory limit, sync...). */
  birch?: BirchOptions;
  /** The birchdb tree that holds this store's entries (default: the default tree). */
  tree?: string;
}

/** The file every birchdb directory holds once created: whether a database exists there. */
const DATA_FILE = 'data.birch';

function bytesOf(k: Format): Buffer {
  if (typeof k === 'string') return Buffer.from(k, 'utf8');
  return Buffer.isBuffer(k) ? k : Buffer.from(k.buffer, k.byteOffset, k.byteLength);
}

function isEmptyKey(k: Format): boolean {
  return typeof k === 'string' ? k.length === 0 : k.byteLength === 0;
}

function encode(b: Buffer, enc: Encoding): Format {
  if (enc === 'utf8') return b.toString('utf8');
  if (enc === 'view') return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return b;
}

/** Where reads of one call or iterator come from: the live handle or a snapshot. */
interface Source {
  get(key: Format, opts: { tree?: string }): Buffer | undefined;
  getMany(keys: Format[], opts: { tree?: string }): (Buffer | undefined)[];
  range(opts: RangeOptions): SeekableRange;
}

interface LevelRange {
  gt?: Format;
  gte?: Format;
  lt?: Format;
  lte?: Format;
  reverse?: boolean;
  limit?: number;
}

/**
 * An abstract-level range as birchdb bounds (gte over gt, lte over lt), split into the part in
 * the tree and whether the empty key is in it. `none`: the range is empty (lt '').
 */
function splitRange(o: LevelRange, tree: string | undefined): { birch: RangeOptions; empty: boolean; none: boolean } {
  const birch: RangeOptions = tree === undefined ? {} : { tree };
  let empty = true;
  let none = false;
  if (o.gte !== undefined) {
    if (!isEmptyKey(o.gte)) {
      birch.gte = bytesOf(o.gte);
      empty = false;
    }
  } else if (o.gt !== undefined) {
    empty = false;
    if (!isEmptyKey(o.gt)) birch.gt = bytesOf(o.gt);
  }
  if (o.lte !== undefined) {
    // lte '': the empty key alone.
    if (isEmptyKey(o.lte)) none = true;
    else birch.lte = bytesOf(o.lte);
  } else if (o.lt !== undefined) {
    if (isEmptyKey(o.lt)) {
      none = true;
      empty = false;
    } else birch.lt = bytesOf(o.lt);
  }
  if (o.reverse === true) birch.reverse = true;
  return { birch, empty, none };
}

/**
 * Whether `target` lies within the range by abstract-level's rule (gte over gt, lte over lt): a
 * seek to a target outside it ends the iterator (abstract-level's seek tests), where birchdb's own
 * seek moves to the range's edge.
 */
function inRange(o: LevelRange, target: Buffer): boolean {
  if (o.gte !== undefined) {
    if (Buffer.compare(target, bytesOf(o.gte)) < 0) return false;
  } else if (o.gt !== undefined && Buffer.compare(target, bytesOf(o.gt)) <= 0) return false;
  if (o.lte !== undefined) {
    if (Buffer.compare(target, bytesOf(o.lte)) > 0) return false;
  } else if (o.lt !== undefined && Buffer.compare(target, bytesOf(o.lt)) >= 0) return false;
  return true;
}

/** A key birchdb cannot hold (longer than MAX_KEY_BYTES): a read of it finds nothing. */
function tooLong(k: Format): boolean {
  return (typeof k === 'string' ? Buffer.byteLength(k, 'utf8') : k.byteLength) > MAX_KEY_BYTES;
}

export class BirchLevel<KDefault = string, VDefault = string> extends AbstractLevel<Format, KDefault, VDefault> {
  readonly location: string;
  readonly #birchOptions: BirchOptions;
  readonly #tree: string | undefined;
  readonly #emptySlot: Buffer;
  #db: Birch | undefined;

  constructor(location: string, options: BirchLevelOptions<KDefault, VDefault> = {}) {
    // birchdb's own options stay here: abstract-level hands the rest to open() and its hooks.
    const { birch, tree, ...levelOptions } = options;
    super(
      {
        encodings: { buffer: true, view: true, utf8: true },
        seek: true,
        implicitSnapshots: true,
        explicitSnapshots: true,
        getSync: true,
        has: true,
        createIfMissing: true,
        errorIfExists: true,
        permanence: true,
        clear: true,
        status: true,
        deferredOpen: true,
        promises: true,
        events: { write: true },
        // getSync and has are newer than level-supports' types.
      } as ConstructorParameters<typeof AbstractLevel>[0],
      levelOptions,
    );
    if (typeof location !== 'string' || location === '') throw new TypeError('BirchLevel: the location must be a directory path (a non-empty string)');
    this.location = location;
    if (tree !== undefined && (typeof tree !== 'string' || tree === '' || tree === EMPTY_KEY_TREE)) {
      throw new TypeError(`BirchLevel: option tree names a birchdb tree (a non-empty string, not "${EMPTY_KEY_TREE}"); leave it out for the default tree`);
    }
    this.#birchOptions = birch ?? {};
    this.#tree = tree;
    this.#emptySlot = emptyKeySlot(tree);
  }

  /** The birchdb handle underneath (open only while this store is): stats(), backup(), compact()... */
  get birch(): Birch {
    if (this.#db === undefined) throw new Error('BirchLevel: the database is not open');
    return this.#db;
  }

  #treeOpts(): { tree?: string } {
    return this.#tree === undefined ? {} : { tree: this.#tree };
  }

  async _open(options: AbstractOpenOptions): Promise<void> {
    const backend = this.#birchOptions.backend;
    const exists = backend !== undefined ? backend.list().includes(DATA_FILE) : fs.existsSync(path.join(this.location, DATA_FILE));
    if (!exists && options.createIfMissing === false) throw new Error(`BirchLevel: the database at ${this.location} does not exist (createIfMissing is false)`);
    if (exists && options.errorIfExists === true) throw new Error(`BirchLevel: a database exists at ${this.location} (errorIfExists is true)`);
    this.#db = await open(this.location, this.#birchOptions);
  }

  async _close(): Promise<void> {
    const db = this.#db;
    try {
      await db?.close();
    } catch (err) {
      // A handle that failed earlier (a write or sync error) closes anyway and reports that
      // failure again: the store is closed (the callers of the failed writes were told). Only a
      // handle still open makes the close fail.
      if (db !== undefined && !db.closed) throw err;
    }
    this.#db = undefined;
  }

  /** Runs a read on `snapshot` (an explicit one: referenced meanwhile, so that it cannot close under it) or the live handle. */
  #withSource<T>(snapshot: unknown, read: (src: Source) => T): T {
    if (!(snapshot instanceof BirchLevelSnapshot)) return read(this.birch);
    // Throws LEVEL_SNAPSHOT_NOT_OPEN once the snapshot is closing or closed.
    snapshot.ref();
    try {
      return read(snapshot.inner);
    } finally {
      snapshot.unref();
    }
  }

  #read(src: Source, key: Format): Buffer | undefined {
    if (tooLong(key)) return undefined;
    return isEmptyKey(key) ? src.get(this.#emptySlot, { tree: EMPTY_KEY_TREE }) : src.get(key, this.#treeOpts());
  }

  #readMany(src: Source, keys: Format[]): (Buffer | undefined)[] {
    if (!keys.some((k) => isEmptyKey(k) || tooLong(k))) return src.getMany(keys, this.#treeOpts());
    // One state: every read below runs before any acknowledgement can be handled.
    return keys.map((k) => this.#read(src, k));
  }

  async _get(key: Format, options: { valueEncoding: Encoding; snapshot?: unknown }): Promise<Format | undefined> {
    return this._getSync(key, options);
  }

  _getSync(key: Format, options: { valueEncoding: Encoding; snapshot?: unknown }): Format | undefined {
    const v = this.#withSource(options.snapshot, (src) => this.#read(src, key));
    return v === undefined ? undefined : encode(v, options.valueEncoding);
  }

  async _getMany(keys: Format[], options: { valueEncoding: Encoding; snapshot?: unknown }): Promise<(Format | undefined)[]> {
    return this.#withSource(options.snapshot, (src) => this.#readMany(src, keys)).map((v) => (v === undefined ? undefined : encode(v, options.valueEncoding)));
  }

  async _has(key: Format, options: { snapshot?: unknown }): Promise<boolean> {
    return this.#withSource(options.snapshot, (src) => this.#read(src, key)) !== undefined;
  }

  async _hasMany(keys: Format[], options: { snapshot?: unknown }): Promise<boolean[]> {
    return this.#withSource(options.snapshot, (src) => this.#readMany(src, keys)).map((v) => v !== undefined);
  }

  #op(type: 'put' | 'del', key: Format, value?: Format): { type: 'put'; key: Format; value: Format; tree?: string } | { type: 'del'; key: Format; tree?: string } {
    const where = isEmptyKey(key) ? { tree: EMPTY_KEY_TREE } : this.#treeOpts();
    const k = isEmptyKey(key) ? this.#emptySlot : key;
    return type === 'put' ? { type, key: k, value: value as Format, ...where } : { type, key: k, ...where };
  }

  _put(key: Format, value: Format): Promise<void> {
    return this.birch.batch([this.#op('put', key, value)]);
  }

  _del(key: Format): Promise<void> {
    return this.birch.batch([this.#op('del', key)]);
  }

  _batch(operations: { type: 'put' | 'del'; key: Format; value?: Format }[]): Promise<void> {
    return this.birch.batch(operations.map((o) => this.#op(o.type, o.key, o.value)));
  }

  /**
   * Deletes the range as of one snapshot, in atomic batches of CLEAR_BATCH keys. Not atomic as a
   * whole, as abstract-level allows. The batches of a pass (CLEAR_PASS_BATCHES) are all submitted
   * before the first is awaited: birchdb applies batches in submission order, so a write the
   * caller makes after calling clear() comes after them and is not undone. A range past one pass
   * waits for each pass before the next, so that what waits in memory stays bounded (about a
   * pass's keys); a write made meanwhile to a key of a later pass is deleted by it.
   */
  async _clear(options: LevelRange & { snapshot?: unknown }): Promise<void> {
    const db = this.birch;
    const explicit = options.snapshot instanceof BirchLevelSnapshot ? options.snapshot : undefined;
    explicit?.ref();
    const snap = explicit === undefined ? db.snapshot() : undefined;
    const src: Source = explicit?.inner ?? (snap as Snapshot);
    try {
      const { birch, empty, none } = splitRange(options, this.#tree);
      let left = options.limit === undefined || options.limit < 0 ? Infinity : options.limit;
      let ops: { type: 'del'; key: Format; tree?: string }[] = [];
      let submitted: Promise<void>[] = [];
      const settle = async (): Promise<void> => {
        const failed = (await Promise.allSettled(submitted)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
        submitted = [];
        if (failed !== undefined) throw failed.reason;
      };
      const flush = (): void => {
        if (ops.length === 0) return;
        submitted.push(db.batch(ops));
        ops = [];
      };
      const slot = this.#emptySlot;
      const emptyHere = empty && src.get(slot, { tree: EMPTY_KEY_TREE }) !== undefined;
      if (emptyHere && options.reverse !== true && left > 0) {
        ops.push({ type: 'del', key: slot, tree: EMPTY_KEY_TREE });
        left--;
      }
      if (!none) {
        for (const [k] of src.range({ ...birch, ...(left === Infinity ? {} : { limit: left }) })) {
          ops.push({ type: 'del', key: k, ...this.#treeOpts() });
          left--;
          if (ops.length < CLEAR_BATCH) continue;
          flush();
          if (submitted.length >= CLEAR_PASS_BATCHES) await settle();
        }
      }
      if (emptyHere && options.reverse === true && left > 0) ops.push({ type: 'del', key: slot, tree: EMPTY_KEY_TREE });
      flush();
      await settle();
    } finally {
      snap?.release();
      explicit?.unref();
    }
  }

  /** The entries of a range, for an iterator of any kind. */
  #cursor(options: LevelRange & { snapshot?: unknown }): RangeCursor {
    const explicit = options.snapshot instanceof BirchLevelSnapshot ? options.snapshot : undefined;
    // Throws LEVEL_SNAPSHOT_NOT_OPEN once the snapshot is closing, before the iterator exists.
    explicit?.checkOpen();
    const snap = explicit === undefined ? this.birch.snapshot() : undefined;
    try {
      return new RangeCursor(options, explicit?.inner ?? (snap as Snapshot), { own: snap }, this.#tree);
    } catch (err) {
      snap?.release();
      throw err;
    }
  }

  _iterator(options: LevelRange & { keys: boolean; values: boolean; keyEncoding: Encoding; valueEncoding: Encoding; snapshot?: unknown }): BirchLevelIterator<KDefault, VDefault> {
    return new BirchLevelIterator(this, options, this.#cursor(options));
  }

  _keys(options: LevelRange & { keyEncoding: Encoding; snapshot?: unknown }): BirchLevelKeyIterator<KDefault, VDefault> {
    return new BirchLevelKeyIterator(this, options, this.#cursor(options));
  }

  _values(options: LevelRange & { valueEncoding: Encoding; snapshot?: unknown }): BirchLevelValueIterator<KDefault, VDefault> {
    return new BirchLevelValueIterator(this, options, this.#cursor(options));
  }

  _snapshot(options: object): BirchLevelSnapshot {
    return new BirchLevelSnapshot(this.birch.snapshot(), options);
  }
}

/** Keys clear() deletes per atomic batch. */
const CLEAR_BATCH = 10_000;
/** Batches clear() submits before it waits for them: 100,000 keys. */
const CLEAR_PASS_BATCHES = 10;

/**
 * An explicit snapshot (db.snapshot()): a birchdb snapshot, released when it is closed. Closing
 * waits only for reads in progress (abstract-level references it around each one, iterators'
 * steps included), not for the iterators opened on it, whose later steps it refuses.
 */
export class BirchLevelSnapshot extends AbstractSnapshot {
  readonly inner: Snapshot;

  constructor(inner: Snapshot, options: object) {
    // @ts-expect-error abstract-level's types omit the constructor's options (its owner, for sublevels).
    super(options);
    this.inner = inner;
  }

  /** Throws LEVEL_SNAPSHOT_NOT_OPEN once it is closing (an iterator is about to open on it). */
  checkOpen(): void {
    this.ref();
    this.unref();
  }

  async _close(): Promise<void> {
    this.inner.release();
  }
}

/**
 * One range of one snapshot as the three iterator kinds step it: the tree's entries and the
 * empty key (first going forward, last in reverse), seekable, synchronous.
 */
class RangeCursor {
  readonly #src: Source;
  /** The snapshot it took (released at close); an explicit one is its owner's to release. */
  readonly #own: Snapshot | undefined;
  readonly #range: SeekableRange | undefined;
  readonly #reverse: boolean;
  /** Whether the empty key is within the range and held in the snapshot. */
  readonly #emptyIn: boolean;
  /** Whether the empty key is still to be yielded. */
  #emptyPending: boolean;
  readonly #emptySlot: Buffer;
  readonly #options: LevelRange;
  /** A seek to a target outside the range: nothing more until the next seek. */
  #exhausted = false;
  #closed = false;

  constructor(options: LevelRange, src: Source, snaps: { own: Snapshot | undefined }, tree: string | undefined) {
    this.#src = src;
    this.#own = snaps.own;
    this.#options = options;
    const { birch, empty, none } = splitRange(options, tree);
    const limit = options.limit === undefined || options.limit < 0 ? Infinity : options.limit;
    this.#range = none ? undefined : src.range({ ...birch, ...(limit === Infinity ? {} : { limit }) });
    this.#reverse = options.reverse === true;
    this.#emptySlot = emptyKeySlot(tree);
    this.#emptyIn = empty && src.get(this.#emptySlot, { tree: EMPTY_KEY_TREE }) !== undefined;
    this.#emptyPending = this.#emptyIn;
  }

  #empty(): [Buffer, Buffer] | undefined {
    this.#emptyPending = false;
    const v = this.#src.get(this.#emptySlot, { tree: EMPTY_KEY_TREE });
    return v === undefined ? undefined : [Buffer.alloc(0), v];
  }

  /** The next entry; undefined at the end. */
  step(): [Buffer, Buffer] | undefined {
    if (this.#exhausted) return undefined;
    if (this.#emptyPending && !this.#reverse) {
      const e = this.#empty();
      if (e !== undefined) return e;
    }
    const r = this.#range?.next();
    if (r !== undefined && r.done !== true) return r.value;
    if (this.#emptyPending) return this.#empty();
    return undefined;
  }

  /** Up to `size` entries mapped by `f` (all of them: Infinity). */
  many<T>(size: number, f: (e: [Buffer, Buffer]) => T): T[] {
    const out: T[] = [];
    while (out.length < size) {
      const e = this.step();
      if (e === undefined) break;
      out.push(f(e));
    }
    return out;
  }

  seek(target: Format): void {
    const t = bytesOf(target);
    this.#exhausted = !inRange(this.#options, t);
    if (this.#exhausted) return;
    // Forward, the empty key comes again only for an empty target; in reverse, it is at or
    // before every target.
    this.#emptyPending = this.#emptyIn && (this.#reverse || isEmptyKey(target));
    this.#range?.seek(t);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#range?.return?.();
    this.#own?.release();
  }
}

type Pair = [Format | undefined, Format | undefined];

/** Entries of one range of one snapshot; nextv() and all() take many per call. */
export class BirchLevelIterator<K, V> extends AbstractIterator<BirchLevel<K, V>, K, V> {
  readonly #cursor: RangeCursor;
  readonly #map: (e: [Buffer, Buffer]) => Pair;

  constructor(db: BirchLevel<K, V>, options: { keys: boolean; values: boolean; keyEncoding: Encoding; valueEncoding: Encoding }, cursor: RangeCursor) {
    // abstract-level's option types are per encoding; these are the private API's (already encoded).
    super(db, options as unknown as ConstructorParameters<typeof AbstractIterator<BirchLevel<K, V>, K, V>>[1]);
    this.#cursor = cursor;
    const { keys, values, keyEncoding, valueEncoding } = options;
    this.#map = (e) => [keys ? encode(e[0], keyEncoding) : undefined, values ? encode(e[1], valueEncoding) : undefined];
  }

  async _next(): Promise<Pair | undefined> {
    const e = this.#cursor.step();
    return e === undefined ? undefined : this.#map(e);
  }

  async _nextv(size: number): Promise<Pair[]> {
    return this.#cursor.many(size, this.#map);
  }

  async _all(): Promise<Pair[]> {
    // abstract-level does not trim what _all() returns to the limit; the range's own limit does
    // not count the empty key.
    return this.#cursor.many(this.limit - this.count, this.#map);
  }

  _seek(target: Format): void {
    this.#cursor.seek(target);
  }

  async _close(): Promise<void> {
    this.#cursor.close();
  }
}

/** Keys of one range of one snapshot. */
export class BirchLevelKeyIterator<K, V> extends AbstractKeyIterator<BirchLevel<K, V>, K> {
  readonly #cursor: RangeCursor;
  readonly #map: (e: [Buffer, Buffer]) => Format;

  constructor(db: BirchLevel<K, V>, options: { keyEncoding: Encoding }, cursor: RangeCursor) {
    super(db, options as unknown as ConstructorParameters<typeof AbstractKeyIterator<BirchLevel<K, V>, K>>[1]);
    this.#cursor = cursor;
    const enc = options.keyEncoding;
    this.#map = (e) => encode(e[0], enc);
  }

  async _next(): Promise<Format | undefined> {
    const e = this.#cursor.step();
    return e === undefined ? undefined : this.#map(e);
  }

  async _nextv(size: number): Promise<Format[]> {
    return this.#cursor.many(size, this.#map);
  }

  async _all(): Promise<Format[]> {
    // abstract-level does not trim what _all() returns to the limit; the range's own limit does
    // not count the empty key.
    return this.#cursor.many(this.limit - this.count, this.#map);
  }

  _seek(target: Format): void {
    this.#cursor.seek(target);
  }

  async _close(): Promise<void> {
    this.#cursor.close();
  }
}

/** Values of one range of one snapshot. */
export class BirchLevelValueIterator<K, V> extends AbstractValueIterator<BirchLevel<K, V>, K, V> {
  readonly #cursor: RangeCursor;
  readonly #map: (e: [Buffer, Buffer]) => Format;

  constructor(db: BirchLevel<K, V>, options: { valueEncoding: Encoding }, cursor: RangeCursor) {
    super(db, options as unknown as ConstructorParameters<typeof AbstractValueIterator<BirchLevel<K, V>, K, V>>[1]);
    this.#cursor = cursor;
    const enc = options.valueEncoding;
    this.#map = (e) => encode(e[1], enc);
  }

  async _next(): Promise<Format | undefined> {
    const e = this.#cursor.step();
    return e === undefined ? undefined : this.#map(e);
  }

  async _nextv(size: number): Promise<Format[]> {
    return this.#cursor.many(size, this.#map);
  }

  async _all(): Promise<Format[]> {
    // abstract-level does not trim what _all() returns to the limit; the range's own limit does
    // not count the empty key.
    return this.#cursor.many(this.limit - this.count, this.#map);
  }

  _seek(target: Format): void {
    this.#cursor.seek(target);
  }

  async _close(): Promise<void> {
    this.#cursor.close();
  }
}
