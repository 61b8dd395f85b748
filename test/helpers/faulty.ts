// A directory whose files fail on command: the Nth write/writev/sync (counted across all files)
// throws EIO, once or from then on. Built on the in-memory backend.
import { MemoryDirectory, type FileBackend } from '../../engine/index.js';

export type FaultOp = 'write' | 'sync';

export class FaultyDirectory extends MemoryDirectory {
  counts = { write: 0, sync: 0 };
  failAt: { op: FaultOp; n: number; sticky: boolean } | undefined;

  #maybeFail(op: FaultOp): void {
    this.counts[op]++;
    const f = this.failAt;
    if (f === undefined || f.op !== op) return;
    if (this.counts[op] === f.n || (f.sticky && this.counts[op] > f.n)) {
      const err = new Error(`injected EIO on ${op} #${this.counts[op]}`) as NodeJS.ErrnoException;
      err.code = 'EIO';
      throw err;
    }
  }

  override open(name: string, opts: { create: boolean }): FileBackend {
    const inner = super.open(name, opts);
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
}
