// The data file: a file header page, two meta pages, then tree, overflow and free-space bitmap
// pages. Only checkpoints write it (db/checkpoint.ts), in this order: the new pages (all of them
// pages no valid meta and no reader can reach), a data-file sync, the meta of the new checkpoint
// in its slot, a second sync. Every thread reads pages through readVerifiedPage.
//
// Why the order is safe: a crash before the meta is durable leaves the previous metas, whose
// pages were not touched; a torn meta fails its checksum and the other slot is used, whose pages
// were not touched either, because pages freed by checkpoint c are reused only once both metas
// are at c or later (freelist.ts, FreeList.release).
import { BirchError, CorruptionError, FatalIoError } from '../platform/errors.js';
import type { DirectoryBackend, FileBackend } from './backend.js';
import { checkpointId, type PageNo } from './ids.js';
import { META_PAGES, checkFileHeader, decodeMeta, encodeFileHeader, encodeMeta, metaPageOf, type DbState, type RootsCheck } from './meta-format.js';
import { PAGE_SIZE, pageOffsetBytes, verifyPage } from './page-format.js';

export const DATA_FILE = 'data.birch';

/** The data file grows by this fraction of its size, clamped to [GROW_MIN, GROW_MAX] bytes. */
const GROW_FRACTION = 1 / 8;
const GROW_MIN_BYTES = 1 << 20;
const GROW_MAX_BYTES = 64 << 20;

/**
 * Page `no` of the data file, read from `file` and verified against its checksum: the one way
 * every thread reads a page from disk. A failed read is a typed IO error; a bad page a
 * CorruptionError naming it.
 */
export function readVerifiedPage(file: FileBackend, no: PageNo): Buffer {
  const buf = readPages(file, no, 1);
  verifyPage(buf, no, DATA_FILE);
  return buf;
}

/** Pages one read of VerifiedRuns takes. */
const VERIFIED_RUN_PAGES = 64;

/**
 * Pages of the data file read from disk in runs and verified one by one as they are asked for:
 * for a walk that reads most pages of a file in about the order they lie in (the verifier: a
 * checkpoint writes a tree's leaves in key order). A pread took about 12 us on the team's VM
 * whatever its size up to a few pages, and the verifier spent 0.8 s of 1.0 in them over 67,000
 * pages: one read per run instead. A page of the run is verified when it is asked for, never
 * before, so the pages around it (free, or being written) are never looked at. A run that cannot
 * be read whole (a file shorter than its metas say) falls back to reading the one page.
 */
export class VerifiedRuns {
  readonly #file: FileBackend;
  readonly #pageCount: number;
  readonly #run = Buffer.allocUnsafeSlow(VERIFIED_RUN_PAGES * PAGE_SIZE);
  #first = -1;
  #count = 0;

  constructor(file: FileBackend, pageCount: number) {
    this.#file = file;
    this.#pageCount = pageCount;
  }

