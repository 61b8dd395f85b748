// A byte-bounded cache of clean, verified page images, evicting by CLOCK (second chance): a hit
// only marks the page referenced, where an exact LRU reorders on every hit (a Map delete and
// insert, which cost more than the rest of a cached page read). Images handed out are shared and
// must never be modified: a page number is reused only after the free list released it, and the
// cache drops the image before that (dropPages).
import { PAGE_SIZE } from './page-format.js';

interface Entry {
  buf: Buffer;
  /** Used since the clock hand last passed: spared once. */
  referenced: boolean;
  slot: number;
}

export class PageCache {
  readonly #map = new Map<number, Entry>();
  /** The page number in each slot (-1: empty), swept by the clock hand. */
  readonly #slots: number[] = [];
  /** Slots emptied by delete(), filled before the clock hand takes a page out. */
  readonly #freeSlots: number[] = [];
  readonly #capacityPages: number;
  #hand = 0;
  hits = 0;
  misses = 0;

  constructor(capacityBytes: number) {
    this.#capacityPages = Math.max(16, Math.floor(capacityBytes / PAGE_SIZE));
  }

  get(no: number): Buffer | undefined {
    const e = this.#map.get(no);
    if (e === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    e.referenced = true;
    return e.buf;
  }

  has(no: number): boolean {
    return this.#map.has(no);
  }

  set(no: number, buf: Buffer): void {
    const old = this.#map.get(no);
    if (old !== undefined) {
      old.buf = buf;
      old.referenced = true;
      return;
    }
    let slot: number | undefined = this.#freeSlots.pop();
    if (slot !== undefined) {
      this.#slots[slot] = no;
    } else if (this.#slots.length < this.#capacityPages) {
      slot = this.#slots.length;
      this.#slots.push(no);
    } else {
      slot = this.#victim();
      this.#slots[slot] = no;
    }
    this.#map.set(no, { buf, referenced: false, slot });
  }

  /** The slot of the first unreferenced page the hand meets (clearing marks on the way), emptied. */
  #victim(): number {
    for (;;) {
      const slot = this.#hand;
      this.#hand = (this.#hand + 1) % this.#slots.length;
      const no = this.#slots[slot] as number;
      if (no < 0) return slot;
      const e = this.#map.get(no) as Entry;
      if (e.referenced) e.referenced = false;
      else {
        this.#map.delete(no);
        return slot;
      }
    }
  }

  delete(no: number): void {
    const e = this.#map.get(no);
    if (e === undefined) return;
    this.#map.delete(no);
    this.#slots[e.slot] = -1;
    this.#freeSlots.push(e.slot);
  }

  clear(): void {
    this.#map.clear();
    this.#slots.length = 0;
    this.#freeSlots.length = 0;
    this.#hand = 0;
  }

  get sizeBytes(): number {
    return this.#map.size * PAGE_SIZE;
  }
}
