// The bulk merge (btree/merge.ts) on its own: trees built and rebuilt checkpoint after checkpoint
// over an in-memory page store, compared with a Map after each, with every page accounted for.
import assert from 'node:assert/strict';
import { pageNo, type PageNo } from '../../pager/ids.js';
import { PAGE_SIZE, PageKind, pageKind, sealPage, verifyPage } from '../../pager/page-format.js';
import { EMPTY_TREE, get, type TreeDesc } from '../../btree/tree.js';
import { iterate } from '../../btree/cursor.js';
import { mergeTree, type MergeOp, type PageSink } from '../../btree/merge.js';
import { TreeBuilder } from '../../btree/build.js';
import { cellBytes, childAt, count, isLeaf, keyAt, leafValue, usedBytes } from '../../btree/node.js';
import { LEAF_CELL_HEADER, NODE_CAPACITY, MAX_INLINE_LEAF_CELL, overflowPagesFor } from '../../btree/node-format.js';
import { rng } from '../helpers/index.js';

/** Pages in memory; a page freed by a merge is dropped once the merge is over (never reused here). */
class MemPages implements PageSink {
  readonly pages = new Map<number, Buffer>();
  #next = 3;
  #thisMerge = new Set<number>();
  #freed: number[] = [];
  written = 0;
  read(no: PageNo): Buffer {
    const p = this.pages.get(no);
    if (p === undefined) throw new Error(`page ${no} is not there`);
    return p;
  }
  allocate(n: number): PageNo {
    const first = this.#next;
    this.#next += n;
    for (let i = 0; i < n; i++) this.#thisMerge.add(first + i);
    return pageNo(first);
  }
  emit(no: PageNo, page: Buffer): void {
    assert.ok(this.#thisMerge.has(no), `page ${no} written but not allocated by this merge`);
    sealPage(page);
    this.pages.set(no, page);
    this.written++;
  }
  free(no: PageNo): void {
    assert.ok(this.pages.has(no), `page ${no} freed but not in use`);
    if (this.#thisMerge.delete(no)) this.pages.delete(no);
    else this.#freed.push(no);
  }
  newPage(): Buffer {
    return Buffer.alloc(PAGE_SIZE);
  }
  /** Ends a merge: the committed pages it freed go. */
  endMerge(): void {
    for (const no of this.#freed) assert.ok(this.pages.delete(no), `page ${no} freed twice`);
    this.#freed = [];
    this.#thisMerge = new Set();
  }
}

const read = (s: MemPages) => (no: PageNo): Buffer => s.read(no);

/** Every page of the tree, reachable exactly once, verifying, at one depth; returns its leaf fill. */
function shape(s: MemPages, desc: TreeDesc): { pages: Set<number>; fill: number; leaves: number } {
  const pages = new Set<number>();
  let used = 0;
  let leaves = 0;
  const claim = (no: number): void => {
    assert.ok(!pages.has(no), `page ${no} reached twice`);
    pages.add(no);
  };
  const visit = (no: number, level: number, lo: Buffer | undefined, hi: Buffer | undefined): void => {
    claim(no);
    const p = s.read(pageNo(no));
    verifyPage(p, no);
    const n = count(p);
    assert.ok(n > 0, `page ${no} is empty`);
    if (level === desc.depth) {
      assert.ok(isLeaf(p), `page ${no} at the leaf level is a ${pageKind(p)}`);
      leaves++;
      used += usedBytes(p);
      for (let i = 0; i < n; i++) {
        const k = keyAt(p, i, true);
        if (lo !== undefined) assert.ok(k.compare(lo) >= 0, 'key below its separator');
        if (hi !== undefined) assert.ok(k.compare(hi) < 0, 'key not below the next separator');
        const v = leafValue(p, i);
        if (v.overflow) for (let k2 = 0; k2 < overflowPagesFor(v.valueLen); k2++) claim(v.at + k2);
      }
      return;
    }
    assert.ok(!isLeaf(p));
    if (level === 1) assert.ok(n >= 2, 'a root branch has one child');
    for (let i = 0; i < n; i++) visit(childAt(p, i), level + 1, i === 0 ? lo : Buffer.from(keyAt(p, i, false)), i + 1 < n ? Buffer.from(keyAt(p, i + 1, false)) : hi);
  };
  if (desc.root !== 0) visit(desc.root, 1, undefined, undefined);
  return { pages, fill: leaves === 0 ? 0 : used / (leaves * NODE_CAPACITY), leaves };
}

/** Merges `ops` (any order, repeats allowed: the last one wins) and checks the tree against `model`. */
function mergeAndCheck(s: MemPages, desc: TreeDesc, ops: [string, Buffer | null][], model: Map<string, Buffer>): TreeDesc {
  const last = new Map<string, Buffer | null>();
  for (const [k, v] of ops) last.set(k, v);
  const sorted: MergeOp[] = [...last].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b))).map(([k, v]) => ({ key: Buffer.from(k), value: v }));
  const next = mergeTree(s, desc, sorted);
  s.endMerge();
  for (const [k, v] of last) {
    if (v === null) model.delete(k);
    else model.set(k, v);
  }
  assert.equal(next.entries, model.size, 'the descriptor counts every entry');
  const got = [...iterate(read(s), next, {})];
  const want = [...model].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  assert.equal(got.length, want.length, 'disagrees with the model on the number of entries');
  got.forEach(([k, v], i) => {
    const [wk, wv] = want[i] as [string, Buffer];
    assert.equal(k.toString(), wk, 'disagrees with the model on a key');
    assert.ok(v.equals(wv), `disagrees with the model on the value of ${wk}`);
  });
  const { pages } = shape(s, next);
  assert.equal(pages.size, s.pages.size, `${s.pages.size - pages.size} pages are neither reachable nor freed`);
  return next;
}

