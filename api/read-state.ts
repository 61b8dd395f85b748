// What reads on the main thread see: the trees of the published checkpoint, the write buffer's
// generations over them, and the last acknowledged batch; and, for the other threads, the
// published checkpoint and the oldest one this thread still reads (in shared memory).
//
// Invariants: gens[0] is the active generation (admission applies to it); gens[1], while a
// checkpoint runs, is the frozen one it merges; `live` is always the view at `visible` over the
// current gens and base, so a get() builds nothing. visible <= admitted.
import { Generation } from '../db/buffer.js';
import type { DbState } from '../pager/meta-format.js';
import type { PageReader } from '../pager/reader.js';
import type { ReaderSlots } from '../db/reader-slots.js';
import { Checkpointed, View } from '../db/view.js';
import { ReaderPins } from './reader-pins.js';
import type { Pin } from './reads.js';

export class ReadState {
  /** The published checkpoint's trees. */
  base: Checkpointed;
  /** Buffer generations, newest first: the active one, and the frozen one while a checkpoint runs. */
  gens: Generation[];
  /** The last acknowledged batch, and the last admitted one. */
  visible: number;
  admitted: number;
  /** The view at `visible`: what get() reads. */
  live: View;
  readonly pins: ReaderPins;
  readonly #reader: PageReader;
  readonly #slots: ReaderSlots;

  constructor(state: DbState, lastSeq: number, gen: Generation, reader: PageReader, slots: ReaderSlots) {
    this.#reader = reader;
    this.#slots = slots;
    this.base = new Checkpointed(state, reader);
    this.gens = [gen];
    this.visible = lastSeq;
    this.admitted = lastSeq;
    this.live = new View(lastSeq, this.gens, this.base);
    this.pins = new ReaderPins(slots, lastSeq);
    this.pins.publishFloor(this.checkpointId);
  }

  get active(): Generation {
    return this.gens[0] as Generation;
  }

  get frozen(): Generation | undefined {
    return this.gens[1];
  }

  get checkpointId(): number {
    return this.base.state.checkpointId;
  }

  /** A view at the last admitted batch: what admission decides a batch's conditions against. */
  latest(): View {
    return new View(this.admitted, this.gens, this.base);
  }

  /** Every batch up to `seq` is durable: reads see it from now on. */
  acknowledge(seq: number): void {
    this.visible = seq;
    this.#refresh();
    this.pins.changed(seq, this.checkpointId);
  }

  /** A pin on the state reads see now, for a snapshot. */
  pin(): Pin {
    const pin: Pin = { seq: this.visible, checkpointId: this.checkpointId, since: Date.now(), gens: this.gens };
    this.pins.add(pin, this.visible, this.checkpointId);
    return pin;
  }

  unpin(pin: Pin): void {
    this.pins.delete(pin, this.visible, this.checkpointId);
  }

  /** A checkpoint starts: the active generation is frozen for it, and a new one takes batches. */
  freeze(): void {
    const active = this.active;
    active.frozen = true;
    this.gens = [new Generation(active), active];
    this.#generationsChanged();
  }

  /** A checkpoint's trees (`state`) hold the frozen generation: reads go to them, and it goes. */
  checkpointed(state: DbState): void {
    this.#adopt(state);
    this.gens = this.gens.slice(0, 1);
    this.#generationsChanged();
  }

  /** A compaction moved the trees (`state`): the same batches, other pages. */
  compacted(state: DbState): void {
    this.#adopt(state);
    this.#refresh();
  }

  /** Closed: no reader is left, and the buffer's memory goes even if the caller keeps the handle. */
  clear(): void {
    this.pins.clear();
    this.gens = [new Generation()];
    this.#generationsChanged();
  }

  #generationsChanged(): void {
    this.pins.generationsChanged();
    this.#refresh();
  }

  #refresh(): void {
    this.live = new View(this.visible, this.gens, this.base);
  }

  /** Reads the trees of checkpoint `state` from now on; reader threads too (published before the floor moves). */
  #adopt(state: DbState): void {
    this.base = new Checkpointed(state, this.#reader);
    this.#slots.publish(state);
    this.pins.publishFloor(this.checkpointId);
  }
}
