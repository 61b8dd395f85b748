// The writer: owns the journal, and nothing else. It takes the batches the main thread admitted
// (their operations already encoded in the journal's layout, every condition already decided),
// writes everything queued as one record (group commit), makes it durable with one fdatasync, and
// reports the last batch it covers. The B+Trees are not on this path at all: checkpoints merge
// the batches into them later, on a thread of their own.
//
// Group commit: messages that arrive while a record is written and synced queue up, and the next
// record takes all of them (up to maxRecordBytes, and never past a checkpoint boundary). The
// sync is blocking: the thread has nothing else to do meanwhile, and a blocking fdatasync answers
// sooner than one handed to the libuv pool.
//
// Failure: a failed write or sync is fatal. The writer reports it once and then drops everything
// (the main thread rejects every batch not yet reported synced, and every later one).
//
// This class runs on the writer thread or, with a storage backend of the caller's (tests, the
// simulated disk), on the opening thread. Driven by messages (`loop` false), it schedules its own
// writes and idle work on the event loop; driven by the handoff ring (api/ring-driver.ts), it only
// queues what it receives, and the driver calls writeQueued() and idleStep().
import { BirchError } from '../platform/errors.js';
import type { DirectoryBackend } from '../pager/backend.js';
import { JournalWriter, type SegmentInfo } from '../journal/journal.js';
import { toWireError, type FromWriter, type ToWriter } from './protocol.js';

export interface WriterOptions {
  segmentBytes: number;
  sync: boolean;
  maxRecordBytes: number;
  segments: SegmentInfo[];
  releasedSeq: number;
  /** A driver calls writeQueued() and idleStep(); the writer schedules nothing itself. */
  loop?: boolean;
}

/** A message of batches; `freeze` may be set after it arrives (a boundary that came alone). */
type Batches = Extract<ToWriter, { kind: 'batches' }>;

/** Zeros written per idle step while preparing the next journal segment: 16 writes of 4 KiB. */
const IDLE_STEP_BYTES = 64 * 1024;

export class Writer {
  readonly #journal: JournalWriter;
  readonly #send: (msg: FromWriter) => void;
  readonly #maxRecordBytes: number;
  readonly #sync: boolean;
  readonly #queue: Batches[] = [];
  readonly #loop: boolean;
  #scheduled = false;
  #idleScheduled = false;
  /** Loop mode: the next journal segment is not prepared yet (idleStep() has work). */
  #idleWanted = false;
  #fatal = false;
  #closed = false;
  /** The last batch of each record written since the last report, and the last batch reported durable. */
  #recordEnds: number[] = [];
  #reportedSeq = 0;

  constructor(dir: DirectoryBackend, opts: WriterOptions, send: (msg: FromWriter) => void) {
    // Records are synced here, once for all the records a turn writes.
    this.#journal = new JournalWriter(dir, { segmentBytes: opts.segmentBytes, sync: false }, opts.segments, opts.releasedSeq);
    this.#sync = opts.sync;
    this.#send = send;
    this.#maxRecordBytes = opts.maxRecordBytes;
    this.#loop = opts.loop === true;
  }

  /** Whether batches wait to be written (loop mode: the driver calls writeQueued()). */
  get hasQueued(): boolean {
    return this.#queue.length > 0;
  }

  get closed(): boolean {
    return this.#closed;
  }

