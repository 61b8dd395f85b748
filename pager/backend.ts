// The one narrow interface through which birchdb touches storage. Every layer above uses only
// these calls, so tests can swap in the in-memory implementation (and, later, fault-injecting and
// crash-simulating ones) without touching engine code.
//
// All calls are synchronous. Each runs on a thread of its own whose next step waits for it anyway:
// the writer thread's journal write and fdatasync come before a commit is acknowledged, and the
// checkpointer thread's data-file writes and syncs before its meta. Neither blocks the other, nor
// the main thread that serves reads (the lesson: a writer that waits for the data file's sync
// stalls every commit).
import fs from 'node:fs';
import path from 'node:path';
import { BirchError } from '../platform/errors.js';
import { lockDirectory, resolveLockMode, type HeldLock, type LockMode } from '../platform/directory-lock.js';

export interface FileBackend {
  /**
   * Reads `length` bytes at `position` into `buf` from `offset` (default: all of `buf`); bytes past
   * the end of the file read as zero. The offset lets a reader fill a frame of a larger buffer in place.
   */
  read(position: number, buf: Buffer, offset?: number, length?: number): void;
  /** Writes `buf` at `position`. Like writev, it keeps no reference: the caller may reuse `buf`. */
  write(position: number, buf: Buffer): void;
  /** Writes the buffers back to back starting at `position`, as one vectored write where supported. */
  writev(position: number, bufs: readonly Buffer[]): void;
  /** Makes every completed write durable (fdatasync). */
  sync(): void;
  length(): number;
  setLength(bytes: number): void;
  close(): void;
}

/** A directory lock held by one handle; `kind` names the mechanism (stats().implementation.lock). */
export type { HeldLock } from '../platform/directory-lock.js';

/** A directory of named files: the data file, journal segments and the lock file. */
export interface DirectoryBackend {
  readonly path: string;
  /** readOnly: the caller only reads (a reader thread's view); implementations may ignore it. */
  open(name: string, opts: { create: boolean; readOnly?: boolean }): FileBackend;
  exists(name: string): boolean;
  list(): string[];
  remove(name: string): void;
  /** Atomically replaces `to` with `from`. */
  rename(from: string, to: string): void;
  /** Makes created, renamed and removed names durable. */
  syncDirectory(): void;
  /** Takes an exclusive lock on the directory for this handle; throws DB_LOCKED if another holds it. */
  lock(): HeldLock;
}

// ----------------------------------------------------------------------------------------------
// Real files

