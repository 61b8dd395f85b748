// A compact copy of one snapshot's trees: a new data file in which every tree is written in key
// order into fresh, full pages (btree/build.ts), with no free page and no journal to replay. It is
// what a compacting backup writes; opening it is restoring it.
//
// The file, in the order it is written:
//   page 0          the file header
//   pages 3 ..      each tree as it is built (the default tree, then the named ones in the order
//                   given), overflow runs just before their leaves, each branch after its children;
//                   then the catalog; then the free-space bitmap chain, every bit clear
//   (sync)
//   pages 1 and 2   the metas of checkpoints 0 and 1, both of the same state: the snapshot's seq,
//                   every page in use (so the metas are settled, and nothing is pending)
//   (sync)
// A copy cut short before the metas has no valid meta and is refused as a database; the caller
// writes it under a temporary name and renames it into place only once it is whole and checked.
import type { DirectoryBackend, FileBackend } from '../pager/backend.js';
import { DATA_FILE } from '../pager/data-file.js';
import { bitmapPagesFor, initBitmapPage, setBitmapNext } from '../pager/freelist.js';
import { checkpointId, pageNo, seq as toSeq, type PageNo } from '../pager/ids.js';
import { encodeFileHeader, encodeMeta, type DbState } from '../pager/meta-format.js';
import { FIRST_DATA_PAGE, PAGE_SIZE, pageOffsetBytes, sealPage } from '../pager/page-format.js';
import { TreeBuilder, type BuildSink } from '../btree/build.js';
import { encodeDesc, encodeRoots } from '../btree/roots-format.js';
import { EMPTY_TREE, type TreeDesc } from '../btree/tree.js';

/** Pages gathered before one vectored write: 1 MiB, sequential. */
const WRITE_BATCH_PAGES = 256;

export class CompactCopyWriter implements BuildSink {
  readonly #file: FileBackend;
  #next = FIRST_DATA_PAGE;
  /** Finished pages not yet written: consecutive, from #pendingFirst. */
  #pending: Buffer[] = [];
  #pendingFirst = FIRST_DATA_PAGE;
  #builder: TreeBuilder | undefined;
  #treeName: string | undefined;
  #main: TreeDesc = EMPTY_TREE;
  readonly #named: [Buffer, TreeDesc][] = [];
  #finished = false;
  #closed = false;

  constructor(dir: DirectoryBackend) {
    this.#file = dir.open(DATA_FILE, { create: true });
    try {
      this.#file.setLength(0);
      this.#file.write(0, encodeFileHeader());
    } catch (err) {
      this.#file.close();
      throw err;
    }
  }

  /** Pages written or waiting to be. */
  get pages(): number {
    return this.#next;
  }

  /** Starts the next tree: undefined for the default tree (first), then named trees in byte order of their names. */
  startTree(name: string | undefined): void {
    if (this.#builder !== undefined) throw new Error('birchdb assertion failed: a tree is being built');
    this.#builder = new TreeBuilder(this);
    this.#treeName = name;
  }

  /** Adds an entry to the current tree; keys strictly ascending. */
  add(key: Buffer, value: Buffer): void {
    (this.#builder as TreeBuilder).add(key, value);
  }

  endTree(): TreeDesc {
    const builder = this.#builder;
    if (builder === undefined) throw new Error('birchdb assertion failed: no tree is being built');
    const desc = builder.finish();
    this.#builder = undefined;
    if (this.#treeName === undefined) this.#main = desc;
    else this.#named.push([Buffer.from(this.#treeName, 'utf8'), desc]);
    return desc;
  }

  /** Writes the catalog, the bitmap and the metas (seq: the snapshot's), syncing before and after the metas. */
  finish(seq: number): DbState {
    if (this.#finished || this.#builder !== undefined) throw new Error('birchdb assertion failed: finish() out of order');
    this.#finished = true;
    const names = [...this.#named].sort((a, b) => Buffer.compare(a[0], b[0]));
    const catalog = new TreeBuilder(this);
    for (const [name, desc] of names) catalog.add(name, encodeDesc(desc));
    const catalogDesc = catalog.finish();
    // The chain covers every page, its own included: as many pages as the file with them needs.
    let chainPages = 1;
    while (bitmapPagesFor(this.#next + chainPages) !== chainPages) chainPages = bitmapPagesFor(this.#next + chainPages);
    const first = this.allocate(chainPages);
    for (let k = 0; k < chainPages; k++) {
      const buf = this.newPage();
      initBitmapPage(buf, pageNo(first + k), k);
      setBitmapNext(buf, k + 1 < chainPages ? pageNo(first + k + 1) : 0);
      this.emit(pageNo(first + k), buf);
    }
    this.#flush();
    this.#file.sync();
    const roots = encodeRoots({ main: this.#main, catalog: catalogDesc });
    let state: DbState | undefined;
    for (const id of [0, 1]) {
      state = { checkpointId: checkpointId(id), seq: toSeq(seq), pageCount: this.#next, freeRoot: first, roots };
      this.#file.write(pageOffsetBytes(1 + id), encodeMeta(state));
    }
    this.#file.sync();
    this.#close();
    return state as DbState;
  }

  /** Closes the file, finished or not (unfinished, what was written has no meta: not a database). */
  abort(): void {
    this.#finished = true;
    this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }

  // ---- BuildSink: consecutive page numbers, pages written in order ----

  allocate(n: number): PageNo {
    const first = this.#next;
    if (first + n > 0xffff_ffff) throw new RangeError('the copy reached the data file\'s 2^32-page limit');
    this.#next += n;
    return pageNo(first);
  }

  emit(no: PageNo, page: Buffer): void {
    // The builders allocate each page just before they emit it, so pages arrive in order.
    if (no !== this.#pendingFirst + this.#pending.length) throw new Error(`birchdb assertion failed: page ${no} emitted out of order`);
    sealPage(page);
    this.#pending.push(page);
    if (this.#pending.length >= WRITE_BATCH_PAGES) this.#flush();
  }

  newPage(): Buffer {
    return Buffer.allocUnsafeSlow(PAGE_SIZE);
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    this.#file.writev(pageOffsetBytes(this.#pendingFirst), this.#pending);
    this.#pendingFirst += this.#pending.length;
    this.#pending = [];
  }
}
