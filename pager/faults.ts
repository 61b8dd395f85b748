// A directory whose files fail on command, for tests of I/O failure: the Nth write/writev or sync
// (counted across all files) throws EIO or ENOSPC, once or from then on. It wraps any
// DirectoryBackend, real or in memory. The counters may live in shared memory, so that the writer
// and checkpointer threads of one database count together: "the Nth write" is the database's.
import { isMainThread } from 'node:worker_threads';
import type { DirectoryBackend, FileBackend, HeldLock } from './backend.js';

export type FaultOp = 'write' | 'sync';

export interface FaultPlan {
  op: FaultOp;
  /** Fail the nth operation of that kind (1-based), counted from when the plan is set. */
  n: number;
  /** Keep failing every later operation of that kind. */
  sticky: boolean;
  /** The errno to fail with (default EIO). */
  code?: 'EIO' | 'ENOSPC';
  /**
   * What happens there: the operation throws (default), or the thread doing it ends on the spot,
   * as a thread that crashed would ('exit-thread': worker threads only; it triggers on that
   * thread's first operation at or past the nth).
   */
  action?: 'error' | 'exit-thread';
  /** Only this thread's operations trigger the plan (all threads still count). */
  thread?: 'writer' | 'checkpointer';
  /**
   * Where the database counts its operations (FAULT_COUNTERS_BYTES, zeroed): give one to read the
   * counts after the run (faultCounts). Every thread of the database counts into it.
   */
  counters?: SharedArrayBuffer;
}

/** Operations counted in fault counters: writes and syncs. */
export function faultCounts(counters: ArrayBufferLike): { write: number; sync: number } {
  const c = new Int32Array(counters);
  return { write: Atomics.load(c, WRITES), sync: Atomics.load(c, SYNCS) };
}

export const FAULT_COUNTERS_BYTES = 3 * 4;
const WRITES = 0;
const SYNCS = 1;
/** Where the plan's count starts (the op's counter when the plan was set). */
const BASE = 2;

export class FaultyDirectory implements DirectoryBackend {
  readonly inner: DirectoryBackend;
  readonly #counters: Int32Array;
  readonly #thread: string | undefined;
  #plan: FaultPlan | undefined;

  /**
   * `counters`: FAULT_COUNTERS_BYTES of (shared) memory, zeroed; a fresh one if omitted.
   * `thread`: which of the database's threads uses this directory (for plans with `thread`).
   */
  constructor(inner: DirectoryBackend, plan?: FaultPlan, counters: SharedArrayBuffer | ArrayBuffer = new ArrayBuffer(FAULT_COUNTERS_BYTES), thread?: string) {
    this.inner = inner;
    this.#counters = new Int32Array(counters);
    this.#plan = plan;
    this.#thread = thread;
  }

  get path(): string {
    return this.inner.path;
  }

  /** Operations so far, of each kind (across every directory sharing the counters). */
  get counts(): { write: number; sync: number } {
    return faultCounts(this.#counters.buffer);
  }

  setPlan(plan: FaultPlan | undefined): void {
    this.#plan = plan;
    if (plan !== undefined) Atomics.store(this.#counters, BASE, Atomics.load(this.#counters, plan.op === 'write' ? WRITES : SYNCS));
  }

  #maybeFail(op: FaultOp): void {
    const count = Atomics.add(this.#counters, op === 'write' ? WRITES : SYNCS, 1) + 1;
    const f = this.#plan;
    if (f === undefined || f.op !== op) return;
    if (f.thread !== undefined && f.thread !== this.#thread) return;
    const nth = count - Atomics.load(this.#counters, BASE);
    if (f.action === 'exit-thread') {
      if (nth < f.n) return;
      if (isMainThread) throw new Error('an exit-thread fault needs the database on worker threads (files on disk)');
      // Ends this worker thread only, running no more of its JavaScript.
      process.exit(70);
    }
    if (nth === f.n || (f.sticky && nth > f.n)) {
      const code = f.code ?? 'EIO';
      const err = new Error(`injected ${code} on ${op} #${count}`) as NodeJS.ErrnoException;
      err.code = code;
      throw err;
    }
  }

  open(name: string, opts: { create: boolean; readOnly?: boolean }): FileBackend {
    const inner = this.inner.open(name, opts);
    const fail = (op: FaultOp): void => this.#maybeFail(op);
    return {
      read: (p, b, o, n) => inner.read(p, b, o, n),
      write: (p, b) => {
        fail('write');
        inner.write(p, b);
      },
      writev: (p, bs) => {
        fail('write');
        inner.writev(p, bs);
      },
      sync: () => {
        fail('sync');
        inner.sync();
      },
      length: () => inner.length(),
      setLength: (n) => inner.setLength(n),
      close: () => inner.close(),
    };
  }
  exists(name: string): boolean {
    return this.inner.exists(name);
  }
  list(): string[] {
    return this.inner.list();
  }
  remove(name: string): void {
    this.inner.remove(name);
  }
  rename(from: string, to: string): void {
    this.inner.rename(from, to);
  }
  syncDirectory(): void {
    this.inner.syncDirectory();
  }
  lock(): HeldLock {
    return this.inner.lock();
  }
}
