// What the thread that owns a database shares with reader threads (api/reader.ts) and the
// checkpointer, in one SharedArrayBuffer: the checkpoint readers read, and the oldest checkpoint
// any thread still reads (the floor below which the checkpointer may reuse freed pages).
//
// Layout (Int32Array words, in memory only: never on disk):
//
//   word 0                 OWNER_FLOOR    oldest checkpoint the owner thread's reads and snapshots reach
//   word 1                 CLOSED         1 once the owner starts closing: readers refuse from then on
//   word 2                 STATE_VERSION  a seqlock over the published state: odd while it is written
//   word 3                 PUBLISHED_ID   the published checkpoint's id (what readers compare against)
//   words 4 .. 4+S-1       STATE          the published checkpoint's state, encodeState's bytes
//   then per reader slot r (SLOT_WORDS words from SLOTS + r * SLOT_WORDS):
//     +0 TAKEN   1 while a reader thread holds the slot
//     +1 PIN     the oldest checkpoint the reader's reads and snapshots reach (NO_PIN: none)
//     +2 ACTIVE  1 while the reader is inside a read (closing waits for every ACTIVE to clear)
//     +3 TOKEN   the handle's token until a reader opens it (then 0): a handle opens one reader, once
//
// Pinning without a race (the order matters, every access is sequentially consistent): a reader
// loads PUBLISHED_ID = c, stores PIN = c, then loads PUBLISHED_ID again and starts over if it
// changed. The owner stores a new PUBLISHED_ID before it raises OWNER_FLOOR past the old one, and
// the checkpointer loads OWNER_FLOOR before the PINs. So a checkpointer that saw the raised floor
// also sees the reader's PIN, unless the reader's second load found the new id and it started over.
import type { DbState } from '../pager/meta-format.js';
import { STATE_SIZE, decodeState, encodeState } from '../pager/meta-format.js';

const OWNER_FLOOR = 0;
const CLOSED = 1;
const STATE_VERSION = 2;
const PUBLISHED_ID = 3;
const STATE = 4;
const STATE_WORDS = Math.ceil(STATE_SIZE / 4);
const SLOTS = STATE + STATE_WORDS;
const S_TAKEN = 0;
const S_PIN = 1;
const S_ACTIVE = 2;
const S_TOKEN = 3;
const SLOT_WORDS = 4;
/** Reader threads one database serves at once (each also takes one of the page cache's slots). */
export const MAX_READER_THREADS = 32;
const WORDS = SLOTS + MAX_READER_THREADS * SLOT_WORDS;
/** A slot's PIN when its reader reads nothing (checkpoint ids start at 0). */
const NO_PIN = -1;

export class ReaderSlots {
  readonly sab: SharedArrayBuffer;
  readonly #w: Int32Array;
  readonly #bytes: Uint8Array;

  /** The shared words of a database opened at `state`. */
  static create(state: DbState): ReaderSlots {
    const s = new ReaderSlots(new SharedArrayBuffer(WORDS * 4));
    for (let r = 0; r < MAX_READER_THREADS; r++) Atomics.store(s.#w, SLOTS + r * SLOT_WORDS + S_PIN, NO_PIN);
    s.publish(state);
    s.setOwnerFloor(state.checkpointId);
    return s;
  }

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.#w = new Int32Array(sab);
    this.#bytes = new Uint8Array(sab, STATE * 4, STATE_SIZE);
  }

  // ---- the owner thread ----------------------------------------------------------------------