const k16 = (i: number): string => String(i).padStart(16, '0');

describe('btree: bulk merge of a checkpoint into a tree', () => {
  it('agrees with a Map after each of 60 random checkpoints of puts and deletes, large values included, down to empty', () => {
    const s = new MemPages();
    const rand = rng(5);
    const model = new Map<string, Buffer>();
    let desc = EMPTY_TREE;
    let maxDepth = 0;
    for (let c = 0; c < 60; c++) {
      const ops: [string, Buffer | null][] = [];
      const n = Math.floor(rand() * 3000);
      const delShare = c < 40 ? 0.25 : 0.9;
      for (let i = 0; i < n; i++) {
        const k = `key-${Math.floor(rand() * 20000)}`;
        if (rand() < delShare) ops.push([k, null]);
        else {
          const size = rand() < 0.01 ? 3000 + Math.floor(rand() * 20000) : Math.floor(rand() * 120);
          ops.push([k, Buffer.alloc(size, Math.floor(rand() * 256))]);
        }
      }
      desc = mergeAndCheck(s, desc, ops, model);
      maxDepth = Math.max(maxDepth, desc.depth);
    }
    desc = mergeAndCheck(s, desc, [...model.keys()].map((k) => [k, null]), model);
    assert.ok(maxDepth >= 3, `the tree grew to depth ${maxDepth} only`);
    assert.deepEqual(desc, EMPTY_TREE);
    assert.equal(s.pages.size, 0, 'every page is freed');
  });

  it('rewrites only the pages a checkpoint touches', () => {
    const s = new MemPages();
    const model = new Map<string, Buffer>();
    const desc = mergeAndCheck(s, EMPTY_TREE, Array.from({ length: 20000 }, (_, i) => [k16(i), Buffer.alloc(100, 1)] as [string, Buffer]), model);
    const before = s.written;
    mergeAndCheck(s, desc, [[k16(10000), Buffer.alloc(100, 2)]], model);
    // The leaf, its parent and the root: one page per level (a full leaf may split in two).
    assert.ok(s.written - before <= desc.depth + 1, `${s.written - before} pages written for one key at depth ${desc.depth}`);
  });

  it('leaves pages nearly full for ascending keys and for random keys, checkpoint after checkpoint', () => {
    for (const order of ['ascending', 'random'] as const) {
      const s = new MemPages();
      const rand = rng(9);
      const model = new Map<string, Buffer>();
      let desc = EMPTY_TREE;
      let next = 0;
      for (let c = 0; c < 20; c++) {
        const ops: [string, Buffer][] = [];
        for (let i = 0; i < 5000; i++) ops.push([order === 'ascending' ? k16(next++) : k16(Math.floor(rand() * 1e9)), Buffer.alloc(100, 7)]);
        desc = mergeAndCheck(s, desc, ops, model);
      }
      const { fill, leaves } = shape(s, desc);
      console.log(`      ${order}: 100,000 keys in 20 checkpoints: ${leaves} leaves, fill ${(fill * 100).toFixed(1)}%, depth ${desc.depth}`);
      // Per-key splits leave random loads near 70% (half-full pages filling up); ascending keys
      // fill every page but the last.
      assert.ok(fill >= (order === 'ascending' ? 0.95 : 0.85), `${order}: leaf fill ${fill}`);
    }
  });

  it('keeps 1,100-byte values inline, three to a page: 10,000 in random order take at most 1.45x their raw size', () => {
    const s = new MemPages();
    const model = new Map<string, Buffer>();
    const rand = rng(3);
    let desc = EMPTY_TREE;
    for (let c = 0; c < 10; c++) desc = mergeAndCheck(s, desc, Array.from({ length: 1000 }, () => [k16(Math.floor(rand() * 1e9)), Buffer.alloc(1100, 9)] as [string, Buffer]), model);
    const ratio = (s.pages.size * PAGE_SIZE) / (model.size * (16 + 1100));
    // Three to a page at best (1.22x); a full page that takes one more splits into two of two.
    // (A 1 KB overflow threshold would take a page each: 3.7x.)
    console.log(`      ${model.size} x 1,100 B in random order: ${s.pages.size} pages, ${ratio.toFixed(3)}x raw`);
    assert.ok(ratio <= 1.45, `space ratio ${ratio}`);
    assert.ok([...s.pages.values()].every((p) => pageKind(p) !== PageKind.Overflow));
  });

  it('stores values of every size across the overflow threshold, and frees replaced ones', () => {
    const s = new MemPages();
    const model = new Map<string, Buffer>();
    const sizes = [0, 1, 100, MAX_INLINE_LEAF_CELL - 20, MAX_INLINE_LEAF_CELL, 4084, 4085, 100_000, 1 << 20];
    const values = sizes.map((n, i) => Buffer.alloc(n, i + 1));
    let desc = mergeAndCheck(s, EMPTY_TREE, values.map((v, i) => [`v${i}`, v] as [string, Buffer]), model);
    for (const [i, v] of values.entries()) assert.ok(get(read(s), desc, Buffer.from(`v${i}`))?.equals(v), `size ${sizes[i]}`);
    const overflowPages = (): number => [...s.pages.values()].filter((p) => pageKind(p) === PageKind.Overflow).length;
    const expected = (): number => [...model].reduce((n, [k, v]) => n + (LEAF_CELL_HEADER + k.length + v.length > MAX_INLINE_LEAF_CELL ? overflowPagesFor(v.length) : 0), 0);
    assert.equal(overflowPages(), expected());
    assert.ok(expected() > overflowPagesFor(1 << 20), 'the 1 MiB value is on overflow pages');
    desc = mergeAndCheck(s, desc, [['v7', Buffer.from('small now')], ['v8', null]], model);
    assert.equal(overflowPages(), expected(), 'the overflow pages of replaced and deleted values are freed');
  });

  it('a root left with one child gives way to it, level by level', () => {
    const s = new MemPages();
    const model = new Map<string, Buffer>();
    let desc = mergeAndCheck(s, EMPTY_TREE, Array.from({ length: 50000 }, (_, i) => [k16(i), Buffer.alloc(60, 1)] as [string, Buffer]), model);
    assert.ok(desc.depth >= 3);
    desc = mergeAndCheck(s, desc, Array.from({ length: 49990 }, (_, i) => [k16(i + 10), null] as [string, null]), model);
    assert.equal(desc.depth, 1, 'ten keys fit one leaf');
  });
});

