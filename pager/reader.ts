// A read-only view of the data file for the thread that serves reads (the main thread), while the
// checkpointer owns every write. It keeps a byte-bounded cache of clean, verified page images.
//
// Safety rests on the checkpointer's free list: a page is reused only after no snapshot this view
// serves can reach it (the floor the main thread publishes), and the checkpointer names every page
// it wrote, which this view drops from its cache (dropPages) before it serves the new trees. So a
// cached image is never stale for any tree this view reads.
import type { DirectoryBackend, FileBackend } from './backend.js';
import { BirchError } from './errors.js';
import { PageCache } from './cache.js';
import type { PageNo } from './ids.js';
import { DATA_FILE, readVerifiedPage } from './data-file.js';

export class PageReader {
  readonly cache: PageCache;
  readonly #file: FileBackend;
  #closed = false;

  constructor(dir: DirectoryBackend, cacheBytes: number) {
    this.#file = dir.open(DATA_FILE, { create: false, readOnly: true });
    this.cache = new PageCache(cacheBytes);
  }

  readPage(no: PageNo): Buffer {
    const c = this.cache.get(no);
    if (c !== undefined) return c;
    const buf = this.readFromDisk(no);
    this.cache.set(no, buf);
    return buf;
  }

  /** For the verifier: read afresh from disk, bypassing the cache. */
  readFromDisk(no: PageNo): Buffer {
    if (this.#closed) throw new BirchError('DB_CLOSED', 'the database is closed');
    return readVerifiedPage(this.#file, no);
  }

  /** Pages a checkpoint wrote: any cached image of those numbers is of an older, freed page. */
  dropPages(pages: Uint32Array): void {
    for (let i = 0; i < pages.length; i++) this.cache.delete(pages[i] as number);
  }

  close(): void {
    if (!this.#closed) this.#file.close();
    this.#closed = true;
    this.cache.clear();
  }
}
