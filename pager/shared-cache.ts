// One page cache that every thread reading the data file shares: the main thread, the
// checkpointer, and any later reader thread. Page images live in frames of one SharedArrayBuffer;
// the page-to-frame map, the frames' page numbers, CLOCK marks and pins live in typed arrays over
// shared memory too, so a hit allocates nothing and no thread keeps an object per page.
//
// What makes sharing safe is the copy-on-write invariant: the bytes of page P never change while a
// tree or snapshot that any thread reads can reach P (a page is rewritten only after the free list
// released it, and the checkpointer removes its old image from this cache before it builds the new
// one). So a frame holding P is never stale for a thread that reaches P, and a hit needs no lock.
// The one race left is eviction: a thread could read frame f while another thread evicts it and
// fills it with another page. Readers are protected by epochs (epoch-based reclamation):
//
//  - a thread reading frames first publishes the global epoch E in its slot (enter), and clears the
//    slot when it is done (exit); it holds frame offsets only between the two;
//  - an evicted frame is unlinked from the map and put in limbo, stamped with E;
//  - a frame leaves limbo (becomes free, reusable) only once E has been advanced past its stamp and
//    every slot is clear or holds an epoch newer than the stamp: every thread that could have found
//    it in the map before it was unlinked has exited since.
//
// Why epochs, not pins or a seqlock: a pin costs two atomic read-modify-writes per page and level
// and a reader that dies holding one leaks the frame; a seqlock lets a reader run over bytes that
// are being overwritten, and every length and offset it derived would need checking before use. An
// epoch costs two stores per operation (a get, or a leaf's worth of a range), whatever it reads.
// The price: a thread must never block inside an epoch (no I/O, no waiting, no user code), or the
// others cannot reuse what they evict; they then read pages into private buffers (still correct).
// So a miss leaves the epoch for its disk read and enters again before it publishes the frame,
// which is also why offsets found before a miss are not valid after it.
//
// The map is direct: one word per page number of the data file (its frame + 1, 0 for none), as
// far as the highest page cached, so a lookup is one load and one check; a hash table sized for the
// frames took two more cache misses a lookup (about 80 ns against 10, measured on 31,000 cached
// pages). It costs 4 bytes per page of the file (0.1% of its size) and serves page numbers below
// 2^30 (a file of 4 TiB); pages past that are read from disk each time. Hits take no lock;
// installs, evictions and map edits take one short futex-style lock (never held across I/O). A
// lookup checks that the frame it found holds the page it asked for, so an edit racing with it can
// only make it miss (and read from disk), never hit wrongly. With `verifyHits` (BIRCH_VERIFY=1, for
// tests) every hit checks the frame's checksum and page number too.
//
// Memory: every buffer of the cache but its few control words is growable and grows with use (the
// frames and their records with the frames in use, the map with the highest page cached): the cache
// takes what the working set needs, up to its bound, and opening a database costs no memory up
// front. (Large fixed buffers would: once the C library's mmap threshold has risen, each one below
// 32 MiB is zero-filled by memset, and a process that opens thousands of databases, a test suite,
// spent most of its time there.)
import { BirchError } from '../platform/errors.js';
import { FIRST_DATA_PAGE, KIND_OFFSET, PAGE_SIZE, PageKind, verifyPageAt } from './page-format.js';

// ---- control words (Int32Array over `control`) -------------------------------------------------