/** What cell i of `page` costs in a node: its bytes and its slot. */
function cellCostAt(page: Buffer, i: number): number {
  return cellBytes(page, i, isLeaf(page)).length + 2;
}

describe('btree: building a tree from ascending entries (backups)', () => {
  const build = (entries: [Buffer, Buffer][]): { s: MemPages; desc: TreeDesc } => {
    const s = new MemPages();
    const b = new TreeBuilder(s);
    for (const [k, v] of entries) b.add(k, v);
    const desc = b.finish();
    s.endMerge();
    return { s, desc };
  };

  it('holds exactly its entries, in full pages at one depth, for sizes from none to a depth-4 tree, long keys and overflow values included', () => {
    const r = rng(7);
    for (const [n, keyLen, bigEvery] of [[0, 16, 0], [1, 16, 0], [31, 16, 0], [33, 16, 0], [5000, 16, 97], [60_000, 16, 0], [3000, 1000, 0], [20_000, 300, 13]] as const) {
      const keys = new Set<string>();
      while (keys.size < n) keys.add(Buffer.from(Array.from({ length: keyLen }, () => 97 + Math.floor(r() * 26))).toString('latin1'));
      const entries = [...keys].map((k) => Buffer.from(k, 'latin1')).sort(Buffer.compare).map((k, i) => [k, Buffer.alloc(bigEvery > 0 && i % bigEvery === 0 ? 5000 + i : 100, i & 255)] as [Buffer, Buffer]);
      const { s, desc } = build(entries);
      assert.equal(desc.entries, n);
      if (n === 0) {
        assert.deepEqual(desc, EMPTY_TREE);
        continue;
      }
      const got = [...iterate(read(s), desc, {})];
      assert.equal(got.length, n);
      for (let i = 0; i < n; i++) {
        assert.ok((got[i] as [Buffer, Buffer])[0].equals((entries[i] as [Buffer, Buffer])[0]));
        assert.ok((got[i] as [Buffer, Buffer])[1].equals((entries[i] as [Buffer, Buffer])[1]));
      }
      const { pages } = shape(s, desc);
      assert.equal(pages.size, s.pages.size, 'every page written is reached once');
      // Every leaf but the last two is as full as its cells allow: the next leaf's first cell
      // would not have fitted it. The last two share their cells (neither under half, or one leaf).
      const leafPages: Buffer[] = [];
      const walk = (no: number, level: number): void => {
        const p = s.read(pageNo(no));
        if (level === desc.depth) leafPages.push(p);
        else for (let i = 0; i < count(p); i++) walk(childAt(p, i), level + 1);
      };
      walk(desc.root, 1);
      for (let i = 0; i + 2 < leafPages.length; i++) {
        const next = leafPages[i + 1] as Buffer;
        const cost = cellCostAt(next, 0);
        assert.ok(usedBytes(leafPages[i] as Buffer) + cost > NODE_CAPACITY, `${n} entries of ${keyLen}-byte keys: leaf ${i} had room for the next cell`);
      }
      if (leafPages.length >= 2) {
        const [a, b] = leafPages.slice(-2) as [Buffer, Buffer];
        let widest = 0;
        for (const p of [a, b]) for (let i = 0; i < count(p); i++) widest = Math.max(widest, cellCostAt(p, i));
        assert.ok(usedBytes(b) >= NODE_CAPACITY / 2 || Math.abs(usedBytes(a) - usedBytes(b)) <= widest, 'the last leaf is half full, or shares its cells evenly with the one before');
      }
      if (n === 60_000) assert.ok(desc.depth >= 3);
    }
  });

  it('refuses keys out of order and a second finish', () => {
    const b = new TreeBuilder(new MemPages());
    b.add(Buffer.from('b'), Buffer.from('1'));
    assert.throws(() => b.add(Buffer.from('a'), Buffer.from('2')), /ascending/);
    assert.throws(() => b.add(Buffer.from('b'), Buffer.from('2')), /ascending/);
    b.finish();
    assert.throws(() => b.finish(), /already finished/);
  });
});
