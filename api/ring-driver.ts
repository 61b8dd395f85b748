// The writer's side of the handoff ring (api/handoff-ring.ts): takes the control messages and
// the ring's entries into the Writer, and has it write. Entries go in the order they were
// published; control messages are taken when a drain begins, before that drain's entries, so
// they may overtake entries sent before them. That is safe for each of them: a chunk is only
// named by entries after it; 'release' covers batches already acknowledged (so written); 'close'
// comes once every batch is acknowledged.
//
// On the writer thread, run() loops: drain, write and sync what came (one record for all of it:
// group commit), and when nothing is left, block in Atomics.wait on the bell. Batches that arrive
// during a write and sync wait in the ring and make the next record. Inline (the writer on the
// opening thread, with a storage backend of the caller's), the same step() runs from the event loop.
import { BirchError } from '../platform/errors.js';
import type { Writer } from './writer.js';
import { ENTRY_BATCHES, ENTRY_BOUNDARY, FLAG_FREEZE, FLAG_MORE, FLAG_WHOLE, type RingConsumer, type RingEntry } from './handoff-ring.js';
import type { ToWriter } from './protocol.js';

/** What the main thread sends beside the ring: chunks of the batch arena, and the writer's control messages. */
export type RingControl =
  | { kind: 'chunk'; id: number; sab: SharedArrayBuffer }
  | Extract<ToWriter, { kind: 'release' } | { kind: 'close' }>;

/** The longest the writer thread keeps its event loop waiting while it works, and while it waits for the bell. */
const YIELD_AFTER_MS = 50;
const IDLE_WAIT_MS = 50;

export class RingDriver {
  readonly #writer: Writer;
  readonly #ring: RingConsumer;
  readonly #nextControl: () => RingControl | undefined;
  /**
   * Chunks registered and not yet passed: an entry's chunk retires every chunk registered before
   * it, and a whole-chunk entry (FLAG_WHOLE) its own. At most the current chunk (4 MiB) is kept
   * between records.
   */
  readonly #chunks = new Map<number, SharedArrayBuffer>();
  readonly #entry: RingEntry = { kind: 0, flags: 0, chunk: 0, offset: 0, length: 0, ops: 0, firstSeq: 0, lastSeq: 0 };
  /** The message being gathered from entries (one part per entry, the last without FLAG_MORE). */
  #parts: Uint8Array[] = [];

  constructor(writer: Writer, ring: RingConsumer, nextControl: () => RingControl | undefined) {
    this.#writer = writer;
    this.#ring = ring;
    this.#nextControl = nextControl;
  }

  /**
   * Runs on the writer thread until the writer closes, then calls `closed`. It gives the thread's
   * event loop a turn (setImmediate) after YIELD_AFTER_MS of work or IDLE_WAIT_MS of waiting: the
   * runtime's own tasks for this thread (parts of garbage collection, freeing shared memory the
   * collector let go of) run only from the event loop, and a thread that never returns to it would
   * hold what they free.
   */
  run(closed: () => void): void {
    const until = performance.now() + YIELD_AFTER_MS;
    for (;;) {
      const bell = this.#ring.bell;
      const state = this.step();
      if (state === 'closed') return closed();
      if (state === 'idle' && this.#ring.waitForBell(bell, IDLE_WAIT_MS) === 'timed-out') break;
      if (performance.now() > until) break;
    }
    setImmediate(() => this.run(closed));
  }

  /** Takes what came, then writes it, or does one step of idle work. 'idle': nothing left to do until the bell. */
  step(): 'closed' | 'idle' | 'busy' {
    try {
      this.#drain();
    } catch (err) {
      this.#writer.fail(err);
    }
    if (this.#writer.closed) return 'closed';
    if (this.#writer.hasQueued) {
      this.#writer.writeQueued();
      return 'busy';
    }
    return this.#writer.idleStep() ? 'busy' : 'idle';
  }

  #drain(): void {
    this.#controls();
    const e = this.#entry;
    while (this.#ring.take(e) !== undefined) {
      if (e.kind === ENTRY_BOUNDARY) this.#writer.receive({ kind: 'boundary' });
      else if (e.kind === ENTRY_BATCHES) {
        this.#parts.push(new Uint8Array(this.#chunk(e.chunk), e.offset, e.length));
        if ((e.flags & FLAG_WHOLE) !== 0) this.#chunks.delete(e.chunk);
        if ((e.flags & FLAG_MORE) !== 0) continue;
        const parts = this.#parts;
        this.#parts = [];
        this.#writer.receive({ kind: 'batches', parts, ops: e.ops, firstSeq: e.firstSeq, lastSeq: e.lastSeq, freeze: (e.flags & FLAG_FREEZE) !== 0 });
      } else throw new BirchError('INTERNAL', `the handoff ring holds an entry of unknown kind ${e.kind}`);
    }
    this.#ring.roomMade();
  }

  #controls(): void {
    for (let m = this.#nextControl(); m !== undefined; m = this.#nextControl()) {
      if (m.kind === 'chunk') this.#chunks.set(m.id, m.sab);
      else this.#writer.receive(m);
    }
  }

  #chunk(id: number): SharedArrayBuffer {
    let sab = this.#chunks.get(id);
    if (sab === undefined) {
      // Registered after this loop's drain began, but always before the entry: it is there now.
      this.#controls();
      sab = this.#chunks.get(id);
      if (sab === undefined) throw new BirchError('INTERNAL', `the handoff ring names chunk ${id}, which was never sent`);
    }
    for (const k of this.#chunks.keys()) {
      if (k === id) break;
      this.#chunks.delete(k);
    }
    return sab;
  }
}
