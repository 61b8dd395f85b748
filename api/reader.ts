// Reading a database from another thread of the process that holds it open (openReader).
//
// A reader reads the trees of the last checkpoint the owner published, through the page cache
// every thread shares, on a file descriptor of its own. It never sees the owner's write buffer:
// a write is visible to readers once a checkpoint holds it (db.checkpoint() forces one). That is
// the price of reading without asking the owner anything: the buffer lives in the owner's heap.
//
// Its reads hold their checkpoint's pages back from reuse through a slot of the reader floor
// (db/reader-slots.ts): a plain read for its duration, a snapshot until it is released. A reader
// that closes, or whose thread ends, gives its slot back (api/reader-handles.ts).
import { BirchError } from '../platform/errors.js';
import { checksumReady } from '../pager/checksum.js';
import { NodeDirectory } from '../pager/backend.js';
import { DATA_FILE } from '../pager/data-file.js';
import { PageReader, ScanPages } from '../pager/reader.js';
import { SharedPageCache } from '../pager/shared-cache.js';
import type { DbState } from '../pager/meta-format.js';
import type { RangeBounds } from '../btree/cursor.js';
import { ReaderSlots } from '../db/reader-slots.js';
import { Checkpointed, View } from '../db/view.js';
import type { RangeIterator } from '../db/range.js';
import type { ReaderHandle } from './reader-handles.js';
import { LiveRange, ReadKeys, toRangeBounds, treeOf, type RangeOptions, type SeekableRange } from './reads.js';
import { treeOption, type Bytes } from './input.js';

/** Opens a reader in this thread from a handle made by db.readerHandle() in the owner's thread. */
export async function openReader(handle: ReaderHandle): Promise<BirchReader> {
  if (typeof handle !== 'object' || handle === null || handle.kind !== 'birchdb-reader') {
    throw new BirchError('BAD_OPTION', 'openReader() takes the handle db.readerHandle() returned (pass it to the thread with its port in the transfer list)');
  }
  await checksumReady();
  const slots = new ReaderSlots(handle.slots);
  if (slots.closed) throw new BirchError('DB_CLOSED', `database ${handle.dir} is closed`);
  // Two readers on one slot would clear each other's pins.
  if (!slots.open(handle.slot, handle.token)) throw new BirchError('BAD_OPTION', 'this reader handle was opened already (or its reader closed): take a new one with db.readerHandle() for each reader');
  const cache = SharedPageCache.attach(handle.cache);
  cache.useSlot(handle.cacheSlot);
  const pages = new PageReader(new NodeDirectory(handle.dir).open(DATA_FILE, { create: false, readOnly: true }), cache);
  return new BirchReader(handle, slots, pages);
}

/** A view of a checkpoint alone: readers have no write buffer, so it reads at the checkpoint's batch. */
function readerView(base: Checkpointed): View {
  return new View(base.state.seq, [], base);
}

export class BirchReader {
  readonly path: string;
  readonly #handle: ReaderHandle;
  readonly #slots: ReaderSlots;
  readonly #pages: PageReader;
  readonly #keys = new ReadKeys();
  /** The published checkpoint, as read last (one View per checkpoint, not one per read). */
  #view: View | undefined;
  /** Checkpoints this reader's snapshots read, and how many snapshots read each. */
  readonly #pins = new Map<number, number>();
  /** Reads in progress on this thread (a range's step, nested in nothing else, is one). */
  #active = 0;
  #closed = false;
  /** Private page sources of scanning snapshots, closed with the reader. */
  readonly #scans = new Set<ScanPages>();

  /** @internal */
  constructor(handle: ReaderHandle, slots: ReaderSlots, pages: PageReader) {
    this.path = handle.dir;
    this.#handle = handle;
    this.#slots = slots;
    this.#pages = pages;
    // The owner closing its end (it closed) needs no action here: the shared CLOSED word says so.
    handle.port.unref();
  }

  /** The last batch the trees this reader reads now hold (the last checkpoint's). */
  get seq(): number {
    return this.#live((view) => view.seq);
  }

