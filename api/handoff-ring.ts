// The commit hand-off through shared memory: how batches reach the writer and how their
// acknowledgements come back without a message per turn (postMessage costs both threads a wake-up
// through the event loop, a clone and a dispatch; here it is a few stores and one futex call).
//
// The main thread (the producer) publishes one entry per run of adjacent batches of a turn, and a
// boundary entry where a checkpoint cuts the stream; it rings the bell. The writer (the consumer)
// takes entries in order, writes them as records, syncs, stores the last durable batch and its
// running counts in the acknowledgement words, and counts ACKS up; the main thread waits on ACKS
// with Atomics.waitAsync, so its event loop never blocks.
//
// An entry names its bytes by chunk id and offset: the bytes themselves stay in the batch arena's
// chunks (api/batch-arena.ts), which are SharedArrayBuffers the writer was given once, by a control
// message, before the first entry that uses them. Control messages (chunks, release, close) go by
// a message port; the bell is rung for them too.
//
// Layout of the ring's SharedArrayBuffer (host byte order: it is memory, never a file):
//
//   byte 0    Int32 HEAD        entries published; written by the producer only
//   byte 4    Int32 TAIL        entries taken; written by the consumer only
//   byte 8    Int32 BELL        counted up by the producer for each entry or control message
//   byte 12   Int32 ACKS        counted up by the consumer by two for each acknowledgement (odd
//                               while it writes the acknowledgement words) or for room made
//   byte 16   Int32 WANT_ROOM   1 while the producer holds entries back for a full ring
//   byte 24   BigInt64 ACK_SEQ        every batch up to it is durable
//   byte 32   BigInt64 ACK_RECORDS    journal records written, since the writer started
//   byte 40   BigInt64 ACK_HELD       journal bytes held (not yet released by a checkpoint)
//   byte 48   Float64 x JOURNAL_STAT_FIELDS   the journal's statistics at the last acknowledgement
//   byte ENTRIES_AT: CAPACITY entries of ENTRY_BYTES:
//     +0  Float64 firstSeq   +8 Float64 lastSeq   (batch sequence numbers: integers below 2^53)
//     +16 Int32 kind (ENTRY_BATCHES, ENTRY_BOUNDARY)   +20 Int32 flags (FLAG_FREEZE, FLAG_MORE, FLAG_WHOLE)
//     +24 Int32 chunk id    +28 Int32 byte offset in the chunk   +32 Int32 length   +36 Int32 operations
//
// Invariants: HEAD - TAIL (as 32-bit integers, so both may wrap) is between 0 and CAPACITY; an
// entry's words are written before HEAD passes it and read before TAIL passes it, and Atomics
// stores and loads of HEAD and TAIL order those plain accesses. The acknowledgement words are
// written between two counts of ACKS (a sequence lock: read whole, or read again), and ACK_SEQ
// only grows: every value it takes is a durable batch.
import type { JournalStats } from '../journal/journal.js';

const HEAD = 0;
const TAIL = 1;
const BELL = 2;
const ACKS = 3;
const WANT_ROOM = 4;
const ACK_SEQ = 3; // BigInt64 index: byte 24
const ACK_RECORDS = 4;
const ACK_HELD = 5;
const STATS_AT = 48;
const JOURNAL_STAT_NAMES = ['records', 'ops', 'rawBytes', 'storedBytes', 'bytesWritten', 'syncs', 'segments', 'segmentsCreated', 'segmentsRecycled', 'storedRecords'] as const satisfies readonly (keyof JournalStats)[];
const JOURNAL_STAT_FIELDS = JOURNAL_STAT_NAMES.length;
const ENTRIES_AT = 128;
const ENTRY_BYTES = 40;
const E_FIRST = 0;
const E_LAST = 8;
const E_KIND = 16;
const E_FLAGS = 20;
const E_CHUNK = 24;
const E_OFFSET = 28;
const E_LENGTH = 32;
const E_OPS = 36;

export const ENTRY_BATCHES = 1;
export const ENTRY_BOUNDARY = 2;
/** The batches end where a checkpoint cuts the stream: the record that holds them ends here. */
export const FLAG_FREEZE = 1;
/** The next entry is another part of the same message (a turn whose batches span two chunks). */
export const FLAG_MORE = 2;
/**
 * The entry's bytes are its whole chunk (a batch with a chunk of its own, or a turn that filled
 * one): no later entry names that chunk, so the writer lets go of it once taken, and the main
 * thread does not keep it either.
 */
export const FLAG_WHOLE = 4;

/** Entries in flight at most: a turn takes one (two around a chunk switch), so this is far more than the writer falls behind by. */
export const RING_CAPACITY = 256;

if (STATS_AT + 8 * JOURNAL_STAT_FIELDS > ENTRIES_AT) throw new Error('handoff ring: statistics overlap the entries');

