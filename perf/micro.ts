// Micro-benchmarks of the hot paths, with the `benchmark` package. Reported, never asserted.
import Benchmark from 'benchmark';
import { checksum } from '../pager/checksum.js';
import { PAGE_SIZE, PageKind, initPage, sealPage } from '../pager/page-format.js';
import { pageNo } from '../pager/ids.js';
import { compress } from '../journal/codec.js';
import { buildNode, cellAt, cellCost, compareAt, keyAt, keyStart, makeLeafCell, searchLeaf } from '../btree/node.js';
import { NODE_CAPACITY } from '../btree/node-format.js';
import { Generation } from '../db/buffer.js';

function fullLeaf(keyBytes: number): { page: Buffer; keys: Buffer[]; cells: Buffer[] } {
  const page = Buffer.alloc(PAGE_SIZE);
  initPage(page, pageNo(3), PageKind.Leaf);
  const keys: Buffer[] = [];
  const cells: Buffer[] = [];
  let used = 0;
  for (let i = 0; ; i++) {
    const k = Buffer.from(String(i).padStart(keyBytes, '0'));
    const c = makeLeafCell(k, Buffer.alloc(16), 16, 0);
    if (used + cellCost(c) > NODE_CAPACITY) break;
    used += cellCost(c);
    keys.push(k);
    cells.push(c);
  }
  buildNode(page, cells);
  return { page, keys, cells };
}

export function microBenches(): Promise<string[]> {
  const suite = new Benchmark.Suite('birchdb hot paths');
  const page = Buffer.alloc(PAGE_SIZE, 7);
  for (const len of [8, 16, 64, 256]) {
    // The key in a page, compared as search does it: against slot 0 of a leaf.
    const { page: one } = fullLeaf(len);
    const probe = Buffer.from(keyAt(one, 0, true));
    probe[len - 1] = (probe[len - 1] as number) + 1;
    suite.add(`key compare in a page, ${len} B keys (compareAt)`, () => compareAt(one, 0, probe, true));
    const start = keyStart(cellAt(one, 0), true);
    suite.add(`key compare in a page, ${len} B keys (Buffer#compare)`, () => probe.compare(one, start, start + len));
  }
  for (const len of [16, 64]) {
    const { page: leaf, keys } = fullLeaf(len);
    let i = 0;
    suite.add(`search in a full leaf (${keys.length} keys of ${len} B)`, () => searchLeaf(leaf, keys[(i = (i + 7) % keys.length)] as Buffer));
  }
  const { cells } = fullLeaf(16);
  const work = Buffer.alloc(PAGE_SIZE);
  initPage(work, pageNo(3), PageKind.Leaf);
  suite.add(`leaf build (${cells.length} cells of 16 B keys, buildNode)`, () => buildNode(work, cells));
  // The write buffer: one put of a random 16-byte key into a generation of 100,000 entries.
  const gen = new Generation();
  const rnd = (): Buffer => {
    const b = Buffer.alloc(16);
    for (let j = 0; j < 16; j++) b[j] = Math.floor(Math.random() * 256);
    return b;
  };
  // An operation's bytes as a batch holds them: the 16-byte key, then a 100-byte value.
  const value = Buffer.alloc(100);
  const withKey = (k: Buffer): Buffer => Buffer.concat([k, value]);
  for (let n = 0; n < 100_000; n++) gen.write('', withKey(rnd()), 0, 16, 100, n + 1, n + 1);
  let seq = 200_000;
  const keys = Array.from({ length: 10_000 }, rnd);
  let ki = 0;
  suite.add('write buffer put (16 B key, 100,000 entries)', () => {
    seq++;
    gen.write('', withKey(keys[(ki = (ki + 1) % keys.length)] as Buffer), 0, 16, 100, seq, seq);
  });
  suite.add('write buffer get (16 B key, 100,000 entries)', () => { const k = keys[(ki = (ki + 1) % keys.length)] as Buffer; return gen.trees.get('')?.find(k, 0, k.length); });
  suite.add('write buffer key index, brought up to date after one put', () => {
    seq++;
    gen.write('', withKey(rnd()), 0, 16, -1, seq, seq);
    gen.trees.get('')?.index();
  });
  suite.add('page copy (4 KiB)', () => Buffer.from(page));
  suite.add('page checksum (xxh32 of 4 KiB)', () => checksum(page, 4, PAGE_SIZE));
  const sealed = Buffer.alloc(PAGE_SIZE);
  initPage(sealed, pageNo(3), PageKind.Leaf);
  suite.add('page seal (checksum + store)', () => sealPage(sealed));
  const { page: leafPage } = fullLeaf(16);
  const pages = Buffer.concat(Array.from({ length: 100 }, () => leafPage));
  suite.add('LZ4 of 400 KiB (100 leaf pages)', () => compress(pages));
  return new Promise((resolve) => {
    const lines: string[] = [];
    suite.on('cycle', (e: Benchmark.Event) => lines.push(`  ${String(e.target)}`));
    suite.on('complete', () => resolve(lines));
    suite.run({ async: true });
  });
}