class NodeFile implements FileBackend {
  #fd: number;
  constructor(fd: number) {
    this.#fd = fd;
  }
  read(position: number, buf: Buffer, offset = 0, length = buf.length - offset): void {
    let done = 0;
    while (done < length) {
      const n = fs.readSync(this.#fd, buf, offset + done, length - done, position + done);
      if (n === 0) {
        buf.fill(0, offset + done, offset + length);
        return;
      }
      done += n;
    }
  }
  write(position: number, buf: Buffer): void {
    let done = 0;
    while (done < buf.length) done += fs.writeSync(this.#fd, buf, done, buf.length - done, position + done);
  }
  writev(position: number, bufs: readonly Buffer[]): void {
    const total = bufs.reduce((s, b) => s + b.length, 0);
    let done = fs.writevSync(this.#fd, bufs as Buffer[], position);
    if (done === total) return;
    // A short vectored write: finish the rest buffer by buffer.
    let skip = done;
    for (const b of bufs) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      this.write(position + done, b.subarray(skip));
      done += b.length - skip;
      skip = 0;
    }
  }
  sync(): void {
    fs.fdatasyncSync(this.#fd);
  }
  length(): number {
    return fs.fstatSync(this.#fd).size;
  }
  setLength(bytes: number): void {
    fs.ftruncateSync(this.#fd, bytes);
  }
  close(): void {
    fs.closeSync(this.#fd);
  }
}

export class NodeDirectory implements DirectoryBackend {
  readonly path: string;
  readonly #lockOption: LockMode | undefined;
  /**
   * `lock` chooses the directory lock (platform/directory-lock.ts); 'auto' yields to the BIRCH_LOCK environment
   * variable, read when the lock is taken (threads that never lock never read it).
   */
  constructor(dir: string, opts: { lock?: LockMode } = {}) {
    this.path = path.resolve(dir);
    this.#lockOption = opts.lock;
    try {
      fs.mkdirSync(this.path, { recursive: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTDIR') {
        throw new BirchError('IO', `cannot open ${this.path} as a database: it, or a folder on its path, is a file, not a directory`, { cause: err, site: { file: this.path } });
      }
      throw new BirchError('IO', `cannot create the database directory ${this.path}: ${(err as Error).message}`, { cause: err, site: { file: this.path } });
    }
  }
  open(name: string, opts: { create: boolean; readOnly?: boolean }): FileBackend {
    const mode = opts.readOnly === true ? fs.constants.O_RDONLY : fs.constants.O_RDWR;
    const fd = fs.openSync(path.join(this.path, name), opts.create ? mode | fs.constants.O_CREAT : mode, 0o644);
    return new NodeFile(fd);
  }
  exists(name: string): boolean {
    return fs.existsSync(path.join(this.path, name));
  }
  list(): string[] {
    return fs.readdirSync(this.path);
  }
  remove(name: string): void {
    fs.rmSync(path.join(this.path, name), { force: true });
  }
  rename(from: string, to: string): void {
    fs.renameSync(path.join(this.path, from), path.join(this.path, to));
  }
  syncDirectory(): void {
    const fd = fs.openSync(this.path, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  lock(): HeldLock {
    return lockDirectory(this.path, resolveLockMode(this.#lockOption));
  }
}

// ----------------------------------------------------------------------------------------------
// Memory: a directory whose files live in Buffers. It distinguishes nothing between written and
// synced data; crash simulation builds on top of it.

export class MemoryFile implements FileBackend {
  data: Buffer = Buffer.alloc(0);
  size = 0;
  closed = false;
  #ensure(bytes: number): void {
    if (bytes <= this.data.length) return;
    const grown = Buffer.alloc(Math.max(bytes, this.data.length * 2, 4096));
    this.data.copy(grown, 0, 0, this.size);
    this.data = grown;
  }
  read(position: number, buf: Buffer, offset = 0, length = buf.length - offset): void {
    buf.fill(0, offset, offset + length);
    if (position < this.size) this.data.copy(buf, offset, position, Math.min(this.size, position + length));
  }
  write(position: number, buf: Buffer): void {
    this.#ensure(position + buf.length);
    buf.copy(this.data, position);
    this.size = Math.max(this.size, position + buf.length);
  }
  writev(position: number, bufs: readonly Buffer[]): void {
    let p = position;
    for (const b of bufs) {
      this.write(p, b);
      p += b.length;
    }
  }
  sync(): void {}
  length(): number {
    return this.size;
  }
  setLength(bytes: number): void {
    this.#ensure(bytes);
    if (bytes < this.size) this.data.fill(0, bytes, this.size);
    this.size = bytes;
  }
  close(): void {
    this.closed = true;
  }
}

export class MemoryDirectory implements DirectoryBackend {
  readonly path: string;
  readonly files = new Map<string, MemoryFile>();
  #locked = false;
  constructor(name = 'memory') {
    this.path = `memory:${name}`;
  }
  open(name: string, opts: { create: boolean }): FileBackend {
    let f = this.files.get(name);
    if (f === undefined) {
      if (!opts.create) throw new BirchError('IO', `no file ${name} in ${this.path}`);
      f = new MemoryFile();
      this.files.set(name, f);
    }
    f.closed = false;
    return f;
  }
  exists(name: string): boolean {
    return this.files.has(name);
  }
  list(): string[] {
    return [...this.files.keys()];
  }
  remove(name: string): void {
    this.files.delete(name);
  }
  rename(from: string, to: string): void {
    const f = this.files.get(from);
    if (f === undefined) throw new BirchError('IO', `no file ${from} in ${this.path}`);
    this.files.delete(from);
    this.files.set(to, f);
  }
  syncDirectory(): void {}
  /** A deep copy of every file, as a crash would leave them if all writes had reached the disk. */
  clone(name = 'clone'): MemoryDirectory {
    const c = new MemoryDirectory(name);
    for (const [n, f] of this.files) {
      const copy = new MemoryFile();
      copy.data = Buffer.from(f.data.subarray(0, f.size));
      copy.size = f.size;
      c.files.set(n, copy);
    }
    return c;
  }
  lock(): HeldLock {
    if (this.#locked) throw new BirchError('DB_LOCKED', `database ${this.path} is already open`);
    this.#locked = true;
    return { kind: 'memory', release: () => (this.#locked = false) };
  }
}