type WaitAsyncResult = { async: false; value: string } | { async: true; value: Promise<string> };
/** Atomics.waitAsync (ES2024), where the runtime has it: the main thread's wait that never blocks. */
const atomicsWaitAsync = (Atomics as unknown as { waitAsync?: (ta: Int32Array, index: number, value: number) => WaitAsyncResult }).waitAsync;

export function hasWaitAsync(): boolean {
  return typeof atomicsWaitAsync === 'function';
}

export function ringBytes(capacity = RING_CAPACITY): number {
  return ENTRIES_AT + capacity * ENTRY_BYTES;
}

/** A run of batches in one chunk, or a boundary (kind ENTRY_BOUNDARY: no bytes). */
export interface RingEntry {
  kind: number;
  flags: number;
  chunk: number;
  offset: number;
  length: number;
  ops: number;
  firstSeq: number;
  lastSeq: number;
}

/** What the writer last acknowledged. */
export interface RingAck {
  acks: number;
  lastSeq: number;
  records: number;
  journalBytesHeld: number;
  journal: JournalStats;
}

class RingWords {
  readonly sab: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly i64: BigInt64Array;
  readonly f64: Float64Array;
  readonly view: DataView;
  readonly capacity: number;

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.i32 = new Int32Array(sab);
    this.i64 = new BigInt64Array(sab, 0, ENTRIES_AT >> 3);
    this.f64 = new Float64Array(sab, STATS_AT, JOURNAL_STAT_FIELDS);
    this.view = new DataView(sab);
    this.capacity = (sab.byteLength - ENTRIES_AT) / ENTRY_BYTES;
    if (!Number.isInteger(this.capacity) || this.capacity < 1 || (this.capacity & (this.capacity - 1)) !== 0) throw new Error(`handoff ring of ${sab.byteLength} bytes: the capacity must be a power of two`);
  }

  at(counter: number): number {
    return ENTRIES_AT + (counter & (this.capacity - 1)) * ENTRY_BYTES;
  }
}

/** The main thread's end: publishes entries, reads acknowledgements. */
export class RingProducer {
  readonly #w: RingWords;

