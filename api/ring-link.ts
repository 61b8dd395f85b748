// The main thread's side of the handoff ring (api/handoff-ring.ts): the writer peer the handle
// posts to. A turn's batches become ring entries (a chunk of the batch arena the writer has not
// seen yet goes first, as a control message); acknowledgements are read from the ring when ACKS
// moves, and delivered to the handle as the 'synced' message the message hand-off would have
// sent, so the commit pipeline is the same either way.
//
// Waiting for ACKS: on a worker thread, Atomics.waitAsync, armed while a batch handed over is not
// acknowledged (a pending waitAsync does not keep the process alive: the writer's worker handle
// does, referenced while writes are in flight). Inline, the driver says when it acknowledged.
//
// Order: the writer stores its acknowledgement before it posts 'fatal' or 'closed', so those are
// delivered after whatever acknowledgement is in the ring: a batch made durable before a failure
// resolves, as it would with messages.
import { ENTRY_BATCHES, ENTRY_BOUNDARY, FLAG_FREEZE, FLAG_MORE, FLAG_WHOLE, type RingEntry, type RingProducer } from './handoff-ring.js';
import type { RingControl } from './ring-driver.js';
import type { FromWriter, ToWriter } from './protocol.js';
import type { Peer } from './threads.js';

export class RingLink implements Peer<ToWriter> {
  readonly #ring: RingProducer;
  readonly #control: (m: RingControl) => void;
  readonly #wakeWriter: () => void;
  readonly #deliver: (m: FromWriter) => void;
  readonly #thread: Omit<Peer<ToWriter>, 'post'>;
  /** Whether to wait for ACKS with Atomics.waitAsync (a worker thread) or be told (inline: poll()). */
  readonly #waitAsync: boolean;
  /** The arena chunk the last entry named, and its id. */
  #chunk: ArrayBufferLike | undefined;
  #chunkId = 0;
  /** Entries that found the ring full, in order: published as the writer makes room. */
  readonly #backlog: RingEntry[] = [];
  #sentSeq = 0;
  #ackedSeq = 0;
  #records = 0;
  #seenAcks: number;
  #armed = false;
  #stopped = false;
  /** The writer failed or died: no acknowledgement is awaited any more. */
  #failed = false;

  constructor(opts: {
    ring: RingProducer;
    control: (m: RingControl) => void;
    wakeWriter: () => void;
    deliver: (m: FromWriter) => void;
    thread: Omit<Peer<ToWriter>, 'post'>;
    waitAsync: boolean;
  }) {
    this.#ring = opts.ring;
    this.#control = opts.control;
    this.#wakeWriter = opts.wakeWriter;
    this.#deliver = opts.deliver;
    this.#thread = opts.thread;
    this.#waitAsync = opts.waitAsync;
    this.#seenAcks = this.#ring.acks;
  }

  post(msg: ToWriter): void {
    if (this.#stopped) return;
    switch (msg.kind) {
      case 'batches': {
        const last = msg.parts.length - 1;
        msg.parts.forEach((v, i) => {
          let flags = (i < last ? FLAG_MORE : 0) | (msg.freeze ? FLAG_FREEZE : 0);
          let chunk = this.#chunkId;
          if (v.byteOffset === 0 && v.byteLength === v.buffer.byteLength) {
            // Its whole chunk (a large batch's own): sent for this entry alone, kept by neither side.
            chunk = ++this.#chunkId;
            this.#control({ kind: 'chunk', id: chunk, sab: v.buffer as SharedArrayBuffer });
            this.#chunk = undefined;
            flags |= FLAG_WHOLE;
          } else if (v.buffer !== this.#chunk) {
            this.#chunk = v.buffer;
            chunk = ++this.#chunkId;
            this.#control({ kind: 'chunk', id: chunk, sab: v.buffer as SharedArrayBuffer });
          }
          this.#publish({ kind: ENTRY_BATCHES, flags, chunk, offset: v.byteOffset, length: v.byteLength, ops: msg.ops, firstSeq: msg.firstSeq, lastSeq: msg.lastSeq });
        });
        this.#sentSeq = msg.lastSeq;
        this.#arm();
        break;
      }
      case 'boundary':
        this.#publish({ kind: ENTRY_BOUNDARY, flags: FLAG_FREEZE, chunk: 0, offset: 0, length: 0, ops: 0, firstSeq: 0, lastSeq: 0 });
        break;
      case 'release':
      case 'close':
        this.#control(msg);
        break;
    }
    this.#wakeWriter();
  }

  /** A message the writer posted ('fatal', 'closed'): after every acknowledgement stored before it. */
  received(msg: FromWriter): void {
    this.poll();
    // A failed writer acknowledges nothing more: stop waiting (a pending wait would keep the handle reachable).
    if (msg.kind === 'fatal') this.#quiet();
    this.#deliver(msg);
  }

  /** Whether entries wait for room in the ring. */
  get backlogged(): boolean {
    return this.#backlog.length > 0;
  }

  /** Delivers the ring's acknowledgement if it is new, and publishes what waited for room. */
  poll(): void {
    if (this.#stopped) return;
    const a = this.#ring.ack();
    this.#seenAcks = a.acks;
    if (this.#backlog.length > 0) this.#publishBacklog();
    if (a.lastSeq > this.#ackedSeq) {
      this.#ackedSeq = a.lastSeq;
      const records = a.records - this.#records;
      this.#records = a.records;
      this.#deliver({ kind: 'synced', lastSeq: a.lastSeq, records, journal: a.journal, journalBytesHeld: a.journalBytesHeld });
    }
    this.#arm();
  }

  ref(): void {
    this.#thread.ref();
  }

  unref(): void {
    this.#thread.unref();
  }

  async terminate(): Promise<void> {
    this.stop();
    await this.#thread.terminate();
  }

  /** Nothing more is read or sent; a pending wait and the chunk last named are let go. */
  stop(): void {
    this.#stopped = true;
    this.#quiet();
    this.#chunk = undefined;
    this.#backlog.length = 0;
  }

  #quiet(): void {
    this.#failed = true;
    this.#ring.wakeWaiters();
  }

  #publish(e: RingEntry): void {
    if (this.#backlog.length > 0 || !this.#ring.publish(e)) {
      this.#backlog.push(e);
      this.#arm();
    }
  }

  #publishBacklog(): void {
    let n = 0;
    while (n < this.#backlog.length && this.#ring.publish(this.#backlog[n] as RingEntry)) n++;
    this.#backlog.splice(0, n);
    if (n > 0) this.#wakeWriter();
  }

  /** Waits for ACKS to move while something handed over is unacknowledged or held back. */
  #arm(): void {
    if (!this.#waitAsync || this.#armed || this.#stopped || this.#failed) return;
    if (this.#sentSeq <= this.#ackedSeq && this.#backlog.length === 0) return;
    const r = this.#ring.waitForAck(this.#seenAcks);
    this.#armed = true;
    const woken = (): void => {
      this.#armed = false;
      this.poll();
    };
    if (r.async) void r.value.then(woken);
    else queueMicrotask(woken);
  }
}