/** The lock: 0 free; held: (the holder's slot + 2) << 1, bit 0 set when threads may be waiting. */
const LOCK = 0;
/** The global epoch; starts at 1 (a slot holding 0 is outside any epoch). */
const EPOCH = LOCK + 1;
/** Frames ever handed out: every frame below this has been used. */
const HIGH_WATER = EPOCH + 1;
/** Frames the buffers hold room for now (they grow in steps up to the bound). */
const COMMITTED = HIGH_WATER + 1;
/** Free frames: a list through the frames' next words (-1 ends it), and its length. */
const FREE_HEAD = COMMITTED + 1;
const FREE_COUNT = FREE_HEAD + 1;
/** Limbo: evicted frames in the order they were retired (a list through next), and its length. */
const LIMBO_HEAD = FREE_COUNT + 1;
const LIMBO_TAIL = LIMBO_HEAD + 1;
const LIMBO_COUNT = LIMBO_TAIL + 1;
/** The CLOCK hand: the next frame eviction looks at. */
const HAND = LIMBO_COUNT + 1;
/** Page numbers the map has words for now (it grows to cover the highest page cached). */
const MAPPED = HAND + 1;
/** Frames evicted, over the cache's life (stats). */
const EVICTIONS = MAPPED + 1;
/**
 * 1 once a thread ended while it held the lock (a worker terminated mid-operation): what the lock
 * guards may be half-changed, so from then on nothing is cached or evicted and the map is empty
 * (releaseSlot), and every read goes to disk into private pages (correct, slower) until the
 * database is reopened.
 */
const DISABLED = EVICTIONS + 1;
/** Reader slots: whether each is taken, then the epoch each publishes (0: outside). */
export const MAX_READER_SLOTS = 64;
const SLOT_TAKEN = 16;
const SLOT_EPOCH = SLOT_TAKEN + MAX_READER_SLOTS;
const CONTROL_WORDS = SLOT_EPOCH + MAX_READER_SLOTS;
if (DISABLED >= SLOT_TAKEN) throw new Error('control words overlap the reader slots');

// ---- per-frame state: hot arrays (a lookup reads them) and cold records (under the lock) --------
/** Cold record words per frame: */
const C_STAMP = 0; // the epoch the frame entered limbo at
const C_PINS = C_STAMP + 1; // pins (a zero-copy view handed out): never evicted or reused while > 0
const C_NEXT = C_PINS + 1; // the next frame of the free list or of limbo (-1: none)
const COLD_WORDS = C_NEXT + 1;

// ---- frame states (framePage) ------------------------------------------------------------------
// Pages 0..2 (the file header and metas) are never cached, so those numbers mark the other states.
const FRAME_FREE = 0;
const FRAME_LIMBO = 1;
const FRAME_CLAIMED = 2;
if (FIRST_DATA_PAGE <= FRAME_CLAIMED) throw new Error('cached page numbers must not collide with the frame states');

/** A CLOCK mark: a branch is spared three passes of the hand, a leaf one (branches are few and every read needs them). */
const BRANCH_WEIGHT = 3;
const LEAF_WEIGHT = 1;
/** Frames retired per eviction pass, so that a grace period serves many misses. */
const EVICT_BATCH_MAX = 256;
/** Pages removeMany() drops under one holding of the lock. */
const REMOVE_STEP = 1024;
/** The frame buffers grow by at least this many frames (1 MiB of frames) at a time. */
const GROW_FRAMES_MIN = 256;
/** The map grows by at least this many page numbers (64 KiB of map) at a time. */
const GROW_MAP_MIN = 16384;
/** Page numbers the map can cover: 2^30 (a data file of 4 TiB) in a buffer of 4 GiB. */
export const MAX_MAPPED_PAGES = 2 ** 30;
/** The largest bound: 2^32 bytes is the largest buffer Node 20 and Bun allocate. */
export const MAX_CACHE_BYTES = 2 ** 32;
/** The smallest: a few frames per thread and level, so that a descent always fits. */
export const MIN_CACHE_FRAMES = 16;

/** The shared memory of one cache, as handed to every thread that uses it (worker data). */
export interface SharedCacheInit {
  frames: SharedArrayBuffer;
  control: SharedArrayBuffer;
  /** u32 per frame: its page, or a frame state. */
  framePage: SharedArrayBuffer;
  /** u8 per frame: its CLOCK mark, and (weights) the mark a hit gives it. */
  frameRefs: SharedArrayBuffer;
  frameWeight: SharedArrayBuffer;
  /** COLD_WORDS i32 per frame. */
  frameCold: SharedArrayBuffer;
  /** i32 per page number: its frame + 1, or 0. */
  map: SharedArrayBuffer;
  maxFrames: number;
  verifyHits: boolean;
}

