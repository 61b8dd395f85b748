// Micro-benchmarks of the hot paths, with the `benchmark` package. Reported, never asserted.
import Benchmark from 'benchmark';
import { checksum } from '../pager/checksum.js';
import { PAGE_SIZE, PageKind, initPage, sealPage } from '../pager/page-format.js';
import { pageNo } from '../pager/ids.js';
import { compress } from '../journal/codec.js';
import { cellOffset, compareAt, initNode, insertCell, keyAt, keyStart, makeLeafCell, searchLeaf } from '../engine/node.js';

function fullLeaf(keyBytes: number): { page: Buffer; keys: Buffer[] } {
  const page = Buffer.alloc(PAGE_SIZE);
  initPage(page, pageNo(3), PageKind.Leaf);
  initNode(page);
  const keys: Buffer[] = [];
  for (let i = 0; ; i++) {
    const k = Buffer.from(String(i).padStart(keyBytes, '0'));
    if (!insertCell(page, i, makeLeafCell(k, Buffer.alloc(16), 16, 0))) break;
    keys.push(k);
  }
  return { page, keys };
}

export function microBenches(): Promise<string[]> {
  const suite = new Benchmark.Suite('birchdb hot paths');
  const page = Buffer.alloc(PAGE_SIZE, 7);
  for (const len of [8, 16, 64, 256]) {
    // The key in a page, compared as search does it: against slot 0 of a one-cell leaf.
    const { page: one } = fullLeaf(len);
    const probe = Buffer.from(keyAt(one, 0, true));
    probe[len - 1] = (probe[len - 1] as number) + 1;
    suite.add(`key compare in a page, ${len} B keys (compareAt)`, () => compareAt(one, 0, probe, true));
    const start = keyStart(cellOffset(one, 0), true);
    suite.add(`key compare in a page, ${len} B keys (Buffer#compare)`, () => probe.compare(one, start, start + len));
  }
  for (const len of [16, 64]) {
    const { page: leaf, keys } = fullLeaf(len);
    let i = 0;
    suite.add(`search in a full leaf (${keys.length} keys of ${len} B)`, () => searchLeaf(leaf, keys[(i = (i + 7) % keys.length)] as Buffer));
  }
  const cell = makeLeafCell(Buffer.from('0000000000000500'), Buffer.alloc(100), 100, 0);
  const emptyLeaf = Buffer.alloc(PAGE_SIZE);
  initPage(emptyLeaf, pageNo(3), PageKind.Leaf);
  initNode(emptyLeaf);
  const work = Buffer.alloc(PAGE_SIZE);
  suite.add('leaf insert (copy an empty leaf, insert one 123 B cell)', () => {
    emptyLeaf.copy(work);
    insertCell(work, 0, cell);
  });
  suite.add('page copy (4 KiB)', () => Buffer.from(page));
  suite.add('page checksum (xxh32 of 4 KiB)', () => checksum(page, 4, PAGE_SIZE));
  const sealed = Buffer.alloc(PAGE_SIZE);
  initPage(sealed, pageNo(3), PageKind.Leaf);
  suite.add('page seal (checksum + store)', () => sealPage(sealed));
  const { page: leafPage } = fullLeaf(16);
  const txnPages = Buffer.concat(Array.from({ length: 100 }, () => leafPage));
  suite.add('LZ4 of a transaction (100 leaf pages)', () => compress(txnPages));
  return new Promise((resolve) => {
    const lines: string[] = [];
    suite.on('cycle', (e: Benchmark.Event) => lines.push(`  ${String(e.target)}`));
    suite.on('complete', () => resolve(lines));
    suite.run({ async: true });
  });
}