  /** Page `no`, a copy of its own, verified; a bad page is a CorruptionError naming it. */
  read(no: PageNo): Buffer {
    let k = no - this.#first;
    if (k < 0 || k >= this.#count) {
      const count = Math.max(1, Math.min(VERIFIED_RUN_PAGES, this.#pageCount - no));
      this.#count = 0;
      try {
        this.#file.read(pageOffsetBytes(no), this.#run, 0, count * PAGE_SIZE);
      } catch {
        return readVerifiedPage(this.#file, no);
      }
      this.#first = no;
      this.#count = count;
      k = 0;
    }
    const page = Buffer.allocUnsafe(PAGE_SIZE);
    this.#run.copy(page, 0, k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
    verifyPage(page, no, DATA_FILE);
    return page;
  }
}

/** Pages first .. first + count - 1 in one read, unverified; a failed read is a typed IO error. */
function readPages(file: FileBackend, first: number, count: number): Buffer {
  const buf = Buffer.allocUnsafeSlow(count * PAGE_SIZE);
  try {
    file.read(pageOffsetBytes(first), buf);
  } catch (err) {
    const which = count === 1 ? `page ${first}` : `pages ${first}..${first + count - 1}`;
    throw new BirchError('IO', `cannot read ${which} of ${DATA_FILE}`, { cause: err, site: { file: DATA_FILE, pageNo: first } });
  }
  return buf;
}

/** The two metas of a data file: the newest valid one, and the other if it is valid too. */
export interface Metas {
  newest: DbState;
  older: DbState | undefined;
}

/** Reads and checks the file header and both metas; throws if the file is not usable. */
export function readMetas(file: FileBackend, checkRoots?: RootsCheck): Metas {
  const header = Buffer.alloc(PAGE_SIZE);
  file.read(0, header);
  checkFileHeader(header, DATA_FILE);
  const valid: DbState[] = [];
  const problems: string[] = [];
  for (const slot of META_PAGES) {
    const buf = Buffer.alloc(PAGE_SIZE);
    file.read(pageOffsetBytes(slot), buf);
    const meta = decodeMeta(buf, slot, DATA_FILE, checkRoots);
    if (meta instanceof CorruptionError) problems.push(meta.message);
    else valid.push(meta);
  }
  valid.sort((a, b) => b.checkpointId - a.checkpointId);
  const newest = valid[0];
  if (newest === undefined) throw new CorruptionError(`neither meta page is valid: ${problems.join('; ')}`, { file: DATA_FILE });
  return { newest, older: valid[1] };
}

/** True if both metas describe the same trees (so every page free in the newest is free in both). */
export function metasSettled(m: Metas): boolean {
  const o = m.older;
  return o !== undefined && o.seq === m.newest.seq && o.pageCount === m.newest.pageCount && o.freeRoot === m.newest.freeRoot && o.roots.equals(m.newest.roots);
}

/**
 * Creates the data file under a temporary name and renames it into place once complete, so a
 * crash during creation leaves either no data file (created afresh next time) or a whole one.
 */
export function createDataFile(dir: DirectoryBackend, initial: DbState): void {
  const tmp = `${DATA_FILE}.creating`;
  const file = dir.open(tmp, { create: true });
  try {
    file.setLength(0);
    file.write(0, encodeFileHeader());
    file.write(pageOffsetBytes(META_PAGES[0] as number), encodeMeta(initial));
    file.sync();
  } finally {
    file.close();
  }
  dir.rename(tmp, DATA_FILE);
  dir.syncDirectory();
}

export interface WriteStats {
  pages: number;
  runs: number;
}

/** The data file as a checkpoint writes it. */
export class DataFile {
  readonly file: FileBackend;
  metas: Metas;
  /** The file's length, kept here so that stats need no fstat. */
  fileBytes: number;
  #closed = false;

  private constructor(file: FileBackend, metas: Metas) {
    this.file = file;
    this.metas = metas;
    this.fileBytes = file.length();
  }

  /** Opens the data file of `dir` for writing; it must exist (recovery creates it). `checkRoots` judges each meta's roots. */
  static open(dir: DirectoryBackend, checkRoots?: RootsCheck): DataFile {
    const file = dir.open(DATA_FILE, { create: false });
    try {
      return new DataFile(file, readMetas(file, checkRoots));
    } catch (err) {
      file.close();
      throw err;
    }
  }

  get state(): DbState {
    return this.metas.newest;
  }

  readPage(no: PageNo): Buffer {
    if (this.#closed) throw new BirchError('DB_CLOSED', 'the database is closed');
    return readVerifiedPage(this.file, no);
  }

  /**
   * Pages first .. first + count - 1 read with one read; the `wanted` ones verified and returned
   * (views of one buffer). The others are not looked at: a free page between wanted ones may hold
   * anything (a torn write, zeros never written).
   */
  readRun(first: number, count: number, wanted: readonly number[]): Map<number, Buffer> {
    if (this.#closed) throw new BirchError('DB_CLOSED', 'the database is closed');
    const buf = readPages(this.file, first, count);
    const pages = new Map<number, Buffer>();
    for (const no of wanted) {
      const page = buf.subarray((no - first) * PAGE_SIZE, (no - first + 1) * PAGE_SIZE);
      verifyPage(page, no, DATA_FILE);
      pages.set(no, page);
    }
    return pages;
  }

  /**
   * Writes sealed page images, ascending by page number: each stretch of consecutive page numbers
   * in one vectored write. The file is first grown to `pageCount` pages (in steps, so that most
   * writes need no size change).
   */
  writePages(pages: readonly (readonly [number, Buffer])[], pageCount: number): WriteStats {
    let runs = 0;
    try {
      this.#growTo(pageCount);
      let k = 0;
      while (k < pages.length) {
        let end = k + 1;
        while (end < pages.length && (pages[end] as [number, Buffer])[0] === (pages[end - 1] as [number, Buffer])[0] + 1) end++;
        const bufs: Buffer[] = [];
        for (let i = k; i < end; i++) bufs.push((pages[i] as [number, Buffer])[1]);
        this.file.writev(pageOffsetBytes((pages[k] as [number, Buffer])[0]), bufs);
        runs++;
        k = end;
      }
    } catch (err) {
      throw new FatalIoError(`writing ${DATA_FILE} failed`, err, { file: DATA_FILE });
    }
    return { pages: pages.length, runs };
  }

  #growTo(pages: number): void {
    const need = pageOffsetBytes(pages);
    const have = this.fileBytes;
    if (need <= have) return;
    const step = Math.min(GROW_MAX_BYTES, Math.max(GROW_MIN_BYTES, Math.floor(have * GROW_FRACTION)));
    this.file.setLength(Math.max(need, Math.ceil((have + step) / GROW_MIN_BYTES) * GROW_MIN_BYTES));
    this.fileBytes = this.file.length();
  }

  sync(): void {
    try {
      this.file.sync();
    } catch (err) {
      throw new FatalIoError(`syncing ${DATA_FILE} failed`, err, { file: DATA_FILE });
    }
  }

  /** Writes the meta of `state` into its slot (the caller syncs before and after). */
  writeMeta(state: DbState): void {
    const meta = encodeMeta(state);
    try {
      this.file.write(pageOffsetBytes(metaPageOf(state.checkpointId)), meta);
    } catch (err) {
      throw new FatalIoError(`writing the meta page of ${DATA_FILE} failed`, err, { file: DATA_FILE });
    }
    this.metas = { newest: state, older: this.metas.newest };
  }

  /**
   * Makes both metas describe the newest trees (a meta of the next checkpoint id with the same
   * state, then a sync), so that every page free in them is free in both. Used at open, when the
   * free list read from disk cannot say which of its pages the older meta still reaches, and at
   * close, so that no journal record is needed any more.
   */
  settle(): void {
    if (metasSettled(this.metas)) return;
    this.writeMeta({ ...this.metas.newest, checkpointId: checkpointId(this.metas.newest.checkpointId + 1) });
    this.sync();
  }

  /** Cuts the file to `pageCount` pages (at close: the growth steps and a free tail go). */
  truncate(pageCount: number): void {
    try {
      this.file.setLength(pageOffsetBytes(pageCount));
      this.fileBytes = pageOffsetBytes(pageCount);
    } catch (err) {
      throw new FatalIoError(`truncating ${DATA_FILE} failed`, err, { file: DATA_FILE });
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.file.close();
  }
}