/** Counters for stats(): occupancy is shared, hits and misses belong to each thread's reader. */
export interface CacheOccupancy {
  /** Frames holding a page now. */
  frames: number;
  /** Bytes of those frames. */
  bytes: number;
  /** The bound, in bytes. */
  capacityBytes: number;
  evictions: number;
}

type Growable = SharedArrayBuffer & { grow(bytes: number): void };

/** Adds `d` to control word `i` (under the lock: a plain read-modify-write). */
function bump(c: Int32Array, i: number, d: number): void {
  c[i] = (c[i] as number) + d;
}

const GROWABLE = typeof (SharedArrayBuffer.prototype as { grow?: unknown }).grow === 'function';

/**
 * A buffer of no bytes now that can grow to `maxBytes`; where the runtime has no growable shared
 * buffers, one of `maxBytes` (the OS commits its pages only as they are touched).
 */
function growableBuffer(maxBytes: number): SharedArrayBuffer {
  if (!GROWABLE) return new SharedArrayBuffer(maxBytes);
  return new (SharedArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => SharedArrayBuffer)(0, { maxByteLength: maxBytes });
}

function grow(buf: SharedArrayBuffer, bytes: number): void {
  if (buf.byteLength < bytes) (buf as Growable).grow(bytes);
}

export class SharedPageCache {
  readonly init: SharedCacheInit;
  readonly maxFrames: number;
  readonly #control: Int32Array;
  // Views of the growable buffers, each as long as its buffer was when last looked at: a view
  // that turns out too short for an index is made anew (#refresh*); the memory is the same.
  #framePage: Uint32Array;
  #frameRefs: Uint8Array;
  #frameWeight: Uint8Array;
  #frameCold: Int32Array;
  #map: Int32Array;
  #bytes: Buffer;
  #words: Int32Array;
  /** This thread's reader slot, or -1 before useSlot(). */
  #slot = -1;
  readonly #verifyHits: boolean;

  private constructor(init: SharedCacheInit) {
    this.init = init;
    this.maxFrames = init.maxFrames;
    this.#verifyHits = init.verifyHits;
    this.#control = new Int32Array(init.control);
    this.#framePage = new Uint32Array(init.framePage, 0, init.framePage.byteLength / 4);
    this.#frameRefs = new Uint8Array(init.frameRefs, 0, init.frameRefs.byteLength);
    this.#frameWeight = new Uint8Array(init.frameWeight, 0, init.frameWeight.byteLength);
    this.#frameCold = new Int32Array(init.frameCold, 0, init.frameCold.byteLength / 4);
    this.#map = new Int32Array(init.map, 0, init.map.byteLength / 4);
    this.#bytes = Buffer.from(init.frames, 0, init.frames.byteLength);
    this.#words = new Int32Array(init.frames, 0, init.frames.byteLength / 4);
  }

  /** A new cache of at most `maxBytes` (rounded down to whole frames, at least MIN_CACHE_FRAMES). */
  static create(maxBytes: number, opts: { verifyHits?: boolean } = {}): SharedPageCache {
    const maxFrames = Math.max(MIN_CACHE_FRAMES, Math.floor(Math.min(maxBytes, MAX_CACHE_BYTES) / PAGE_SIZE));
    const init: SharedCacheInit = {
      frames: growableBuffer(maxFrames * PAGE_SIZE),
      control: new SharedArrayBuffer(4 * CONTROL_WORDS),
      framePage: growableBuffer(4 * maxFrames),
      frameRefs: growableBuffer(maxFrames),
      frameWeight: growableBuffer(maxFrames),
      frameCold: growableBuffer(4 * COLD_WORDS * maxFrames),
      map: growableBuffer(4 * (GROWABLE ? MAX_MAPPED_PAGES : MAX_MAPPED_PAGES / 16)),
      maxFrames,
      verifyHits: opts.verifyHits === true,
    };
    const c = new Int32Array(init.control);
    c[EPOCH] = 1;
    c[FREE_HEAD] = -1;
    c[LIMBO_HEAD] = -1;
    c[LIMBO_TAIL] = -1;
    c[COMMITTED] = GROWABLE ? 0 : maxFrames;
    c[MAPPED] = GROWABLE ? 0 : MAX_MAPPED_PAGES / 16;
    return new SharedPageCache(init);
  }

