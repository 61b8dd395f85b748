// The main thread's write buffer: every operation admitted since the last checkpoint, held in
// memory so that reads see it before the trees do.
//
// A buffer is a chain of generations, newest first: the active one takes new operations; when a
// checkpoint starts it is frozen (never changed again) and a new active one begins, and when the
// checkpoint's trees are published the frozen one is dropped. Each generation holds, per tree, a
// hash map from the key (its bytes as a latin1 string: string order is byte order, and strings
// hash and compare several times faster than Buffers) to a chain of versions, and an ordered index
// of the keys (sorted-btree) that is brought up to date only when a range needs it: a write costs
// a hash map update (measured on the 2-core VM, 250,000 random 16-byte keys: 0.3 us a put, where
// keeping the ordered map on every write cost 1.0-1.6 us), and a workload that never iterates the
// buffer never sorts it.
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
import bulkLoadModule from 'sorted-btree/extended/bulkLoad.js';

const bulkLoad = ('default' in bulkLoadModule ? (bulkLoadModule as { default: typeof bulkLoadModule }).default : bulkLoadModule).bulkLoad;
type SortedKeys = ReturnType<typeof bulkLoad<string, true>>;
/**
 * What readers use of the key index. Declared here rather than as sorted-btree's class so that
 * the package's declarations do not depend on how that module's default export is typed (it
 * differs between the ES and CommonJS readings of its types).
 */
export interface KeyIndex {
  entries(lowestKey?: string): IterableIterator<[string, true]>;
  entriesReversed(highestKey?: string): IterableIterator<[string, true]>;
}
/** Plain string order (byte order for latin1 strings); sorted-btree's default also orders mixed types, slower. */
const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
/** Node size of the key index: 128 measured fastest for 16-byte keys (0.5 us a lookup vs 0.8 at the default 32). */
const INDEX_NODE_SIZE = 128;
const INDEX_LOAD_FACTOR = 0.8;

/**
 * A key's value as of batch `seq`, and the version before it. The value is `len` bytes at `off` of
 * `buf` (the batch's encoded bytes, shared by its operations: no object of its own per value, which
 * matters to the young-generation collector, since buffered operations live until a checkpoint);
 * `buf` null: deleted.
 */
export interface Version {
  readonly seq: number;
  readonly buf: Buffer | null;
  readonly off: number;
  readonly len: number;
  next: Version | undefined;
}

/** A copy of the version's value (null: a tombstone); callers may keep or change it. */
export function valueOf(v: Version): Buffer | null {
  if (v.buf === null) return null;
  const out = Buffer.allocUnsafe(v.len);
  v.buf.copy(out, 0, v.off, v.off + v.len);
  return out;
}

/**
 * Memory a buffered operation costs beyond its key and value bytes, for the checkpoint trigger
 * and backpressure: the version object, the map's share of a node, the key string's header and
 * the value Buffer's object (measured on Node 20: about 180 bytes an entry with sorted-btree).
 */
export const ENTRY_OVERHEAD_BYTES = 180;

export class TreeBuffer {
  /** Key -> its versions, newest first. Keys are never removed: a delete is a version too. */
  readonly map = new Map<string, Version>();
  /** The keys in order, as of the last range; `unindexed` holds the keys added since. */
  #index: SortedKeys | undefined;
  #unindexed: string[] = [];
  /** The seq of the drop that began this map (0: none: older data shows through). */
  readonly droppedAt: number;
  /** The map this one replaced at the drop, for readers older than it. */
  readonly before: TreeBuffer | undefined;
  /** The seq of the first put since droppedAt (0: none yet): the tree exists from it on. */
  createdAt = 0;

  constructor(droppedAt: number, before: TreeBuffer | undefined) {
    this.droppedAt = droppedAt;
    this.before = before;
  }

  /** This tree's map as a reader at `seq` sees it: before any drop later than seq. */
  at(seq: number): TreeBuffer | undefined {
    let t: TreeBuffer | undefined = this;
    while (t !== undefined && t.droppedAt > seq) t = t.before;
    return t;
  }

  /** Records a version of `key` (its newest); older versions no reader at or above `floor` can see go. */
  set(key: string, seq: number, buf: Buffer | null, off: number, len: number, floor: number): void {
    const prev = this.map.get(key);
    // Until a range builds the index, new keys need no list: the build reads the map's keys.
    if (prev === undefined && this.#index !== undefined) this.#unindexed.push(key);
    this.map.set(key, { seq, buf, off, len, next: prune(prev, floor) });
  }

  /** The keys in order (the index brought up to date), for a range. */
  index(): KeyIndex {
    let idx = this.#index;
    if (idx === undefined) {
      // Loaded bottom-up from one sort of every key: for 200,000 keys 37-56 ms against 238-273 ms
      // for inserting them one by one (sorted-btree 2.1, Node 20, the team's 2-core VM). Leaves
      // are filled to INDEX_LOAD_FACTOR, so that the keys added after it do not split them at once.
      const keys = [...this.map.keys()].sort();
      idx = this.#index = bulkLoad<string, true>(keys, new Array<true>(keys.length).fill(true), INDEX_NODE_SIZE, byString, INDEX_LOAD_FACTOR);
    } else {
      for (const k of this.#unindexed) idx.set(k, true);
    }
    this.#unindexed = [];
    return idx;
  }
}

/** The version of a chain a reader at `seq` sees, or undefined if the chain is all newer. */
export function visible(v: Version | undefined, seq: number): Version | undefined {
  while (v !== undefined && v.seq > seq) v = v.next;
  return v;
}

export class Generation {
  /** Tree name ('' for the default tree) -> its buffered operations. */
  readonly trees = new Map<string, TreeBuffer>();
  /** Operation bytes admitted (keys, values, ENTRY_OVERHEAD_BYTES each): what triggers a checkpoint. */
  bytes = 0;
  ops = 0;
  frozen = false;

  #tree(name: string): TreeBuffer {
    let t = this.trees.get(name);
    if (t === undefined) {
      t = new TreeBuffer(0, undefined);
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
   * Records a put (the value: `len` bytes at `off` of `buf`) or a delete (`buf` null) of `key` in
   * `tree` at `seq`. `floor` is the oldest seq a reader may read at: older versions that no reader
   * can see are dropped.
   */
  write(tree: string, key: string, buf: Buffer | null, off: number, len: number, seq: number, floor: number): void {
    this.#note(key.length + len);
    const t = this.#tree(tree);
    if (buf !== null && t.createdAt === 0) t.createdAt = seq;
    t.set(key, seq, buf, off, len, floor);
  }

  /** Records the drop of `tree` at `seq`. */
  drop(tree: string, seq: number): void {
    this.#note(tree.length);
    this.trees.set(tree, new TreeBuffer(seq, this.trees.get(tree)));
  }
}

/** The chain `v` with every version that no reader at or above `floor` can see dropped. */
function prune(v: Version | undefined, floor: number): Version | undefined {
  const head = v;
  while (v !== undefined) {
    if (v.seq <= floor) {
      v.next = undefined;
      break;
    }
    v = v.next;
  }
  return head;
}
