// A directory whose files fail on command, for tests of I/O failure (and, later, the sweep of
// issue 5): the Nth write/writev or sync (counted across all files) throws EIO, once or from
// then on. It wraps any DirectoryBackend, real or in memory.
import type { DirectoryBackend, FileBackend } from './backend.js';

export type FaultOp = 'write' | 'sync';

export interface FaultPlan {
  op: FaultOp;
  /** Fail the nth operation of that kind (1-based), counted from when the plan is set. */
  n: number;
  /** Keep failing every later operation of that kind. */
  sticky: boolean;
  /** The errno to fail with (default EIO). */
  code?: 'EIO' | 'ENOSPC';
}

export class FaultyDirectory implements DirectoryBackend {
  readonly inner: DirectoryBackend;
  readonly counts = { write: 0, sync: 0 };
  #plan: (FaultPlan & { base: number }) | undefined;

  constructor(inner: DirectoryBackend, plan?: FaultPlan) {
    this.inner = inner;
    if (plan !== undefined) this.setPlan(plan);
  }

  get path(): string {
    return this.inner.path;
  }

  setPlan(plan: FaultPlan | undefined): void {
    this.#plan = plan === undefined ? undefined : { ...plan, base: this.counts[plan.op] };
  }

  #maybeFail(op: FaultOp): void {
    this.counts[op]++;
    const f = this.#plan;
    if (f === undefined || f.op !== op) return;
    const nth = this.counts[op] - f.base;
    if (nth === f.n || (f.sticky && nth > f.n)) {
      const code = f.code ?? 'EIO';
      const err = new Error(`injected ${code} on ${op} #${this.counts[op]}`) as NodeJS.ErrnoException;
      err.code = code;
      throw err;
    }
  }

  open(name: string, opts: { create: boolean }): FileBackend {
    const inner = this.inner.open(name, opts);
    const fail = (op: FaultOp): void => this.#maybeFail(op);
    return {
      read: (p, b) => inner.read(p, b),
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
      syncAsync: async () => {
        fail('sync');
        await inner.syncAsync();
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
  lock(): { release(): void } {
    return this.inner.lock();
  }
}
