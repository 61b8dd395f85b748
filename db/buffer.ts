// The main thread's write buffer: every operation admitted since the last checkpoint, held in
// memory so that reads see it before the trees do.
//
// A buffer is a chain of generations, newest first: the active one takes new operations; when a
// checkpoint starts it is frozen (never changed again) and a new active one begins, and when the
// checkpoint's trees are published the frozen one is dropped. Each generation holds, per tree, a
// hash table from a hash of the key's bytes to the key's entry (its versions), and an ordered index
// of the keys (sorted-btree over latin1 strings, in which string order is byte order) that is
// brought up to date only when a range needs it. Keys are never copied into strings on the way in
// or on a point read: a write hashes the key where it lies in its batch's bytes, and a get hashes
// the caller's key; only a range that iterates the buffer pays for strings and a sort.
//
// Versions: an operation is admitted with its batch's sequence number and is visible to a reader
// at seq S only if its seq <= S (readers read at the last acknowledged batch; conditions are
// decided at the last admitted one). Each key keeps the versions newer than the oldest reader's
// seq, plus the newest one at or below it, so every live reader finds its version (prune).
//
// Tree drops: a drop at seq D starts a new map for the tree in the active generation, marked
// droppedAt = D, whose `before` is the map it replaced; a reader at S >= D finds nothing of the
// tree older than D (not in older generations either, nor in the trees), a reader at S < D reads
// `before`.
//
// Memory: a version is a slot in typed arrays, not an object. Buffered operations live until a
// checkpoint, so as objects they all survived the young generation and each was copied by the
// scavenger before it was promoted: measured on Node 20, 250-800 ns a put for the object alone and
// about 500 ns for a growing Map, against about 100 for the whole put in slots; and a slot is 32
// bytes where an object and its map entry were about 120.
import bulkLoadModule from 'sorted-btree/extended/bulkLoad.js';
import { OP_DROP_TREE, OP_HEADER_SIZE, OP_KEY_LEN_OFFSET, OP_PUT, OP_TREE_LEN_OFFSET, OP_TYPE_OFFSET, OP_VALUE_LEN_OFFSET } from '../journal/format.js';

const bulkLoad = ('default' in bulkLoadModule ? (bulkLoadModule as { default: typeof bulkLoadModule }).default : bulkLoadModule).bulkLoad;
type SortedKeys = ReturnType<typeof bulkLoad<string, number>>;
/**
 * What readers use of the key index: each key as a latin1 string, with its entry's slot. Declared
 * here rather than as sorted-btree's class so that the package's declarations do not depend on
 * how that module's default export is typed (it differs between the ES and CommonJS readings of
 * its types).
 */
export interface KeyIndex {
  entries(lowestKey?: string): IterableIterator<[string, number]>;
  entriesReversed(highestKey?: string): IterableIterator<[string, number]>;
}
/** Plain string order (byte order for latin1 strings); sorted-btree's default also orders mixed types, slower. */
const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
/** Node size of the key index: 128 measured fastest for 16-byte keys (0.5 us a lookup vs 0.8 at the default 32). */
const INDEX_NODE_SIZE = 128;
const INDEX_LOAD_FACTOR = 0.8;

/** No slot: the end of a chain. */
export const NO_SLOT = -1;

/**
 * A version's slot, SLOT_INTS Int32 words in TreeBuffer's #ints (its seq is in #seqs, a float:
 * sequence numbers may pass 2^31):
 *
 *   word 0  HASH     the key's hash (hashBytes): compared before the key's bytes, and the bucket
 *                    when the table grows
 *   word 1  BUF      the index, in #bufs, of the batch bytes the version lies in
 *   word 2  OFF      where its value starts in them; the key is the KEY_LEN bytes just before
 *                    (an operation's value follows its key)
 *   word 3  LEN      the value's length, or -1 for a delete
 *   word 4  KEY_LEN  the key's length
 *   word 5  NEXT     the version before it, or NO_SLOT
 *   word 6  COLLIDE  the next entry in the same bucket, or NO_SLOT (entries only)
 *   word 7  (unused: eight words keep a slot's offset a shift)
 *
 * A key's newest version is also its entry: in its bucket's chain and in the ordered index. A
 * newer write changes the entry in place and moves what it held into a new slot behind it, so the
 * entry's slot never changes. Readers never keep a slot across a turn (they take visibleAt() and
 * read it at once), so an in-place change is never seen half-made, and a reader at an older seq
 * walks on to the version it sees. Slots are never freed (a pruned version's slot stays unused
 * until the generation goes; its bytes are counted with its operation's).
 */