  get(key: Bytes, opts: { tree?: string } = {}): Buffer | undefined {
    const tree = treeOption(opts, 'reader.get()');
    const k = this.#keys.key(key);
    return this.#live((view) => view.get(tree, k));
  }

  getMany(keys: readonly Bytes[], opts: { tree?: string } = {}): (Buffer | undefined)[] {
    if (!Array.isArray(keys)) throw new BirchError('BAD_OPTION', 'getMany() takes an array of keys');
    const tree = treeOption(opts, 'reader.getMany()');
    return this.#live((view) => {
      return keys.map((key) => view.get(tree, this.#keys.key(key)));
    });
  }

  /** A range over one snapshot, taken at its first step and released at its end (or a break). */
  range(opts: RangeOptions = {}): SeekableRange {
    const tree = treeOf(opts.tree);
    const bounds = toRangeBounds(opts);
    return new LiveRange(() => {
      const snap = this.snapshot();
      try {
        return { snap, it: snap.rangeOf(tree, bounds) };
      } catch (err) {
        snap.release();
        throw err;
      }
    });
  }

  trees(): string[] {
    return this.#live((view) => view.trees());
  }

  /** Pins the last checkpoint: its pages are not reused until release(). */
  snapshot(): ReaderSnapshot {
    return this.#live((view) => {
      const id = view.base.state.checkpointId as number;
      this.#pins.set(id, (this.#pins.get(id) ?? 0) + 1);
      this.#publishPin();
      return new ReaderSnapshot(this, view, id);
    });
  }

  /**
   * @internal A snapshot of checkpoint `state`, which the owner keeps pinned meanwhile (export).
   * With `scan`, its pages are read in runs outside the shared cache (pager/reader.ts ScanPages).
   */
  snapshotAt(state: DbState, opts: { scan?: boolean } = {}): ReaderSnapshot {
    this.#enter();
    try {
      const id = state.checkpointId as number;
      // One ScanPages per snapshot: what it keeps is true of this checkpoint's pages only.
      const pages = opts.scan === true ? new ScanPages(new NodeDirectory(this.path).open(DATA_FILE, { create: false, readOnly: true })) : this.#pages;
      if (pages instanceof ScanPages) this.#scans.add(pages);
      this.#pins.set(id, (this.#pins.get(id) ?? 0) + 1);
      this.#publishPin();
      return new ReaderSnapshot(this, readerView(new Checkpointed(state, pages)), id);
    } finally {
      this.#exit();
    }
  }

  put(): never {
    throw this.#readOnly('put');
  }
  del(): never {
    throw this.#readOnly('del');
  }
  batch(): never {
    throw this.#readOnly('batch');
  }
  dropTree(): never {
    throw this.#readOnly('dropTree');
  }

  #readOnly(what: string): BirchError {
    return new BirchError('READ_ONLY', `${what}() on a reader thread: readers only read; write through the database handle in the thread that opened it (${this.path})`);
  }

  /** Closes the reader: its snapshots end, its slots go back to the owner. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pins.clear();
    this.#slots.setPin(this.#handle.slot, undefined);
    this.#slots.setActive(this.#handle.slot, false);
    this.#pages.close();
    for (const scan of this.#scans) scan.close();
    this.#scans.clear();
    // The owner gives both slots back when it sees the channel close.
    this.#handle.port.close();
  }

  get closed(): boolean {
    return this.#closed;
  }

  // ---- pins ------------------------------------------------------------------------------------

  /**
   * Runs `read` over the published checkpoint, pinned for its duration (see db/reader-slots.ts for
   * why the id is loaded again after the pin is stored).
   */
  #live<T>(read: (view: View) => T): T {
    this.#enter();
    try {
      const slots = this.#slots;
      for (;;) {
        let view = this.#view;
        const id = slots.publishedId();
        if (view === undefined || view.base.state.checkpointId !== id) {
          view = readerView(new Checkpointed(slots.readPublished(), this.#pages));
          this.#view = view;
        }
        const at = view.base.state.checkpointId as number;
        // A snapshot already pins an older checkpoint, which holds every later one's pages too.
        if (this.#pins.size === 0) slots.setPin(this.#handle.slot, at);
        if (slots.publishedId() === at) return read(view);
      }
    } finally {
      if (this.#pins.size === 0) this.#slots.setPin(this.#handle.slot, undefined);
      this.#exit();
    }
  }

  /** @internal Marks a read in progress: the owner's close() waits for it to end. */
  enter(): void {
    this.#enter();
  }
  /** @internal */
  exit(): void {
    this.#exit();
  }

  #enter(): void {
    if (this.#closed) throw new BirchError('DB_CLOSED', `the reader of ${this.path} is closed`);
    if (this.#active++ === 0) this.#slots.setActive(this.#handle.slot, true);
    // Loaded after ACTIVE is stored: the owner stores CLOSED before it waits for ACTIVE to clear.
    if (this.#slots.closed) {
      this.#exit();
      throw new BirchError('DB_CLOSED', `database ${this.path} was closed by its owner`);
    }
  }

  #exit(): void {
    if (--this.#active === 0) this.#slots.setActive(this.#handle.slot, false);
  }

  /** @internal A snapshot of checkpoint `id` ends. */
  unpin(id: number): void {
    const n = this.#pins.get(id);
    if (n === undefined || this.#closed) return;
    if (n > 1) this.#pins.set(id, n - 1);
    else this.#pins.delete(id);
    this.#publishPin();
  }

  #publishPin(): void {
    let oldest: number | undefined;
    for (const id of this.#pins.keys()) if (oldest === undefined || id < oldest) oldest = id;
    this.#slots.setPin(this.#handle.slot, oldest);
  }
}

/** One checkpoint, pinned by a reader thread until release(). */
export class ReaderSnapshot {
  readonly #reader: BirchReader;
  readonly #view: View;
  readonly #id: number;
  readonly #keys = new ReadKeys();
  #released = false;

  /** @internal */
  constructor(reader: BirchReader, view: View, id: number) {
    this.#reader = reader;
    this.#view = view;
    this.#id = id;
  }

  /** The last batch this snapshot sees. */
  get seq(): number {
    return this.#view.seq;
  }

  get(key: Bytes, opts: { tree?: string } = {}): Buffer | undefined {
    const tree = treeOption(opts, 'snapshot.get()');
    const k = this.#keys.key(key);
    return this.#read(() => this.#view.get(tree, k));
  }

  getMany(keys: readonly Bytes[], opts: { tree?: string } = {}): (Buffer | undefined)[] {
    if (!Array.isArray(keys)) throw new BirchError('BAD_OPTION', 'getMany() takes an array of keys');
    const tree = treeOption(opts, 'snapshot.getMany()');
    return this.#read(() => keys.map((key) => this.#view.get(tree, this.#keys.key(key))));
  }

  range(opts: RangeOptions = {}): SeekableRange {
    return this.rangeOf(treeOf(opts.tree), toRangeBounds(opts));
  }

  /** @internal A range of checked options; each step is a read the owner's close() waits for. */
  rangeOf(tree: string, bounds: RangeBounds): SeekableRange {
    const inner: RangeIterator = this.#read(() => this.#view.range(tree, bounds, () => this.#check()));
    const iter: SeekableRange = {
      [Symbol.iterator]: () => iter,
      next: () => this.#read(() => inner.next()),
      return: () => inner.return(),
      seek: (target) => this.#read(() => inner.seek(target)),
    };
    return iter;
  }

  trees(): string[] {
    return this.#read(() => this.#view.trees());
  }

  get released(): boolean {
    return this.#released;
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#reader.unpin(this.#id);
  }

  #check(): void {
    if (this.#released) throw new BirchError('TXN_CLOSED', `the snapshot at batch ${this.#view.seq} was released`);
  }

  #read<T>(read: () => T): T {
    this.#check();
    this.#reader.enter();
    try {
      return read();
    } finally {
      this.#reader.exit();
    }
  }
}