  receive(msg: ToWriter): void {
    if (this.#closed) return;
    switch (msg.kind) {
      case 'batches':
        if (this.#fatal) return;
        this.#queue.push(msg);
        this.#schedule();
        break;
      case 'boundary': {
        // The batches queued before it end a record; with none queued, every batch before it is
        // written already.
        const last = this.#queue[this.#queue.length - 1];
        if (last !== undefined) last.freeze = true;
        break;
      }
      case 'release':
        this.#journal.release(msg.upToSeq);
        break;
      case 'close':
        this.#close(msg.removeReleased);
        break;
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#loop) return;
    this.#scheduled = true;
    // After the messages already waiting have been received: they join this record.
    setImmediate(() => {
      this.#scheduled = false;
      this.writeQueued();
    });
  }

  /** Writes what is queued as records (one unless a boundary or the size cap splits it), synced. */
  writeQueued(): void {
    if (this.#closed || this.#fatal) return;
    let lastSeq = 0;
    try {
      while (this.#queue.length > 0) {
        const parts: Buffer[] = [];
        let first = 0;
        let last = 0;
        let ops = 0;
        let bytes = 0;
        while (this.#queue.length > 0) {
          const m = this.#queue[0] as Batches;
          const size = m.parts.reduce((n, v) => n + v.byteLength, 0);
          if (parts.length > 0 && bytes + size > this.#maxRecordBytes) break;
          this.#queue.shift();
          if (first === 0) first = m.firstSeq;
          last = m.lastSeq;
          ops += m.ops;
          bytes += size;
          for (const v of m.parts) parts.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
          if (m.freeze) break;
        }
        this.#recordEnds.push(this.#journal.append(first, last, ops, parts).lastSeq);
        lastSeq = last;
      }
      if (lastSeq === 0) return;
      if (this.#sync) this.#journal.sync();
    } catch (err) {
      // Records a sync covered before the failure (a segment switch syncs the segment it leaves)
      // are durable: their batches are acknowledged, not failed with the rest.
      const durable = this.#sync ? this.#journal.syncedSeq : this.#journal.appendedSeq;
      if (durable > this.#reportedSeq) this.#report(durable);
      this.fail(err);
      return;
    }
    this.#report(lastSeq);
    this.#scheduleIdleWork();
  }

  /** Tells the main thread that every batch up to `lastSeq` is durable, and how many records were written for them. */
  #report(lastSeq: number): void {
    // Records are appended in batch order: the reported ones are a prefix.
    let k = 0;
    while (k < this.#recordEnds.length && (this.#recordEnds[k] as number) <= lastSeq) k++;
    this.#recordEnds.splice(0, k);
    this.#reportedSeq = lastSeq;
    this.#send({ kind: 'synced', lastSeq, records: k, journal: { ...this.#journal.stats }, journalBytesHeld: this.#journal.bytesHeld });
  }

  /**
   * While nothing is queued, prepares the next journal segment in small steps. A batch that
   * arrives meanwhile waits for one step at most: about a tenth of a millisecond here, except
   * the last step, which syncs the spare and the directory (once per segment).
   */
  #scheduleIdleWork(): void {
    if (this.#loop) {
      this.#idleWanted = true;
      return;
    }
    if (this.#idleScheduled) return;
    this.#idleScheduled = true;
    setImmediate(() => {
      this.#idleScheduled = false;
      if (this.#queue.length > 0) return;
      if (this.#idleStepNow()) this.#scheduleIdleWork();
    });
  }

  /** Loop mode: one step of idle work if there is some and no batch waits; whether more remains. */
  idleStep(): boolean {
    if (!this.#idleWanted || this.#queue.length > 0) return false;
    this.#idleWanted = this.#idleStepNow();
    return this.#idleWanted;
  }

  #idleStepNow(): boolean {
    if (this.#closed || this.#fatal) return false;
    try {
      return this.#journal.prepareSpare(IDLE_STEP_BYTES);
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  /** Fatal: reported once; every batch queued or sent later is dropped. */
  fail(err: unknown): void {
    if (this.#fatal || this.#closed) return;
    this.#fatal = true;
    this.#queue.length = 0;
    this.#send({ kind: 'fatal', error: toWireError(err, 'writer') });
  }

  #close(removeReleased: boolean): void {
    let error: BirchError | undefined;
    try {
      // The main thread asks only once every batch it handed over is reported (or the journal failed).
      if (this.#queue.length > 0) throw new BirchError('INTERNAL', `the writer was closed with ${this.#queue.length} messages of batches unwritten`);
      if (removeReleased && !this.#fatal) this.#journal.removeReleased();
    } catch (err) {
      error = err instanceof BirchError ? err : new BirchError('INTERNAL', String(err), { cause: err });
    }
    try {
      this.#journal.close();
    } catch (err) {
      // Closed either way: the main thread waits for 'closed', whatever closing the files did.
      error ??= err instanceof BirchError ? err : new BirchError('IO', `closing the journal failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    this.#closed = true;
    this.#send(error === undefined ? { kind: 'closed' } : { kind: 'closed', error: toWireError(error, 'writer') });
  }
}
