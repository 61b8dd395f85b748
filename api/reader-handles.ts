// The owner's side of reader threads (api/reader.ts): handles that let a worker thread of this
// process read the database, and the cleanup when such a thread ends.
//
// A handle carries shared memory (the page cache, the reader slots) and one end of a
// MessageChannel. Nothing is ever sent on the channel: it exists for its 'close' event, which fires
// here when the reader closes or its thread ends in any way (returned, threw, terminated). That is
// how a reader killed with its thread stops holding pages back: its reader slot and page-cache
// slot are given back, with whatever pin and epoch it left in them.
import { randomInt } from 'node:crypto';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { BirchError } from '../platform/errors.js';
import type { SharedCacheInit, SharedPageCache } from '../pager/shared-cache.js';
import { MAX_READER_THREADS, type ReaderSlots } from '../db/reader-slots.js';

/** Passed to a worker thread (in workerData or a message, with `port` in the transfer list) for openReader(). */
export interface ReaderHandle {
  readonly kind: 'birchdb-reader';
  readonly dir: string;
  readonly cache: SharedCacheInit;
  readonly cacheSlot: number;
  readonly slots: SharedArrayBuffer;
  readonly slot: number;
  /** Opens the slot once (db/reader-slots.ts TOKEN). */
  readonly token: number;
  readonly port: MessagePort;
}

/** How often close() looks again for readers still inside a read (they take microseconds). */
const ACTIVE_POLL_MS = 1;

export class ReaderHandles {
  readonly #dir: string;
  readonly #cache: SharedPageCache;
  readonly #slots: ReaderSlots;
  readonly #ports = new Set<MessagePort>();

  constructor(dir: string, cache: SharedPageCache, slots: ReaderSlots) {
    this.#dir = dir;
    this.#cache = cache;
    this.#slots = slots;
  }

  /** A handle for one reader thread; its slots are taken until that reader closes or its thread ends. */
  handle(): ReaderHandle {
    if (this.#slots.closed) throw new BirchError('DB_CLOSED', `database ${this.#dir} is closing`);
    // Random, so that a handle kept past its reader's end cannot open a slot given to another.
    const token = randomInt(1, 2 ** 31 - 1);
    const slot = this.#slots.reserve(token);
    if (slot < 0) throw new BirchError('UNSUPPORTED', `a database serves at most ${MAX_READER_THREADS} reader threads at once; close one first`);
    let cacheSlot: number;
    try {
      cacheSlot = this.#cache.reserveSlot();
    } catch (err) {
      this.#slots.free(slot);
      throw err;
    }
    const { port1, port2 } = new MessageChannel();
    this.#ports.add(port1);
    port1.on('close', () => {
      this.#ports.delete(port1);
      this.#slots.free(slot);
      this.#cache.releaseSlot(cacheSlot);
    });
    // The channel must not keep this process alive.
    port1.unref();
    return { kind: 'birchdb-reader', dir: this.#dir, cache: this.#cache.init, cacheSlot, slots: this.#slots.sab, slot, token, port: port2 };
  }

  get threads(): number {
    return this.#ports.size;
  }

  /**
   * Closing: every reader refuses reads from now on; resolves once none is inside one, so that the
   * closing checkpoint may move and reuse any page. Then the channels close (the readers see it).
   */
  async close(): Promise<void> {
    this.#slots.close();
    while (this.#slots.anyActive()) await new Promise((r) => setTimeout(r, ACTIVE_POLL_MS));
  }

  /** After close(): the channels go, and with them the slots. */
  disconnect(): void {
    for (const p of this.#ports) p.close();
  }
}
