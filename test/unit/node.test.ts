import assert from 'node:assert/strict';
import { PAGE_SIZE, PageKind, initPage } from '../../pager/page-format.js';
import { pageNo } from '../../pager/ids.js';
import {
  buildNode, cellBytes, count, keyAt, leafValue, makeBranchCell, makeLeafCell, searchBranch, searchLeaf, usedBytes,
} from '../../btree/node.js';
import { NODE_CAPACITY, SLOT_SIZE } from '../../btree/node-format.js';
import { RunSet } from '../../pager/freelist.js';

function leaf(cells: Buffer[]): Buffer {
  const p = Buffer.alloc(PAGE_SIZE);
  initPage(p, pageNo(3), PageKind.Leaf);
  buildNode(p, cells);
  return p;
}
const cell = (k: string, v: string): Buffer => makeLeafCell(Buffer.from(k), Buffer.from(v), Buffer.byteLength(v), 0);

describe('btree: node page layout', () => {
  it('lays cells out in key order and finds keys by binary search', () => {
    const p = leaf(['a', 'c', 'm', 'q', 'x'].map((k) => cell(k, `v-${k}`)));
    for (const k of ['b', 'n', 'zz']) assert.ok(searchLeaf(p, Buffer.from(k)) < 0, `${k} is not found`);
    assert.deepEqual(Array.from({ length: count(p) }, (_, i) => keyAt(p, i, true).toString()), ['a', 'c', 'm', 'q', 'x']);
    assert.equal(searchLeaf(p, Buffer.from('q')), 3, 'found at slot 3');
    assert.equal(searchLeaf(p, Buffer.from('n')), ~3, 'not found; slot 3 is the first greater key');
    const v = leafValue(p, 3);
    assert.equal(p.subarray(v.at, v.at + v.valueLen).toString(), 'v-q');
  });

  it('holds cells up to its capacity, counts what they use, and round-trips each cell whole', () => {
    const big = 'x'.repeat(1000);
    const cells = [0, 1, 2, 3].map((n) => cell(`k${n}`, big));
    const p = leaf(cells);
    assert.equal(usedBytes(p), cells.reduce((n, c) => n + c.length + SLOT_SIZE, 0));
    assert.ok(usedBytes(p) <= NODE_CAPACITY);
    for (let i = 0; i < 4; i++) {
      assert.ok(cellBytes(p, i, true).equals(cells[i] as Buffer));
      const v = leafValue(p, i);
      assert.equal(p.subarray(v.at, v.at + v.valueLen).toString(), big);
    }
    assert.throws(() => leaf([...cells, cell('k4', big)]), /overflow the node/);
    assert.equal(usedBytes(leaf([])), 0);
  });

  it('routes keys to branch children: slot 0 takes everything below slot 1', () => {
    const p = Buffer.alloc(PAGE_SIZE);
    initPage(p, pageNo(4), PageKind.Branch);
    buildNode(p, [makeBranchCell(Buffer.alloc(0), 10), makeBranchCell(Buffer.from('g'), 11), makeBranchCell(Buffer.from('p'), 12)]);
    assert.equal(searchBranch(p, Buffer.from('a')), 0);
    assert.equal(searchBranch(p, Buffer.from('g')), 1);
    assert.equal(searchBranch(p, Buffer.from('o')), 1);
    assert.equal(searchBranch(p, Buffer.from('p')), 2);
    assert.equal(searchBranch(p, Buffer.from('zzz')), 2);
  });
});

describe('pager: RunSet.addRun', () => {
  it('merges whole runs with both neighbours and refuses overlaps', () => {
    const r = new RunSet();
    r.addRun(10, 5);
    r.addRun(20, 5);
    r.addRun(15, 5);
    assert.deepEqual([...r.runs()], [[10, 15]]);
    assert.throws(() => r.addRun(24, 2), /twice/);
    assert.throws(() => r.addRun(5, 6), /twice/);
    r.addRun(5, 5);
    r.addRun(1000000, 3000000);
    assert.deepEqual([...r.runs()], [[5, 20], [1000000, 3000000]]);
    assert.equal(r.pages, 3000020);
  });
});
