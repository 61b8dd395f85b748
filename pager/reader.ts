// A read-only view of the data file for a thread that does not own the pager: the main thread,
// while the writer thread owns every write. It keeps
//  - `recent`: page images of commits the writer reported, until the writer reports them flushed
//    to the data file (each tagged with the txn that wrote it);
//  - a byte-bounded cache of clean images;
//  - a read-only handle on the data file, verified against checksums on every read.
// Safety rests on the writer's free list: it reuses a page only after this view's published
// floor (pages.ts: snapshotFloor) has passed the txn that freed it, so a page this view may read
// is never rewritten under it.
import { NodeDirectory, type FileBackend } from './backend.js';
import { BirchError } from './errors.js';
import { PageCache } from './cache.js';
import type { PageNo } from './ids.js';
import type { DbState } from './meta-format.js';
import { verifyPage } from './page-format.js';
import { DATA_FILE, readVerifiedPage } from './pager.js';

export class ReadView {
  state: DbState;
  readonly cache: PageCache;
  readonly #recent = new Map<number, { buf: Buffer; txn: number }>();
  readonly #file: FileBackend;
  #closed = false;

  constructor(dir: string, cacheBytes: number, state: DbState) {
    this.#file = new NodeDirectory(dir).open(DATA_FILE, { create: false, readOnly: true });
    this.cache = new PageCache(cacheBytes);
    this.state = state;
  }

  readPage(no: PageNo): Buffer {
    const r = this.#recent.get(no);
    if (r !== undefined) return r.buf;
    const c = this.cache.get(no);
    if (c !== undefined) return c;
    const buf = this.readFromDisk(no);
    this.cache.set(no, buf);
    return buf;
  }

  /** For the verifier: memory images checked in place, everything else read afresh from disk. */
  readVerified(no: PageNo): Buffer {
    const r = this.#recent.get(no);
    if (r === undefined) return this.readFromDisk(no);
    verifyPage(r.buf, no);
    return r.buf;
  }

  readFromDisk(no: PageNo): Buffer {
    if (this.#closed) throw new BirchError('DB_CLOSED', 'the database is closed');
    return readVerifiedPage(this.#file, no);
  }

  /**
   * The pages of commit `txn` (a reported commit), staged before the commit is published by
   * setting `state`. Safe while readers run: a page number the writer reuses was freed by a txn
   * at or below the published floor, so no snapshot this view can serve still reaches its old image.
   */
  stage(txn: number, pages: Iterable<[number, Buffer]>): void {
    for (const [no, buf] of pages) {
      this.#recent.set(no, { buf, txn });
      this.cache.delete(no);
    }
  }

  /**
   * The writer flushed every txn up to `txn`: the data file now serves those pages. They are
   * dropped, not moved to the cache: each is a view into its whole commit's transferred buffer,
   * and caching one would keep that buffer (hundreds of KiB) alive for one 4 KiB page (measured:
   * 627 MiB peak RSS on the versions workload). A later read loads the page on its own.
   */
  flushed(txn: number): void {
    for (const [no, r] of this.#recent) {
      if (r.txn <= txn) this.#recent.delete(no);
    }
  }

  get recentPages(): number {
    return this.#recent.size;
  }

  close(): void {
    if (!this.#closed) this.#file.close();
    this.#closed = true;
    this.#recent.clear();
    this.cache.clear();
  }
}
