// Reader pins: the snapshots of the main thread, and what they hold back.
//
// A snapshot pins three things: the batch it reads at (buffer versions it can still see are not
// pruned: `pruneFloor`), the checkpoint whose trees it reads (the checkpointer reuses no page such
// a tree reaches: the floor published in shared memory, db/reader-slots.ts), and the buffer
// generations its view reads (kept in memory while it lives, even once a checkpoint took them:
// reported, and charged to memoryLimit, as `held`).
import type { Generation } from '../db/buffer.js';
import type { ReaderSlots } from '../db/reader-slots.js';
import type { Pin } from './reads.js';

export class ReaderPins {
  readonly #pins = new Set<Pin>();
  readonly #slots: ReaderSlots;
  /** The oldest seq a reader reads at: buffer versions older than the newest at or below it go. */
  #pruneFloor: number;
  /** What pins hold (held()), kept until the pins or the live generations change. */
  #heldBytes: number | undefined;

  constructor(slots: ReaderSlots, visible: number) {
    this.#slots = slots;
    this.#pruneFloor = visible;
  }

  get pruneFloor(): number {
    return this.#pruneFloor;
  }

  get size(): number {
    return this.#pins.size;
  }

  /** The pin of the longest-held snapshot, if any. */
  oldest(): Pin | undefined {
    let oldest: Pin | undefined;
    for (const p of this.#pins) if (oldest === undefined || p.seq < oldest.seq) oldest = p;
    return oldest;
  }

  /** The buffer generations pins read (a generation may be listed more than once). */
  pinnedGenerations(): Generation[] {
    const gens: Generation[] = [];
    for (const p of this.#pins) for (const g of p.gens ?? []) gens.push(g);
    return gens;
  }

  add(pin: Pin, visible: number, checkpointId: number): void {
    this.#pins.add(pin);
    this.changed(visible, checkpointId);
  }

  delete(pin: Pin, visible: number, checkpointId: number): void {
    if (this.#pins.delete(pin)) this.changed(visible, checkpointId);
  }

  clear(): void {
    this.#pins.clear();
    this.#heldBytes = undefined;
  }

  /** The pins, or the last acknowledged batch (`visible`), moved: recompute both floors. */
  changed(visible: number, checkpointId: number): void {
    this.#heldBytes = undefined;
    this.#pruneFloor = visible;
    for (const p of this.#pins) this.#pruneFloor = Math.min(this.#pruneFloor, p.seq);
    this.publishFloor(checkpointId);
  }

  /** The live chain of generations changed: what pins alone hold is counted again when asked. */
  generationsChanged(): void {
    this.#heldBytes = undefined;
  }

  /**
   * Publishes the oldest checkpoint this thread's readers may still read (`checkpointId`, the
   * published one, or an older one a pin reads).
   */
  publishFloor(checkpointId: number): void {
    let floor = checkpointId;
    for (const p of this.#pins) floor = Math.min(floor, p.checkpointId);
    this.#slots.setOwnerFloor(floor);
  }

  /** The bytes of generations only pins keep (not in `live`), cached until something changes. */
  heldBytes(live: readonly Generation[]): number {
    this.#heldBytes ??= this.#pins.size === 0 ? 0 : this.held(live).heldBytes;
    return this.#heldBytes;
  }

  /** Generations only pins keep (not in the live chain `live`), and their bytes. */
  held(live: readonly Generation[]): { heldGenerations: number; heldBytes: number } {
    const held = new Set<Generation>();
    for (const p of this.#pins) for (const g of p.gens ?? []) if (!live.includes(g)) held.add(g);
    let heldBytes = 0;
    for (const g of held) heldBytes += g.bytes;
    return { heldGenerations: held.size, heldBytes };
  }
}
