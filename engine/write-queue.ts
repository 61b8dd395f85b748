// The main thread's side of the writer: batches become promises, are handed to the writer thread
// in bulk (one message per event-loop turn, however many batches), and settle when the writer
// reports their commit. Queued bytes are bounded: past the bound, new batches wait their turn
// (backpressure) instead of growing memory; waiting batches keep their order, so one caller's
// batches are always applied in the order it issued them.
import { BirchError } from '../pager/errors.js';
import { batchBytes, encodeBatch, type EncodedCond, type EncodedOp } from './writer-protocol.js';

interface Entry {
  id: number;
  /** The batch, encoded when it was submitted: later changes to the caller's buffers do not matter. */
  encoded: Buffer;
  resolve(): void;
  reject(err: Error): void;
}

export class WriteQueue {
  readonly #send: (buf: ArrayBuffer) => void;
  readonly #maxBytes: number;
  readonly #onBusyChange: (busy: boolean) => void;
  #nextId = 1;
  readonly #unsent: Entry[] = [];
  readonly #waiting: Entry[] = [];
  readonly #inflight = new Map<number, Entry>();
  #queuedBytes = 0;
  #sendScheduled = false;
  #failure: BirchError | undefined;
  #idleWaiters: (() => void)[] = [];

  constructor(send: (buf: ArrayBuffer) => void, maxBytes: number, onBusyChange: (busy: boolean) => void) {
    this.#send = send;
    this.#maxBytes = maxBytes;
    this.#onBusyChange = onBusyChange;
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }
  get waiting(): number {
    return this.#waiting.length;
  }
  get inflight(): number {
    return this.#inflight.size;
  }

  submit(ops: readonly EncodedOp[], conds: readonly EncodedCond[]): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffff_fffe ? 1 : this.#nextId + 1;
    const encoded = Buffer.allocUnsafe(batchBytes(ops, conds));
    encodeBatch(encoded, 0, id, ops, conds);
    return new Promise<void>((resolve, reject) => {
      const entry: Entry = { id, encoded, resolve, reject };
      const wasIdle = this.idle;
      if (this.#waiting.length > 0 || (this.#queuedBytes > 0 && this.#queuedBytes + encoded.length > this.#maxBytes)) this.#waiting.push(entry);
      else this.#admit(entry);
      if (wasIdle) this.#onBusyChange(true);
    });
  }

  #admit(entry: Entry): void {
    this.#queuedBytes += entry.encoded.length;
    this.#inflight.set(entry.id, entry);
    this.#unsent.push(entry);
    if (!this.#sendScheduled) {
      this.#sendScheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  /** Hands every batch queued this turn to the writer in one transferred buffer. */
  #flush(): void {
    this.#sendScheduled = false;
    if (this.#unsent.length === 0) return;
    const total = this.#unsent.reduce((n, e) => n + e.encoded.length, 0);
    const ab = new ArrayBuffer(total);
    const buf = Buffer.from(ab);
    let off = 0;
    for (const e of this.#unsent) off += e.encoded.copy(buf, off);
    this.#unsent.length = 0;
    this.#send(ab);
  }

  #finish(id: number, err: Error | undefined): void {
    const e = this.#inflight.get(id);
    if (e === undefined) return;
    this.#inflight.delete(id);
    this.#queuedBytes -= e.encoded.length;
    if (err === undefined) e.resolve();
    else e.reject(err);
  }

  /** The writer's report: these committed, those were rejected. */
  settle(committed: readonly number[], rejected: readonly { id: number; error: Error }[]): void {
    for (const id of committed) this.#finish(id, undefined);
    for (const r of rejected) this.#finish(r.id, r.error);
    while (this.#waiting.length > 0) {
      const next = this.#waiting[0] as Entry;
      if (this.#queuedBytes > 0 && this.#queuedBytes + next.encoded.length > this.#maxBytes) break;
      this.#waiting.shift();
      this.#admit(next);
    }
    this.#checkIdle();
  }

  /** Rejects everything queued or in flight, and every later batch, with `err`. */
  failAll(err: BirchError): void {
    this.#failure = err;
    for (const e of [...this.#inflight.values(), ...this.#waiting]) e.reject(err);
    this.#inflight.clear();
    this.#waiting.length = 0;
    this.#unsent.length = 0;
    this.#queuedBytes = 0;
    this.#checkIdle();
  }

  get idle(): boolean {
    return this.#inflight.size === 0 && this.#waiting.length === 0;
  }

  whenIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #checkIdle(): void {
    if (!this.idle) return;
    this.#onBusyChange(false);
    for (const w of this.#idleWaiters.splice(0)) w();
  }
}
