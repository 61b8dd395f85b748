// A simulated disk for power-loss tests. Every file keeps what has been made durable (by sync)
// apart from the writes since; a crash image keeps the durable state plus any subset of those
// later writes, each applied whole, not at all, or torn at a 512-byte sector boundary (the OS
// may write dirty pages back in any order, and a power cut can stop a write part-way). File
// creation, rename and removal become durable at syncDirectory.
import { BirchError, MemoryDirectory, type DirectoryBackend, type FileBackend } from '../../api/index.js';
import type { HeldLock, MemoryFile } from '../../pager/backend.js';

const SECTOR = 512;

interface PendingWrite {
  pos: number;
  data: Buffer;
}

class SimFile {
  durable: Buffer = Buffer.alloc(0);
  durableSize = 0;
  pending: (PendingWrite | { setLength: number })[] = [];
  /** What reads see: durable plus every pending change, in order. */
  current: Buffer = Buffer.alloc(0);
  currentSize = 0;

  static #apply(buf: Buffer, size: number, w: PendingWrite | { setLength: number }): [Buffer, number] {
    if ('setLength' in w) {
      let b = buf;
      if (w.setLength > b.length) {
        b = Buffer.alloc(w.setLength);
        buf.copy(b, 0, 0, size);
      } else b.fill(0, w.setLength, size);
      return [b, w.setLength];
    }
    let b = buf;
    const end = w.pos + w.data.length;
    if (end > b.length) {
      b = Buffer.alloc(Math.max(end, b.length * 2));
      buf.copy(b, 0, 0, size);
    }
    w.data.copy(b, w.pos);
    return [b, Math.max(size, end)];
  }

  change(w: PendingWrite | { setLength: number }): void {
    this.pending.push(w);
    [this.current, this.currentSize] = SimFile.#apply(this.current, this.currentSize, w);
  }

  sync(): void {
    for (const w of this.pending) [this.durable, this.durableSize] = SimFile.#apply(this.durable, this.durableSize, w);
    this.pending = [];
  }

  /** The file after a crash: durable, plus pending changes kept by `keep` (whole, torn, or dropped). */
  crashImage(keep: (index: number, sectors: number) => number): Buffer {
    let buf: Buffer = Buffer.from(this.durable.subarray(0, this.durableSize));
    let size = this.durableSize;
    this.pending.forEach((w, i) => {
      if ('setLength' in w) {
        if (keep(i, 1) > 0) [buf, size] = SimFile.#apply(buf, size, w);
        return;
      }
      const sectors = Math.ceil(w.data.length / SECTOR);
      const kept = Math.min(sectors, keep(i, sectors));
      if (kept > 0) [buf, size] = SimFile.#apply(buf, size, { pos: w.pos, data: w.data.subarray(0, Math.min(w.data.length, kept * SECTOR)) });
    });
    return buf.subarray(0, size);
  }
}

export interface CrashOp {
  kind: 'write' | 'sync' | 'syncDirectory' | 'setLength';
  file: string;
}

export class CrashDirectory implements DirectoryBackend {
  readonly path = 'crash-sim';
  readonly #files = new Map<string, SimFile>();
  /** Names as the directory durably records them (after syncDirectory). */
  #durableNames = new Map<string, SimFile>();
  #locked = false;
  /** Called after every write, sync and directory sync: a crash may happen at any of them. */
  onOp: ((op: CrashOp) => void) | undefined;

  open(name: string, opts: { create: boolean }): FileBackend {
    let f = this.#files.get(name);
    if (f === undefined) {
      if (!opts.create) throw new BirchError('IO', `no file ${name}`);
      f = new SimFile();
      this.#files.set(name, f);
    }
    const file = f;
    const op = (kind: CrashOp['kind']): void => this.onOp?.({ kind, file: name });
    return {
      read: (pos, buf, offset = 0, length = buf.length - offset) => {
        buf.fill(0, offset, offset + length);
        if (pos < file.currentSize) file.current.copy(buf, offset, pos, Math.min(file.currentSize, pos + length));
      },
      write: (pos, buf) => {
        file.change({ pos, data: Buffer.from(buf) });
        op('write');
      },
      writev: (pos, bufs) => {
        file.change({ pos, data: Buffer.concat(bufs as Buffer[]) });
        op('write');
      },
      sync: () => {
        file.sync();
        op('sync');
      },
      length: () => file.currentSize,
      setLength: (n) => {
        file.change({ setLength: n });
        op('setLength');
      },
      close: () => undefined,
    };
  }
  exists(name: string): boolean {
    return this.#files.has(name);
  }
  list(): string[] {
    return [...this.#files.keys()];
  }
  remove(name: string): void {
    this.#files.delete(name);
  }
  rename(from: string, to: string): void {
    const f = this.#files.get(from);
    if (f === undefined) throw new BirchError('IO', `no file ${from}`);
    this.#files.delete(from);
    this.#files.set(to, f);
  }
  syncDirectory(): void {
    this.#durableNames = new Map(this.#files);
    this.onOp?.({ kind: 'syncDirectory', file: '' });
  }
  lock(): HeldLock {
    if (this.#locked) throw new BirchError('DB_LOCKED', 'already open');
    this.#locked = true;
    return { kind: 'memory', release: () => (this.#locked = false) };
  }

  /**
   * What a power cut now would leave: the durably named files, each its durable content plus the
   * pending changes `keep` chooses. keep(file, index, sectors) returns how many leading sectors of
   * that change reach the disk (0: none; >= sectors: all).
   */
  crashImage(keep: (file: string, index: number, sectors: number) => number): MemoryDirectory {
    const dir = new MemoryDirectory('crashed');
    for (const [name, f] of this.#durableNames) {
      const content = f.crashImage((i, s) => keep(name, i, s));
      const mf = dir.open(name, { create: true }) as MemoryFile;
      mf.write(0, content);
      mf.setLength(content.length);
    }
    return dir;
  }
}