  /** The same cache, seen from another thread (or again from this one). */
  static attach(init: SharedCacheInit): SharedPageCache {
    return new SharedPageCache(init);
  }

  // ---- reader slots and epochs -------------------------------------------------------------------

  /** Takes a free reader slot for a thread (its own, or one it starts); throws if all are taken. */
  reserveSlot(): number {
    for (let s = 0; s < MAX_READER_SLOTS; s++) {
      if (Atomics.compareExchange(this.#control, SLOT_TAKEN + s, 0, 1) === 0) {
        Atomics.store(this.#control, SLOT_EPOCH + s, 0);
        return s;
      }
    }
    throw new BirchError('UNSUPPORTED', `a page cache serves at most ${MAX_READER_SLOTS} reading threads`);
  }

  /**
   * Gives a slot back: its thread has ended (or never started), so it reads no frame. If it ended
   * holding the lock, the lock is freed and the cache disabled (see DISABLED). A frame it had
   * claimed and not yet published stays out of use: a leak of one frame, not a wrong read.
   */
  releaseSlot(slot: number): void {
    const c = this.#control;
    for (let s = Atomics.load(c, LOCK); s >>> 1 === slot + 2; s = Atomics.load(c, LOCK)) {
      // Still under the dead thread's lock: nothing is linked, evicted or reused from now on, and
      // the map is emptied, so lookups miss by the check they make anyway (no flag to load on the
      // read path). A lookup that loaded a word before this may still find its frame: frames are
      // never reused once disabled, so what it finds is what it would have found before.
      Atomics.store(c, DISABLED, 1);
      new Int32Array(this.init.map, 0, this.init.map.byteLength / 4).fill(0);
      if (Atomics.compareExchange(c, LOCK, s, 0) === s) {
        Atomics.notify(c, LOCK);
        break;
      }
    }
    Atomics.store(c, SLOT_EPOCH + slot, 0);
    Atomics.store(c, SLOT_TAKEN + slot, 0);
  }

  /** Whether a thread ended inside the lock, leaving the cache out of use (see DISABLED). */
  get disabled(): boolean {
    return Atomics.load(this.#control, DISABLED) !== 0;
  }

  /** @internal Takes the lock and keeps it, as a thread terminated inside it would (tests). */
  holdLockForTests(): void {
    this.#acquire();
  }

  /** Makes this thread read through `slot` (from reserveSlot). */
  useSlot(slot: number): void {
    this.#slot = slot;
  }

  get slot(): number {
    return this.#slot;
  }

  /** Starts reading frames: offsets from lookup() are valid until exit(). Never block before exit(). */
  enter(): void {
    Atomics.store(this.#control, SLOT_EPOCH + this.#slot, Atomics.load(this.#control, EPOCH));
  }

  exit(): void {
    Atomics.store(this.#control, SLOT_EPOCH + this.#slot, 0);
  }

  // ---- reading -----------------------------------------------------------------------------------

  /** The frames, for offsets from lookup() and claim(): read it again after each of those calls. */
  get bytes(): Buffer {
    return this.#bytes;
  }

  /** The Int32Array view over the frames, for checksums in place (read it after claim()). */
  get words(): Int32Array {
    return this.#words;
  }

  /** Page `no`'s frame offset in bytes, or -1 if it is not cached. Call between enter() and exit(). */
  lookup(no: number): number {
    if (no >= this.#map.length && !this.#mapCovers(no)) return -1;
    const f = (this.#map[no] as number) - 1;
    if (f < 0) return -1;
    if (f >= this.#framePage.length) this.#refreshFrameArrays();
    // The map may have changed since that load: trust it only if the frame holds `no` now.
    if (Atomics.load(this.#framePage, f) !== no) return -1;
    const w = this.#frameWeight[f] as number;
    if ((this.#frameRefs[f] as number) < w) this.#frameRefs[f] = w;
    const off = f * PAGE_SIZE;
    if (off >= this.#bytes.length) this.#refreshFrames();
    if (this.#verifyHits) this.#verifyHit(off, no);
    return off;
  }

  /** Whether the map (grown by another thread since this one looked) has a word for `no`. */
  #mapCovers(no: number): boolean {
    if (Atomics.load(this.#control, MAPPED) > this.#map.length) this.#refreshMap();
    return no < this.#map.length;
  }

  #verifyHit(off: number, no: number): void {
    try {
      verifyPageAt(this.#bytes, this.#words, off, no);
    } catch (err) {
      throw new BirchError('INTERNAL', `the page cache handed out frame ${off / PAGE_SIZE} for page ${no}, which does not hold it: ${(err as Error).message}`, { cause: err, site: { pageNo: no } });
    }
  }

  #refreshFrames(): void {
    const len = this.init.frames.byteLength;
    this.#bytes = Buffer.from(this.init.frames, 0, len);
    this.#words = new Int32Array(this.init.frames, 0, len / 4);
  }

  #refreshFrameArrays(): void {
    const i = this.init;
    this.#framePage = new Uint32Array(i.framePage, 0, i.framePage.byteLength / 4);
    this.#frameRefs = new Uint8Array(i.frameRefs, 0, i.frameRefs.byteLength);
    this.#frameWeight = new Uint8Array(i.frameWeight, 0, i.frameWeight.byteLength);
    this.#frameCold = new Int32Array(i.frameCold, 0, i.frameCold.byteLength / 4);
  }

  #refreshMap(): void {
    this.#map = new Int32Array(this.init.map, 0, this.init.map.byteLength / 4);
  }

  // ---- filling frames ----------------------------------------------------------------------------

  /**
   * A frame this thread may fill (its offset in bytes), or -1 if none can be had now (every frame in
   * use and the evicted ones still visible to a thread inside an epoch). Call outside an epoch.
   * Follow with publish() or unclaim().
   */
  claim(): number {
    this.#lock();
    let f: number;
    try {
      f = this.disabled ? -1 : this.#claimLocked();
    } finally {
      this.#unlock();
    }
    if (f < 0) return -1;
    const off = f * PAGE_SIZE;
    if (off + PAGE_SIZE > this.#bytes.length) this.#refreshFrames();
    return off;
  }

  /** Gives a claimed frame back unused (its read failed). */
  unclaim(off: number): void {
    this.#lock();
    try {
      if (!this.disabled) this.#pushFree(off / PAGE_SIZE);
    } finally {
      this.#unlock();
    }
  }

  /**
   * Makes the claimed frame at `off`, filled with page `no`, the cached image of `no`. If another
   * thread cached `no` meanwhile, that frame stays and this one goes back: the offset returned is the
   * one to read. Call inside an epoch (entered after the frame was filled and before this call), so
   * that the frame cannot be evicted and reused before the caller reads it. A page the map cannot
   * cover (past MAX_MAPPED_PAGES) is not cached: its frame is given back after the caller's read,
   * at its next claim (the frame stays claimed, out of every list, until then).
   */
  publish(no: number, off: number): number {
    const f = off / PAGE_SIZE;
    this.#lock();
    try {
      // Disabled since the claim: the frame stays this thread's, out of every list.
      if (this.disabled) return off;
      const g = this.#frameOf(no);
      if (g >= 0) {
        this.#pushFree(f);
        return g * PAGE_SIZE;
      }
      if (!this.#link(no, f, this.#bytes[off + KIND_OFFSET] === PageKind.Branch ? BRANCH_WEIGHT : LEAF_WEIGHT)) this.#orphan = f;
      return off;
    } finally {
      this.#unlock();
    }
  }

  /** A frame holding a page the map cannot cover, to go back to the free list at the next claim. */
  #orphan = -1;

  /**
   * Caches a copy of `page` (a sealed image of page `no`), replacing any image of `no` (the
   * checkpointer, installing the pages it writes). Best effort: skipped if no frame can be had.
   * Call outside an epoch.
   */
  install(no: number, page: Buffer): void {
    if (no >= MAX_MAPPED_PAGES) return;
    this.#lock();
    try {
      const f = this.disabled ? -1 : this.#claimLocked();
      if (f < 0) return;
      const off = f * PAGE_SIZE;
      if (off + PAGE_SIZE > this.#bytes.length) this.#refreshFrames();
      page.copy(this.#bytes, off, 0, PAGE_SIZE);
      const g = this.#frameOf(no);
      if (g >= 0) this.#retire(g);
      this.#link(no, f, page[KIND_OFFSET] === PageKind.Branch ? BRANCH_WEIGHT : LEAF_WEIGHT);
    } finally {
      this.#unlock();
    }
  }

  /** Drops the image of `no`, if any: its page number is about to hold another page. */
  remove(no: number): void {
    this.#lock();
    try {
      if (this.disabled) return;
      const g = this.#frameOf(no);
      if (g >= 0) this.#retire(g);
    } finally {
      this.#unlock();
    }
  }

  /**
   * Drops the images of `nos`, if any: pages no reader reaches any more. Their frames go to limbo
   * and are reused before the cache grows. The lock is taken per REMOVE_STEP pages, so that a
   * miss on another thread never waits behind a whole tree's worth.
   */
  removeMany(nos: readonly number[]): void {
    for (let i = 0; i < nos.length; i += REMOVE_STEP) {
      this.#lock();
      try {
        if (this.disabled) return;
        const end = Math.min(nos.length, i + REMOVE_STEP);
        for (let j = i; j < end; j++) {
          const g = this.#frameOf(nos[j] as number);
          if (g >= 0) this.#retire(g);
        }
      } finally {
        this.#unlock();
      }
    }
  }

  /** Makes `no` the first to go when room is needed (a page the next trees no longer reach). */
  cool(no: number): void {
    this.enter();
    const off = this.lookup(no);
    if (off >= 0) this.#frameRefs[off / PAGE_SIZE] = 0;
    this.exit();
  }

  /** Pins the frame at `off` (found inside an epoch): it stays as it is until unpin(). */
  pin(off: number): void {
    Atomics.add(this.#frameCold, (off / PAGE_SIZE) * COLD_WORDS + C_PINS, 1);
  }

  unpin(off: number): void {
    Atomics.sub(this.#frameCold, (off / PAGE_SIZE) * COLD_WORDS + C_PINS, 1);
  }

  occupancy(): CacheOccupancy {
    const c = this.#control;
    const frames = Math.max(0, Atomics.load(c, HIGH_WATER) - Atomics.load(c, FREE_COUNT) - Atomics.load(c, LIMBO_COUNT));
    return { frames, bytes: frames * PAGE_SIZE, capacityBytes: this.maxFrames * PAGE_SIZE, evictions: Atomics.load(c, EVICTIONS) };
  }

  // ---- under the lock ----------------------------------------------------------------------------

  /** The frame holding `no`, or -1. */
  #frameOf(no: number): number {
    if (no >= this.#map.length) return -1;
    const f = (this.#map[no] as number) - 1;
    return f >= 0 && this.#framePage[f] === no ? f : -1;
  }

  /** Sets frame `f`'s page (or state). Atomic: readers check it without the lock. */
  #setPage(f: number, no: number): void {
    Atomics.store(this.#framePage, f, no);
  }

  /** A free frame, marked claimed: from the free list, limbo, new memory, or eviction; -1 if none. */
  #claimLocked(): number {
    const c = this.#control;
    if (this.#orphan >= 0) {
      this.#pushFree(this.#orphan);
      this.#orphan = -1;
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      if (c[FREE_COUNT] === 0) this.#reclaim();
      if (c[FREE_COUNT] === 0 && (c[HIGH_WATER] as number) < this.maxFrames) this.#grow();
      if (c[FREE_COUNT] === 0) {
        // Evict only while limbo is short: frames retired earlier may still be waiting for a
        // thread to leave its epoch, and evicting more would only empty the cache.
        if ((c[LIMBO_COUNT] as number) < this.#evictBatch()) this.#evict();
        this.#reclaim();
      }
      if ((c[FREE_COUNT] as number) > 0) {
        const f = c[FREE_HEAD] as number;
        c[FREE_HEAD] = this.#frameCold[f * COLD_WORDS + C_NEXT] as number;
        bump(c, FREE_COUNT, -1);
        this.#setPage(f, FRAME_CLAIMED);
        return f;
      }
    }
    return -1;
  }

  #pushFree(f: number): void {
    const c = this.#control;
    this.#setPage(f, FRAME_FREE);
    this.#frameCold[f * COLD_WORDS + C_NEXT] = c[FREE_HEAD] as number;
    c[FREE_HEAD] = f;
    bump(c, FREE_COUNT, 1);
  }

  /** Hands out new frames, growing every buffer that holds frames or their state. */
  #grow(): void {
    const c = this.#control;
    const high = c[HIGH_WATER] as number;
    const add = Math.min(this.maxFrames - high, Math.max(GROW_FRAMES_MIN, high >> 3));
    const i = this.init;
    if ((c[COMMITTED] as number) < high + add) {
      const n = high + add;
      grow(i.frames, n * PAGE_SIZE);
      grow(i.framePage, 4 * n);
      grow(i.frameRefs, n);
      grow(i.frameWeight, n);
      grow(i.frameCold, 4 * COLD_WORDS * n);
      c[COMMITTED] = n;
    }
    if (high + add > this.#framePage.length) this.#refreshFrameArrays();
    // Highest first onto the list, so that frames are used (and committed by the OS) in order.
    for (let f = high + add - 1; f >= high; f--) this.#pushFree(f);
    c[HIGH_WATER] = high + add;
  }

  #evictBatch(): number {
    return Math.max(1, Math.min(EVICT_BATCH_MAX, (this.#control[HIGH_WATER] as number) >> 6));
  }

  /** One pass of the CLOCK hand: up to a batch of unmarked, unpinned frames retired to limbo. */
  #evict(): void {
    const c = this.#control;
    const high = c[HIGH_WATER] as number;
    if (high === 0) return;
    const batch = this.#evictBatch();
    const refs = this.#frameRefs;
    let retired = 0;
    // Every mark drops by one per pass, so (BRANCH_WEIGHT + 1) passes find every unpinned page.
    for (let steps = 0; steps < (BRANCH_WEIGHT + 1) * high && retired < batch; steps++) {
      const f = c[HAND] as number;
      c[HAND] = f + 1 >= high ? 0 : f + 1;
      if ((this.#framePage[f] as number) < FIRST_DATA_PAGE || (this.#frameCold[f * COLD_WORDS + C_PINS] as number) > 0) continue;
      const r = refs[f] as number;
      if (r > 0) refs[f] = r - 1;
      else {
        this.#retire(f);
        retired++;
      }
    }
    bump(c, EVICTIONS, retired);
  }

  /** Unlinks frame `f` from the map and puts it at the end of limbo, stamped with the current epoch. */
  #retire(f: number): void {
    const no = this.#framePage[f] as number;
    if (no < this.#map.length && this.#map[no] === f + 1) Atomics.store(this.#map, no, 0);
    this.#setPage(f, FRAME_LIMBO);
    this.#toLimbo(f, Atomics.load(this.#control, EPOCH));
  }

  #toLimbo(f: number, stamp: number): void {
    const c = this.#control;
    const rec = f * COLD_WORDS;
    this.#frameCold[rec + C_STAMP] = stamp;
    this.#frameCold[rec + C_NEXT] = -1;
    const tail = c[LIMBO_TAIL] as number;
    if (tail < 0) c[LIMBO_HEAD] = f;
    else this.#frameCold[tail * COLD_WORDS + C_NEXT] = f;
    c[LIMBO_TAIL] = f;
    bump(c, LIMBO_COUNT, 1);
  }

  /**
   * Advances the epoch, then frees every frame in limbo that no thread can still be reading: one
   * stamped before the oldest epoch any slot publishes. Pinned frames wait at the back of limbo.
   */
  #reclaim(): void {
    const c = this.#control;
    if (c[LIMBO_COUNT] === 0) return;
    // Epochs wrap around 2^32 (a long-lived process); they are compared by age, (now - e) | 0, which
    // is right while no thread stays inside one epoch for 2^31 advances. 0 is skipped: it means "outside".
    if (((Atomics.add(c, EPOCH, 1) + 1) | 0) === 0) Atomics.compareExchange(c, EPOCH, 0, 1);
    const now = Atomics.load(c, EPOCH);
    let oldestAge = 0;
    for (let s = 0; s < MAX_READER_SLOTS; s++) {
      const e = Atomics.load(c, SLOT_EPOCH + s);
      if (e !== 0 && ((now - e) | 0) > oldestAge) oldestAge = (now - e) | 0;
    }
    const cold = this.#frameCold;
    for (let n = c[LIMBO_COUNT] as number; n > 0; n--) {
      const f = c[LIMBO_HEAD] as number;
      const rec = f * COLD_WORDS;
      // A frame stamped no earlier than the oldest thread's entry may still be read by it; limbo is
      // in stamp order, so nothing after it can go either.
      if (((now - (cold[rec + C_STAMP] as number)) | 0) <= oldestAge) break;
      c[LIMBO_HEAD] = cold[rec + C_NEXT] as number;
      if (c[LIMBO_HEAD] === -1) c[LIMBO_TAIL] = -1;
      bump(c, LIMBO_COUNT, -1);
      if ((cold[rec + C_PINS] as number) > 0) this.#toLimbo(f, now);
      else this.#pushFree(f);
    }
  }

  /**
   * Makes frame `f` (filled with page `no`, absent from the map) the image of `no`: its page and
   * mark set first, then the map word, so that a reader that finds the frame in the map sees it hold
   * `no`. False if the map cannot cover `no`.
   */
  #link(no: number, f: number, weight: number): boolean {
    if (no >= MAX_MAPPED_PAGES) return false;
    if (no >= this.#map.length) {
      const c = this.#control;
      const words = Math.min(MAX_MAPPED_PAGES, Math.max(no + 1, (c[MAPPED] as number) + GROW_MAP_MIN, (c[MAPPED] as number) * 1.25));
      if (words > (c[MAPPED] as number)) {
        grow(this.init.map, 4 * Math.ceil(words));
        Atomics.store(c, MAPPED, this.init.map.byteLength / 4);
      }
      this.#refreshMap();
    }
    this.#frameWeight[f] = weight;
    this.#frameRefs[f] = weight;
    this.#setPage(f, no);
    Atomics.store(this.#map, no, f + 1);
    return true;
  }

  // ---- the lock ----------------------------------------------------------------------------------
  // A futex-style mutex whose word names its holder (so that a thread that ended holding it can be
  // told apart: releaseSlot): a short spin, then Atomics.wait, which every runtime allows on the
  // main thread too. It is never held across I/O or user code. A thread that finds it held sets
  // the waiters bit before it waits, and takes it with that bit set (others may still wait).

  #lock(): void {
    this.#acquire();
    // Another thread may have grown the buffers since this one last looked: every view must cover
    // the frames and table slots in use before anything is read or written under the lock.
    const high = this.#control[HIGH_WATER] as number;
    if (high > this.#framePage.length) this.#refreshFrameArrays();
    if (high * PAGE_SIZE > this.#bytes.length) this.#refreshFrames();
    if (this.#control[MAPPED] !== this.#map.length) this.#refreshMap();
  }

  #acquire(): void {
    const c = this.#control;
    // Never 0 (free): a cache used without a slot (-1) holds it as owner 1.
    const me = (this.#slot + 2) << 1;
    if (Atomics.compareExchange(c, LOCK, 0, me) === 0) return;
    for (let spin = 0; spin < 64; spin++) {
      if (Atomics.compareExchange(c, LOCK, 0, me) === 0) return;
    }
    for (;;) {
      const s = Atomics.load(c, LOCK);
      if (s === 0) {
        if (Atomics.compareExchange(c, LOCK, 0, me | 1) === 0) return;
      } else if ((s & 1) === 1 || Atomics.compareExchange(c, LOCK, s, s | 1) === s) {
        Atomics.wait(c, LOCK, s | 1);
      }
    }
  }

  #unlock(): void {
    const c = this.#control;
    if ((Atomics.exchange(c, LOCK, 0) & 1) === 1) Atomics.notify(c, LOCK, 1);
  }
}