  /** Makes `state` the checkpoint readers read. Called before the owner floor moves past the last one. */
  publish(state: DbState): void {
    const w = this.#w;
    Atomics.add(w, STATE_VERSION, 1);
    encodeState(state, Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset, STATE_SIZE));
    Atomics.add(w, STATE_VERSION, 1);
    Atomics.store(w, PUBLISHED_ID, state.checkpointId);
  }

  setOwnerFloor(checkpointId: number): void {
    Atomics.store(this.#w, OWNER_FLOOR, checkpointId);
  }

  /** Readers refuse every read from now on; wait for anyActive() to clear before reusing their pages. */
  close(): void {
    Atomics.store(this.#w, CLOSED, 1);
  }

  anyActive(): boolean {
    for (let r = 0; r < MAX_READER_THREADS; r++) if (Atomics.load(this.#w, SLOTS + r * SLOT_WORDS + S_ACTIVE) !== 0) return true;
    return false;
  }

  /** A free slot for a reader thread, to be opened with `token` (not 0), or -1 if every one is taken. */
  reserve(token: number): number {
    for (let r = 0; r < MAX_READER_THREADS; r++) {
      if (Atomics.compareExchange(this.#w, SLOTS + r * SLOT_WORDS + S_TAKEN, 0, 1) === 0) {
        Atomics.store(this.#w, SLOTS + r * SLOT_WORDS + S_TOKEN, token);
        return r;
      }
    }
    return -1;
  }

  /** Opens slot `slot` for the reader holding `token`: false if it was opened before, or given back since. */
  open(slot: number, token: number): boolean {
    return token !== 0 && Atomics.compareExchange(this.#w, SLOTS + slot * SLOT_WORDS + S_TOKEN, token, 0) === token;
  }

  /** Gives a slot back, whatever its reader left in it: the reader closed, or its thread ended. */
  free(slot: number): void {
    const at = SLOTS + slot * SLOT_WORDS;
    Atomics.store(this.#w, at + S_PIN, NO_PIN);
    Atomics.store(this.#w, at + S_ACTIVE, 0);
    Atomics.store(this.#w, at + S_TOKEN, 0);
    Atomics.store(this.#w, at + S_TAKEN, 0);
  }

  /** Reader slots taken, and the oldest checkpoint their readers reach (null: none reads). */
  readers(): { threads: number; oldestCheckpointId: number | null } {
    let threads = 0;
    let oldest: number | null = null;
    for (let r = 0; r < MAX_READER_THREADS; r++) {
      const at = SLOTS + r * SLOT_WORDS;
      if (Atomics.load(this.#w, at + S_TAKEN) === 0) continue;
      threads++;
      const pin = Atomics.load(this.#w, at + S_PIN);
      if (pin !== NO_PIN && (oldest === null || pin < oldest)) oldest = pin;
    }
    return { threads, oldestCheckpointId: oldest };
  }

  // ---- the checkpointer ----------------------------------------------------------------------

  /** The oldest checkpoint any thread reads: pages freed by checkpoints after it stay pending. */
  floor(): number {
    let floor = Atomics.load(this.#w, OWNER_FLOOR);
    for (let r = 0; r < MAX_READER_THREADS; r++) {
      const pin = Atomics.load(this.#w, SLOTS + r * SLOT_WORDS + S_PIN);
      if (pin !== NO_PIN && pin < floor) floor = pin;
    }
    return floor;
  }

  // ---- a reader thread -----------------------------------------------------------------------

  get closed(): boolean {
    return Atomics.load(this.#w, CLOSED) !== 0;
  }

  publishedId(): number {
    return Atomics.load(this.#w, PUBLISHED_ID);
  }

  /** The published state, read whole (retried while the owner writes it). */
  readPublished(): DbState {
    const copy = Buffer.alloc(STATE_SIZE);
    for (;;) {
      const v = Atomics.load(this.#w, STATE_VERSION);
      if ((v & 1) === 0) {
        copy.set(this.#bytes);
        if (Atomics.load(this.#w, STATE_VERSION) === v) return decodeState(copy);
      }
    }
  }

  /** Sets the slot's pin (NO_PIN with `undefined`). */
  setPin(slot: number, checkpointId: number | undefined): void {
    Atomics.store(this.#w, SLOTS + slot * SLOT_WORDS + S_PIN, checkpointId ?? NO_PIN);
  }

  setActive(slot: number, active: boolean): void {
    Atomics.store(this.#w, SLOTS + slot * SLOT_WORDS + S_ACTIVE, active ? 1 : 0);
  }
}