const HASH = 0;
const BUF = 1;
const OFF = 2;
const LEN = 3;
const KEY_LEN = 4;
const NEXT = 5;
const COLLIDE = 6;
const SLOT_INTS = 8;
/** Slots and buckets a tree buffer starts with: many named trees each with a few keys stay small. */
const INITIAL_SLOTS = 16;
/** The most slots a size hint may make a tree buffer start with (40 MiB of slots). */
const MAX_HINTED_SLOTS = 1 << 20;

/**
 * A 30-bit hash of `len` bytes at `off` of `b` (murmur3's mixing, four bytes a step): a small
 * integer, which a Map keys by without hashing again.
 */
export function hashBytes(b: Uint8Array, off: number, len: number): number {
  let h = 0x9747b28c ^ len;
  let i = off;
  const end = off + len;
  for (; i + 4 <= end; i += 4) {
    let k = (b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < end) {
    let k = b[i] as number;
    if (i + 1 < end) k |= (b[i + 1] as number) << 8;
    if (i + 2 < end) k |= (b[i + 2] as number) << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & 0x3fffffff;
}

/**
 * Memory a buffered operation costs beyond its key and value bytes, for the checkpoint trigger
 * and backpressure: an upper bound on its journal-layout header in the batch bytes (9 bytes), its
 * slot and share of the buckets (40 to 88 bytes as the arrays fill and double: 58 at 200,000
 * puts) and the key index a range builds (49 bytes a 16-byte key, 74 a 40-byte one); measured on
 * Node 20 by perf/buffer-overhead.ts. The checkpointer's copy of a frozen generation is charged
 * the same per operation (api/options.ts memoryLimit).
 */
export const ENTRY_OVERHEAD_BYTES = 180;

export class TreeBuffer {
  /** SLOT_INTS words a slot (the layout above). */
  #ints: Int32Array;
  /** Each slot's batch seq. */
  #seqs: Float64Array;
  /** Slots in use. */
  #used = 0;
  /** Keys (entries). */
  #keys = 0;
  /** Hash & mask -> the first entry of that bucket, or NO_SLOT; as many buckets as slots. */
  #buckets: Int32Array;
  #mask: number;
  /** The batch bytes versions lie in (a BUF word indexes it); consecutive versions mostly share one. */
  readonly #bufs: Buffer[] = [];
  /** The keys in order, as of the last range; `unindexed` holds the entries added since. */
  #index: SortedKeys | undefined;
  #unindexed: number[] = [];
  /** The seq of the drop that began this map (0: none: older data shows through). */
  readonly droppedAt: number;
  /** The map this one replaced at the drop, for readers older than it. */
  readonly before: TreeBuffer | undefined;
  /** The seq of the first put since droppedAt (0: none yet): the tree exists from it on. */
  createdAt = 0;

  /**
   * `sizeHint`: the slots the tree's buffer in the generation before took. Starting at half of it
   * spares all doublings but the last (each rehashes every key: #grow was 8% of a sequential
   * fill's main-thread time in a profile).
   */
  constructor(droppedAt: number, before: TreeBuffer | undefined, sizeHint = 0) {
    this.droppedAt = droppedAt;
    this.before = before;
    // Half the hint: at most one doubling left if the tree takes as many again, and a generation
    // that writes the tree a few times allocates at most half of what the one before used.
    let n = INITIAL_SLOTS;
    while (2 * n < sizeHint && n < MAX_HINTED_SLOTS) n *= 2;
    this.#ints = new Int32Array(n * SLOT_INTS);
    this.#seqs = new Float64Array(n);
    this.#buckets = new Int32Array(n).fill(NO_SLOT);
    this.#mask = n - 1;
  }

  /** Slots in use: a size hint for the tree's buffer in the next generation. */
  get slots(): number {
    return this.#used;
  }

  /** How many keys it holds. */
  get size(): number {
    return this.#keys;
  }

  /** This tree's map as a reader at `seq` sees it: before any drop later than seq. */
  at(seq: number): TreeBuffer | undefined {
    let t: TreeBuffer | undefined = this;
    while (t !== undefined && t.droppedAt > seq) t = t.before;
    return t;
  }

  /** The entry (its slot) of the `len` bytes at `off` of `b`, or NO_SLOT if this map holds no such key. */
  find(b: Uint8Array, off: number, len: number, h: number = hashBytes(b, off, len)): number {
    const ints = this.#ints;
    let e = this.#buckets[h & this.#mask] as number;
    while (e !== NO_SLOT && !this.#isKey(e, h, b, off, len)) e = ints[e * SLOT_INTS + COLLIDE] as number;
    return e;
  }

  /** Whether slot `e` holds the key `len` bytes at `off` of `b`, whose hash is `h`. */
  #isKey(e: number, h: number, b: Uint8Array, off: number, len: number): boolean {
    const ints = this.#ints;
    const at = e * SLOT_INTS;
    if (ints[at + HASH] !== h || ints[at + KEY_LEN] !== len) return false;
    const kb = this.#bufs[ints[at + BUF] as number] as Buffer;
    const ko = (ints[at + OFF] as number) - len;
    for (let j = 0; j < len; j++) if (kb[ko + j] !== b[off + j]) return false;
    return true;
  }

  /** The version of `slot`'s chain a reader at `seq` sees, or NO_SLOT if the chain is all newer. */
  visibleAt(slot: number, seq: number): number {
    const ints = this.#ints;
    const seqs = this.#seqs;
    while (slot !== NO_SLOT && (seqs[slot] as number) > seq) slot = ints[slot * SLOT_INTS + NEXT] as number;
    return slot;
  }

  /** A copy of the version's value (null: a delete); callers may keep or change it. */
  valueOf(slot: number): Buffer | null {
    const at = slot * SLOT_INTS;
    const len = this.#ints[at + LEN] as number;
    if (len < 0) return null;
    const off = this.#ints[at + OFF] as number;
    const out = Buffer.allocUnsafe(len);
    out.set((this.#bufs[this.#ints[at + BUF] as number] as Buffer).subarray(off, off + len));
    return out;
  }

  /** The version's value where it lies, without a copy (undefined: a delete). */
  valueView(slot: number): Buffer | undefined {
    const at = slot * SLOT_INTS;
    const len = this.#ints[at + LEN] as number;
    if (len < 0) return undefined;
    const off = this.#ints[at + OFF] as number;
    return (this.#bufs[this.#ints[at + BUF] as number] as Buffer).subarray(off, off + len);
  }

  /** The key of slot `e` as a latin1 string (string order is byte order): for the ordered index only. */
  #keyString(e: number): string {
    const at = e * SLOT_INTS;
    const off = this.#ints[at + OFF] as number;
    return (this.#bufs[this.#ints[at + BUF] as number] as Buffer).toString('latin1', off - (this.#ints[at + KEY_LEN] as number), off);
  }

  /** A new slot holding the given version; grows the arrays (and the buckets with them) when full. */
  #slot(seq: number, h: number, bufId: number, off: number, len: number, keyLen: number, next: number, collide: number): number {
    if (this.#used === this.#seqs.length) this.#grow();
    const e = this.#used++;
    const at = e * SLOT_INTS;
    const ints = this.#ints;
    ints[at + HASH] = h;
    ints[at + BUF] = bufId;
    ints[at + OFF] = off;
    ints[at + LEN] = len;
    ints[at + KEY_LEN] = keyLen;
    ints[at + NEXT] = next;
    ints[at + COLLIDE] = collide;
    this.#seqs[e] = seq;
    return e;
  }

  /** Doubles the slots and the buckets, and puts every entry in its new bucket. */
  #grow(): void {
    const n = this.#seqs.length * 2;
    const ints = new Int32Array(n * SLOT_INTS);
    ints.set(this.#ints);
    const seqs = new Float64Array(n);
    seqs.set(this.#seqs);
    const buckets = new Int32Array(n).fill(NO_SLOT);
    const mask = n - 1;
    // Every entry is in exactly one old chain: walk them all, relinking each into its new bucket.
    const old = this.#buckets;
    for (let b = 0; b < old.length; b++) {
      let e = old[b] as number;
      while (e !== NO_SLOT) {
        const at = e * SLOT_INTS;
        const next = ints[at + COLLIDE] as number;
        const nb = (ints[at + HASH] as number) & mask;
        ints[at + COLLIDE] = buckets[nb] as number;
        buckets[nb] = e;
        e = next;
      }
    }
    this.#ints = ints;
    this.#seqs = seqs;
    this.#buckets = buckets;
    this.#mask = mask;
  }

  /**
   * Records a version at `seq` of the key `keyLen` bytes at `off - keyLen` of `buf` (value: `len`
   * bytes at `off`, or len -1 for a delete) as the key's newest; older versions that no reader at
   * or above `floor` can see are cut off the chain.
   */
  set(seq: number, buf: Buffer, keyLen: number, off: number, len: number, floor: number): void {
    const bufs = this.#bufs;
    let bufId = bufs.length - 1;
    if (bufs[bufId] !== buf) {
      bufs.push(buf);
      bufId++;
    }
    const keyOff = off - keyLen;
    const h = hashBytes(buf, keyOff, keyLen);
    const e = this.find(buf, keyOff, keyLen, h);
    if (e !== NO_SLOT) {
      // The entry keeps its slot; what it held moves to a new slot behind it.
      const at = e * SLOT_INTS;
      let ints = this.#ints;
      const older = this.#slot(this.#seqs[e] as number, h, ints[at + BUF] as number, ints[at + OFF] as number, ints[at + LEN] as number, keyLen, ints[at + NEXT] as number, NO_SLOT);
      ints = this.#ints; // #slot may have grown the arrays
      this.#prune(older, floor);
      ints[at + NEXT] = older;
      ints[at + BUF] = bufId;
      ints[at + OFF] = off;
      ints[at + LEN] = len;
      this.#seqs[e] = seq;
      return;
    }
    const created = this.#slot(seq, h, bufId, off, len, keyLen, NO_SLOT, NO_SLOT);
    const b = h & this.#mask;
    this.#ints[created * SLOT_INTS + COLLIDE] = this.#buckets[b] as number;
    this.#buckets[b] = created;
    this.#keys++;
    // Until a range builds the index, new keys need no list: the build reads the buckets.
    if (this.#index !== undefined) this.#unindexed.push(created);
  }

  /** Cuts the chain from `v` after the first version a reader at `floor` sees (none older is read). */
  #prune(v: number, floor: number): void {
    const ints = this.#ints;
    while (v !== NO_SLOT) {
      if ((this.#seqs[v] as number) <= floor) {
        ints[v * SLOT_INTS + NEXT] = NO_SLOT;
        return;
      }
      v = ints[v * SLOT_INTS + NEXT] as number;
    }
  }

  /** The keys in order (the index brought up to date), for a range. */
  index(): KeyIndex {
    let idx = this.#index;
    if (idx === undefined) {
      // Loaded bottom-up from one sort of every key: for 200,000 keys 37-56 ms against 238-273 ms
      // for inserting them one by one (sorted-btree 2.1, Node 20, the team's 2-core VM). Leaves
      // are filled to INDEX_LOAD_FACTOR, so that the keys added after it do not split them at once.
      const all: [string, number][] = [];
      const buckets = this.#buckets;
      for (let b = 0; b < buckets.length; b++) {
        for (let e = buckets[b] as number; e !== NO_SLOT; e = this.#ints[e * SLOT_INTS + COLLIDE] as number) all.push([this.#keyString(e), e]);
      }
      all.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      idx = this.#index = bulkLoad<string, number>(all.map((p) => p[0]), all.map((p) => p[1]), INDEX_NODE_SIZE, byString, INDEX_LOAD_FACTOR);
    } else {
      for (const e of this.#unindexed) idx.set(this.#keyString(e), e);
    }
    this.#unindexed = [];
    return idx;
  }
}

/** The id of the last generation made: ids grow by one a generation, in the order they are made. */
let lastGenerationId = 0;

export class Generation {
  /** Unique in the process, and larger than every generation made before it. */
  readonly id = ++lastGenerationId;
  /** Tree name ('' for the default tree) -> its buffered operations. */
  readonly trees = new Map<string, TreeBuffer>();
  /** The slots each tree took in the generation before this one: where its trees start (TreeBuffer's sizeHint). */
  readonly #hints: Map<string, number> | undefined;
  /** Operation bytes admitted (keys, values, ENTRY_OVERHEAD_BYTES each): what triggers a checkpoint. */
  bytes = 0;
  ops = 0;
  frozen = false;

  /** `before`: the generation this one follows (its trees' sizes are the hints for this one's). */
  constructor(before?: Generation) {
    if (before === undefined) return;
    this.#hints = new Map();
    for (const [name, t] of before.trees) this.#hints.set(name, t.slots);
  }

  #tree(name: string): TreeBuffer {
    let t = this.trees.get(name);
    if (t === undefined) {
      t = new TreeBuffer(0, undefined, this.#hints?.get(name) ?? 0);
      this.trees.set(name, t);
    }
    return t;
  }

  #note(bytes: number): void {
    if (this.frozen) throw new Error('birchdb assertion failed: a frozen generation was written');
    this.bytes += bytes + ENTRY_OVERHEAD_BYTES;
    this.ops++;
  }

  /**
   * Records, in `tree` at `seq`, a put of the key `keyLen` bytes at `keyOff` of `buf` (the value:
   * `len` bytes right after it) or, with len -1, a delete. `floor` is the oldest seq a reader may
   * read at: older versions that no reader can see are dropped.
   */
  write(tree: string, buf: Buffer, keyOff: number, keyLen: number, len: number, seq: number, floor: number): void {
    this.#note(keyLen + (len < 0 ? 0 : len));
    const t = this.#tree(tree);
    if (len >= 0 && t.createdAt === 0) t.createdAt = seq;
    t.set(seq, buf, keyLen, keyOff + keyLen, len, floor);
  }

  /** Records the drop of `tree` at `seq`. */
  drop(tree: string, seq: number): void {
    this.#note(tree.length);
    this.trees.set(tree, new TreeBuffer(seq, this.trees.get(tree)));
  }
}

/**
 * Applies `count` operations in the journal's layout (journal/format.ts), from `off` of `buf`, to
 * `gen` at `seq`: the one way operations enter a write buffer, for the main thread at admission
 * and for recovery as it replays. The bytes are trusted: the main thread encoded them, and
 * recovery's journal scan checked every record's operations. The buffer keeps `buf` (its entries
 * point into it). `floor` as for Generation.write. A tree's name is decoded once per run of
 * operations on the same tree, not once per operation.
 */
export function applyOps(gen: Generation, buf: Buffer, off: number, count: number, seq: number, floor: number): void {
  let name = '';
  let nameAt = -1;
  let nameLen = 0;
  for (let i = 0; i < count; i++) {
    const type = buf[off + OP_TYPE_OFFSET];
    const treeLen = buf.readUInt16LE(off + OP_TREE_LEN_OFFSET);
    const keyLen = buf.readUInt16LE(off + OP_KEY_LEN_OFFSET);
    const valueLen = buf.readUInt32LE(off + OP_VALUE_LEN_OFFSET);
    const t = off + OP_HEADER_SIZE;
    let tree = '';
    if (treeLen > 0) {
      if (nameAt < 0 || treeLen !== nameLen || buf.compare(buf, nameAt, nameAt + nameLen, t, t + treeLen) !== 0) {
        name = buf.toString('utf8', t, t + treeLen);
        nameAt = t;
        nameLen = treeLen;
      }
      tree = name;
    }
    if (type === OP_DROP_TREE) gen.drop(tree, seq);
    else gen.write(tree, buf, t + treeLen, keyLen, type === OP_PUT ? valueLen : -1, seq, floor);
    off = t + treeLen + keyLen + valueLen;
  }
}
