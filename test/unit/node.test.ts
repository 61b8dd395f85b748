import assert from 'node:assert/strict';
import { PAGE_SIZE, PageKind, initPage } from '../../pager/page-format.js';
import { pageNo } from '../../pager/ids.js';
import {
  count, initNode, insertCell, keyAt, leafValue, makeBranchCell, makeLeafCell, removeCell, searchBranch, searchLeaf, usedBytes,
} from '../../engine/node.js';
import { NODE_CAPACITY } from '../../engine/node-format.js';
import { RunSet } from '../../pager/freelist.js';

function leaf(): Buffer {
  const p = Buffer.alloc(PAGE_SIZE);
  initPage(p, pageNo(3), PageKind.Leaf);
  initNode(p);
  return p;
}
const cell = (k: string, v: string): Buffer => makeLeafCell(Buffer.from(k), Buffer.from(v), Buffer.byteLength(v), 0);

describe('engine: node page layout', () => {
  it('keeps slots in key order and finds keys by binary search', () => {
    const p = leaf();
    for (const k of ['m', 'c', 'x', 'a', 'q']) {
      const { index, found } = searchLeaf(p, Buffer.from(k));
      assert.equal(found, false);
      assert.ok(insertCell(p, index, cell(k, `v-${k}`)));
    }
    assert.deepEqual(Array.from({ length: count(p) }, (_, i) => keyAt(p, i, true).toString()), ['a', 'c', 'm', 'q', 'x']);
    assert.deepEqual(searchLeaf(p, Buffer.from('q')), { index: 3, found: true });
    assert.deepEqual(searchLeaf(p, Buffer.from('n')), { index: 3, found: false });
    const v = leafValue(p, 3);
    assert.equal(p.subarray(v.at, v.at + v.valueLen).toString(), 'v-q');
  });

  it('reuses the space of removed cells by compaction, and refuses a cell that does not fit', () => {
    const p = leaf();
    const big = 'x'.repeat(1000);
    let n = 0;
    while (insertCell(p, n, cell(`k${n}`, big))) n++;
    assert.equal(n, 4);
    assert.ok(usedBytes(p) <= NODE_CAPACITY);
    removeCell(p, 1); // leaves a hole in the middle of the cell area
    removeCell(p, 1);
    assert.equal(count(p), 2);
    assert.ok(insertCell(p, 1, cell('k1b', big)), 'the hole is reclaimed');
    assert.ok(insertCell(p, 2, cell('k1c', big)));
    assert.equal(insertCell(p, 0, cell('k0', big)), false);
    assert.deepEqual(Array.from({ length: count(p) }, (_, i) => keyAt(p, i, true).toString()), ['k0', 'k1b', 'k1c', 'k3']);
    for (let i = 0; i < count(p); i++) {
      const v = leafValue(p, i);
      assert.equal(p.subarray(v.at, v.at + v.valueLen).toString(), big);
    }
    while (count(p) > 0) removeCell(p, 0);
    assert.equal(usedBytes(p), 0);
  });

  it('routes keys to branch children: slot 0 takes everything below slot 1', () => {
    const p = Buffer.alloc(PAGE_SIZE);
    initPage(p, pageNo(4), PageKind.Branch);
    initNode(p);
    insertCell(p, 0, makeBranchCell(Buffer.alloc(0), 10));
    insertCell(p, 1, makeBranchCell(Buffer.from('g'), 11));
    insertCell(p, 2, makeBranchCell(Buffer.from('p'), 12));
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