  /** `start`: where both counters begin (tests start near the 32-bit wrap). */
  constructor(sab: SharedArrayBuffer, start = 0) {
    this.#w = new RingWords(sab);
    Atomics.store(this.#w.i32, HEAD, start | 0);
    Atomics.store(this.#w.i32, TAIL, start | 0);
  }

  static create(capacity = RING_CAPACITY, start = 0): RingProducer {
    return new RingProducer(new SharedArrayBuffer(ringBytes(capacity)), start);
  }

  get sab(): SharedArrayBuffer {
    return this.#w.sab;
  }

  /** Entries published and not yet taken. */
  get inFlight(): number {
    return (Atomics.load(this.#w.i32, HEAD) - Atomics.load(this.#w.i32, TAIL)) | 0;
  }

  /** Publishes `e` unless the ring is full (then false, and WANT_ROOM asks the consumer to say when it takes some). */
  publish(e: RingEntry): boolean {
    const w = this.#w;
    const head = Atomics.load(w.i32, HEAD);
    if (((head - Atomics.load(w.i32, TAIL)) | 0) >= w.capacity) {
      Atomics.store(w.i32, WANT_ROOM, 1);
      // The consumer may have taken entries between the two loads: look once more.
      if (((head - Atomics.load(w.i32, TAIL)) | 0) >= w.capacity) return false;
    }
    const at = w.at(head);
    const v = w.view;
    v.setFloat64(at + E_FIRST, e.firstSeq, true);
    v.setFloat64(at + E_LAST, e.lastSeq, true);
    v.setInt32(at + E_KIND, e.kind, true);
    v.setInt32(at + E_FLAGS, e.flags, true);
    v.setInt32(at + E_CHUNK, e.chunk, true);
    v.setInt32(at + E_OFFSET, e.offset, true);
    v.setInt32(at + E_LENGTH, e.length, true);
    v.setInt32(at + E_OPS, e.ops, true);
    Atomics.store(w.i32, HEAD, (head + 1) | 0);
    return true;
  }

  /** Wakes the consumer (after entries, or a control message). */
  ring(): void {
    Atomics.add(this.#w.i32, BELL, 1);
    Atomics.notify(this.#w.i32, BELL);
  }

  /** The acknowledgement count to wait on: read it before the acknowledgement (ack()). */
  get acks(): number {
    return Atomics.load(this.#w.i32, ACKS);
  }

  /** Resolves (value 'ok', 'not-equal' or 'timed-out') once ACKS moves from `seen`; never blocks. */
  waitForAck(seen: number): WaitAsyncResult {
    if (atomicsWaitAsync === undefined) throw new Error('handoff ring: this runtime has no Atomics.waitAsync');
    return atomicsWaitAsync(this.#w.i32, ACKS, seen);
  }

  /** Wakes a pending waitForAck without an acknowledgement (at close). */
  wakeWaiters(): void {
    Atomics.notify(this.#w.i32, ACKS);
  }

  /** The last acknowledgement, read whole: if ACKS moves while it is read, it is read again. */
  ack(): RingAck {
    const w = this.#w;
    for (;;) {
      const acks = Atomics.load(w.i32, ACKS);
      // Odd: the writer is between the two counts of an acknowledgement (a few stores).
      if ((acks & 1) !== 0) continue;
      const journal = {} as JournalStats;
      for (let i = 0; i < JOURNAL_STAT_FIELDS; i++) journal[JOURNAL_STAT_NAMES[i] as keyof JournalStats] = w.f64[i] as number;
      const a: RingAck = {
        acks,
        lastSeq: Number(Atomics.load(w.i64, ACK_SEQ)),
        records: Number(Atomics.load(w.i64, ACK_RECORDS)),
        journalBytesHeld: Number(Atomics.load(w.i64, ACK_HELD)),
        journal,
      };
      if (Atomics.load(w.i32, ACKS) === acks) return a;
    }
  }
}

/** The writer's end: takes entries, writes acknowledgements, waits for the bell. */
export class RingConsumer {
  readonly #w: RingWords;
  /** Journal records written since the writer started (report()). */
  #records = 0;

  constructor(sab: SharedArrayBuffer) {
    this.#w = new RingWords(sab);
  }

  /** The bell's count: read it before looking for work, then wait on it (waitForBell). */
  get bell(): number {
    return Atomics.load(this.#w.i32, BELL);
  }

  /** Blocks this thread until the bell moves from `seen` (or `timeoutMs` passes). Not for a main thread. */
  waitForBell(seen: number, timeoutMs = Infinity): 'ok' | 'not-equal' | 'timed-out' {
    return Atomics.wait(this.#w.i32, BELL, seen, timeoutMs);
  }

  /** The next entry, or undefined if none is published; `into` is filled and returned (no allocation). */
  take(into: RingEntry): RingEntry | undefined {
    const w = this.#w;
    const tail = Atomics.load(w.i32, TAIL);
    if (tail === Atomics.load(w.i32, HEAD)) return undefined;
    const at = w.at(tail);
    const v = w.view;
    into.firstSeq = v.getFloat64(at + E_FIRST, true);
    into.lastSeq = v.getFloat64(at + E_LAST, true);
    into.kind = v.getInt32(at + E_KIND, true);
    into.flags = v.getInt32(at + E_FLAGS, true);
    into.chunk = v.getInt32(at + E_CHUNK, true);
    into.offset = v.getInt32(at + E_OFFSET, true);
    into.length = v.getInt32(at + E_LENGTH, true);
    into.ops = v.getInt32(at + E_OPS, true);
    Atomics.store(w.i32, TAIL, (tail + 1) | 0);
    return into;
  }

  /** If the producer waits for room, tells it (an acknowledgement that moves nothing else). */
  roomMade(): void {
    if (Atomics.load(this.#w.i32, WANT_ROOM) === 0) return;
    Atomics.store(this.#w.i32, WANT_ROOM, 0);
    // By two: ACKS stays even (no acknowledgement is being written).
    Atomics.add(this.#w.i32, ACKS, 2);
    Atomics.notify(this.#w.i32, ACKS);
  }

  /** The writer's 'synced' report, stored as an acknowledgement (the record count kept as a running total). */
  report(msg: { lastSeq: number; records: number; journalBytesHeld: number; journal: JournalStats }): void {
    this.#records += msg.records;
    this.acknowledge(msg.lastSeq, this.#records, msg.journalBytesHeld, msg.journal);
  }

  /** Every batch up to `lastSeq` is durable; `records` journal records were written in all. */
  acknowledge(lastSeq: number, records: number, journalBytesHeld: number, journal: JournalStats): void {
    const w = this.#w;
    // ACKS is odd while the words change: a reader that sees it odd, or sees it move, reads again.
    Atomics.add(w.i32, ACKS, 1);
    for (let i = 0; i < JOURNAL_STAT_FIELDS; i++) w.f64[i] = journal[JOURNAL_STAT_NAMES[i] as keyof JournalStats];
    Atomics.store(w.i64, ACK_RECORDS, BigInt(records));
    Atomics.store(w.i64, ACK_HELD, BigInt(journalBytesHeld));
    Atomics.store(w.i64, ACK_SEQ, BigInt(lastSeq));
    Atomics.add(w.i32, ACKS, 1);
    Atomics.notify(w.i32, ACKS);
  }

}
