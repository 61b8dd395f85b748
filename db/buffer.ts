// The main thread's write buffer: every operation admitted since the last checkpoint, held in
// memory so that reads see it before the trees do.
//
// A buffer is a chain of generations, newest first: the active one takes new operations; when a
// checkpoint starts it is frozen (never changed again) and a new active one begins, and when the
// checkpoint's trees are published the frozen one is dropped. Each generation holds, per tree, a
// hash map from a hash of the key's bytes to the key's entry (its versions), and an ordered index
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
import bulkLoadModule from 'sorted-btree/extended/bulkLoad.js';
import { OP_DROP_TREE, OP_HEADER_SIZE, OP_KEY_LEN_OFFSET, OP_PUT, OP_TREE_LEN_OFFSET, OP_TYPE_OFFSET, OP_VALUE_LEN_OFFSET } from '../journal/format.js';

const bulkLoad = ('default' in bulkLoadModule ? (bulkLoadModule as { default: typeof bulkLoadModule }).default : bulkLoadModule).bulkLoad;
type SortedKeys = ReturnType<typeof bulkLoad<string, Version>>;
/**
 * What readers use of the key index. Declared here rather than as sorted-btree's class so that
 * the package's declarations do not depend on how that module's default export is typed (it
 * differs between the ES and CommonJS readings of its types).
 */
export interface KeyIndex {
  entries(lowestKey?: string): IterableIterator<[string, Version]>;
  entriesReversed(highestKey?: string): IterableIterator<[string, Version]>;
}
/** Plain string order (byte order for latin1 strings); sorted-btree's default also orders mixed types, slower. */
const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
/** Node size of the key index: 128 measured fastest for 16-byte keys (0.5 us a lookup vs 0.8 at the default 32). */
const INDEX_NODE_SIZE = 128;
const INDEX_LOAD_FACTOR = 0.8;

/**
 * A key's value as of batch `seq`, and the version before it. Everything lies in the bytes of the
 * batch that wrote it (`buf`, shared by its operations: no object of its own per key or value,
 * which matters to the young-generation collector, since buffered operations live until a
 * checkpoint): the value, `len` bytes at `off`, or len -1 for a delete; the key, the `keyLen`
 * bytes just before `off` (an operation's value follows its key).
 *
 * The newest version of a key is also the key's entry in its map and in the ordered index: a
 * newer write changes it in place and moves what it held into a new version behind it, so the
 * entry never changes identity and a key costs one object, not an entry and a version (Node keeps
 * 8 bytes a field: 80 bytes a version, where a separate entry cost 40 more). `collide` chains the
 * entries of keys with the same hash; it is unused on older versions. Readers never keep a
 * version across a turn (they take `visible()` and read it at once), so an in-place change is
 * never seen half-made, and a reader at an older seq walks on to the version it sees.
 */
export interface Version {
  seq: number;
  buf: Buffer;
  readonly keyLen: number;
  off: number;
  len: number;
  next: Version | undefined;
  collide: Version | undefined;
}

/** A copy of the version's value (null: a tombstone); callers may keep or change it. */
export function valueOf(v: Version): Buffer | null {
  if (v.len < 0) return null;
  const out = Buffer.allocUnsafe(v.len);
  v.buf.copy(out, 0, v.off, v.off + v.len);
  return out;
}

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

/** Whether the version's key is the `len` bytes at `off` of `b`. */
function sameKey(v: Version, b: Uint8Array, off: number, len: number): boolean {
  if (v.keyLen !== len) return false;
  const kb = v.buf;
  const ko = v.off - len;
  for (let j = 0; j < len; j++) if (kb[ko + j] !== b[off + j]) return false;
  return true;
}

/**
 * Memory a buffered operation costs beyond its key and value bytes, for the checkpoint trigger
 * and backpressure: the version object (a key's entry too), its map slot, the map's share of an index
 * node (measured on Node 20: about 180 bytes an entry with sorted-btree).
 */
export const ENTRY_OVERHEAD_BYTES = 180;

export class TreeBuffer {
  /** Hash of the key -> its entry, the newest version (entries of colliding keys chained). Keys are never removed: a delete is a version too. */
  readonly map = new Map<number, Version>();
  /** The keys in order, as of the last range; `unindexed` holds the entries added since. */
  #index: SortedKeys | undefined;
  #unindexed: Version[] = [];
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

  /** The entry of the `len` bytes at `off` of `b`, if this map holds that key. */
  find(b: Uint8Array, off: number, len: number, h: number = hashBytes(b, off, len)): Version | undefined {
    let e = this.map.get(h);
    while (e !== undefined && !sameKey(e, b, off, len)) e = e.collide;
    return e;
  }

  /**
   * Records a version at `seq` of the key `keyLen` bytes at `off - keyLen` of `buf` (value: `len`
   * bytes at `off`, or len -1 for a delete) as the key's newest; older versions that no reader at
   * or above `floor` can see go.
   */
  set(seq: number, buf: Buffer, keyLen: number, off: number, len: number, floor: number): void {
    const keyOff = off - keyLen;
    const h = hashBytes(buf, keyOff, keyLen);
    const first = this.map.get(h);
    let e = first;
    while (e !== undefined && !sameKey(e, buf, keyOff, keyLen)) e = e.collide;
    if (e !== undefined) {
      // The entry keeps its identity; what it held becomes the version behind it.
      const older: Version = { seq: e.seq, buf: e.buf, keyLen, off: e.off, len: e.len, next: e.next, collide: undefined };
      e.next = prune(older, floor);
      e.seq = seq;
      e.buf = buf;
      e.off = off;
      e.len = len;
      return;
    }
    const created: Version = { seq, buf, keyLen, off, len, next: undefined, collide: first };
    this.map.set(h, created);
    // Until a range builds the index, new keys need no list: the build reads the map's entries.
    if (this.#index !== undefined) this.#unindexed.push(created);
  }

  /** The keys in order (the index brought up to date), for a range. */
  index(): KeyIndex {
    let idx = this.#index;
    if (idx === undefined) {
      // Loaded bottom-up from one sort of every key: for 200,000 keys 37-56 ms against 238-273 ms
      // for inserting them one by one (sorted-btree 2.1, Node 20, the team's 2-core VM). Leaves
      // are filled to INDEX_LOAD_FACTOR, so that the keys added after it do not split them at once.
      const all: [string, Version][] = [];
      for (const first of this.map.values()) {
        for (let e: Version | undefined = first; e !== undefined; e = e.collide) all.push([keyString(e), e]);
      }
      all.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      idx = this.#index = bulkLoad<string, Version>(all.map((p) => p[0]), all.map((p) => p[1]), INDEX_NODE_SIZE, byString, INDEX_LOAD_FACTOR);
    } else {
      for (const e of this.#unindexed) idx.set(keyString(e), e);
    }
    this.#unindexed = [];
    return idx;
  }
}

/** The key of an entry as a latin1 string (string order is byte order): for the ordered index only. */
function keyString(e: Version): string {
  return e.buf.toString('latin1', e.off - e.keyLen, e.off);
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
