// A byte-bounded LRU cache of clean, verified page images. Images handed out are shared and must
// never be modified: committed pages are immutable until the free list reuses their number, and
// the pager drops the cached image before that happens.
import { PAGE_SIZE } from './page-format.js';

export class PageCache {
  readonly #map = new Map<number, Buffer>();
  readonly #capacityPages: number;
  hits = 0;
  misses = 0;

  constructor(capacityBytes: number) {
    this.#capacityPages = Math.max(16, Math.floor(capacityBytes / PAGE_SIZE));
  }

  get(no: number): Buffer | undefined {
    const buf = this.#map.get(no);
    if (buf === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Map iteration order is insertion order: re-inserting makes this the most recent entry.
    this.#map.delete(no);
    this.#map.set(no, buf);
    return buf;
  }

  set(no: number, buf: Buffer): void {
    this.#map.delete(no);
    this.#map.set(no, buf);
    while (this.#map.size > this.#capacityPages) {
      const oldest = this.#map.keys().next().value as number;
      this.#map.delete(oldest);
    }
  }

  delete(no: number): void {
    this.#map.delete(no);
  }

  clear(): void {
    this.#map.clear();
  }

  get sizeBytes(): number {
    return this.#map.size * PAGE_SIZE;
  }
}
