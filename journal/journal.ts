// The write-ahead journal: one record per group commit, written with one vectored write and made
// durable (fdatasync) before any of its batches is acknowledged; scanned on open; read back by
// the first checkpoint after opening (for the batches recovery replayed; later checkpoints merge
// the batches from the memory they were encoded in); recycled once two checkpoints cover its records.
//
// Recovery rules (scanJournal; layout in format.ts):
//  - segments are read in segSeq order; within a segment, records are read from the first record
//    boundary after the header until the first invalid one (bad magic, checksum, segSeq, sizes, or
//    a body that does not decompress to its stated size): that is the torn or corrupt tail;
//  - records up to the checkpoint's seq are skipped; after it, only consecutive sequence numbers
//    are accepted, so a stale record from a segment's earlier use is never replayed;
//  - writing always resumes in a fresh (or recycled, re-sequenced) segment, never after a tail
//    that recovery rejected, so rejected bytes can never become part of a valid chain later; and
//    the segments recovery accepted records from are synced first, so that nothing it replayed
//    (which a crashed process may have written without syncing) can go missing under later,
//    acknowledged records.
import { BirchError, CorruptionError, FatalIoError } from '../platform/errors.js';
import type { DirectoryBackend, FileBackend } from '../pager/backend.js';
import { readU32 } from '../pager/bytes.js';
import { checksum } from '../pager/checksum.js';
import { compressInto, decompress } from './codec.js';
import {
  JOURNAL_SEED, REC_FLAG_STORED, RECORD_HEADER_SIZE, SEGMENT_DATA_OFFSET, SEGMENT_HEADER_END, alignRecord, decodeRecordHeader, decodeSegmentHeader,
  encodeRecordHeader, encodeSegmentHeader, forEachOp, parseSegmentName, segmentName, type RecordHeader,
} from './format.js';

/** Where a record is, and what it holds: enough for a checkpoint to read it back. */
export interface RecordLoc {
  segment: string;
  segSeq: number;
  offset: number;
  length: number;
  firstSeq: number;
  lastSeq: number;
}

/** A segment file and what its current use holds. */
export interface SegmentInfo {
  name: string;
  /** 0: the header is not intact (never held an acknowledged record); reusable. */
  segSeq: number;
  size: number;
  /** The highest sequence number of a record in its current use (0: none). */
  lastSeq: number;
}

export interface JournalOptions {
  /** Size of each preallocated segment file. A larger record gets a segment of its own size. */
  segmentBytes: number;
  /** fdatasync each record before append() returns. */
  sync: boolean;
}

export interface JournalStats {
  records: number;
  ops: number;
  rawBytes: number;
  storedBytes: number;
  bytesWritten: number;
  syncs: number;
  segments: number;
  segmentsCreated: number;
  segmentsRecycled: number;
  /** Records written uncompressed because recent commits did not compress (adaptive compression). */
  storedRecords: number;
}

const ZEROS = Buffer.alloc(1 << 16);
const PREALLOC_WRITE_BYTES = 4096;

/**
 * LZ4 when it pays. Compressing costs CPU before the record can be written; it saves sync time in
 * proportion to the bytes it removes, and disk bytes. Measured on the team's machine (2-core VM,
 * ext4 on virtio): write+fdatasync costs about 0.9 ns per byte past its fixed ~0.1 ms; the codec
 * (codec.ts, TypeScript) about 2.1 ns per byte on compressible data, and it gives up on
 * incompressible data within 0.02 ns per byte. So compression is kept for the journal bytes it
 * saves where data compresses well: the journal keeps an average of the ratio achieved and stores
 * bodies as they are while it is below MIN_RATIO, compressing one record in PROBE_EVERY to notice
 * when the data becomes compressible again.
 */
class AdaptiveCompressor {
  static readonly MIN_RATIO = 2;
  static readonly PROBE_EVERY = 16;
  #ratio = 4;
  #sinceProbe = 0;
  /** Reused for every record: the body is written before the next record is encoded. */
  #out = Buffer.allocUnsafeSlow(0);

  /** The record body: `raw` itself (stored) or a view of this compressor's buffer, valid until the next call. */
  encode(raw: Buffer): Buffer {
    if (this.#ratio < AdaptiveCompressor.MIN_RATIO && ++this.#sinceProbe < AdaptiveCompressor.PROBE_EVERY) return raw;
    this.#sinceProbe = 0;
    if (this.#out.length < raw.length) this.#out = Buffer.allocUnsafeSlow(Math.max(raw.length, 2 * this.#out.length));
    const end = compressInto(raw, this.#out, 0, raw.length - 1);
    this.#ratio = 0.75 * this.#ratio + 0.25 * (raw.length / Math.max(1, end < 0 ? raw.length : end));
    return end < 0 ? raw : this.#out.subarray(0, end);
  }
}

interface Segment extends SegmentInfo {
  file: FileBackend;
}

/** The writing side of the journal; one per database, on the writer thread. */
export class JournalWriter {
  readonly #dir: DirectoryBackend;
  readonly #opts: JournalOptions;
  readonly #segments: Segment[] = [];
  #current: Segment | undefined;
  #pos = 0;
  #unsynced = false;
  /** Records up to this sequence number are in both metas' trees: their segments may be reused. */
  #releasedSeq = 0;
  readonly stats: JournalStats = {
    records: 0, ops: 0, rawBytes: 0, storedBytes: 0, bytesWritten: 0, syncs: 0, segments: 0, segmentsCreated: 0, segmentsRecycled: 0, storedRecords: 0,
  };
  readonly #compressor = new AdaptiveCompressor();
  #scratch = Buffer.allocUnsafeSlow(0);
  readonly #header = Buffer.alloc(RECORD_HEADER_SIZE);
  #closed = false;
  /** The last batch of the last record written, and of the last record a completed sync covers. */
  #appendedSeq = 0;
  #syncedSeq = 0;
  /** The next segment, being preallocated while the writer is idle (prepareSpare). */
  #spare: { name: string; file: FileBackend; written: number } | undefined;

  /** `segments`: what recovery found (scanJournal); `releasedSeq`: the older meta's seq. */
  constructor(dir: DirectoryBackend, opts: JournalOptions, segments: readonly SegmentInfo[], releasedSeq: number) {
    this.#dir = dir;
    this.#opts = opts;
    this.#releasedSeq = releasedSeq;
    try {
      for (const s of segments) this.#segments.push({ ...s, file: dir.open(s.name, { create: false }) });
    } catch (err) {
      this.close();
      throw new BirchError('IO', `cannot open the journal segments of ${dir.path}`, { cause: err });
    }
    this.stats.segments = this.#segments.length;
  }

  /**
   * Appends one record holding the batches firstSeq..lastSeq, whose `ops` operations are the
   * concatenation of `parts`, and, with `sync`, makes it durable. Throws FatalIoError on failure.
   */
  append(firstSeq: number, lastSeq: number, ops: number, parts: readonly Buffer[]): RecordLoc {
    if (this.#closed) throw new BirchError('INTERNAL', 'the journal was appended to after it was closed');
    let raw: Buffer;
    if (parts.length === 1) raw = parts[0] as Buffer;
    else {
      const total = parts.reduce((n, p) => n + p.length, 0);
      if (this.#scratch.length < total) this.#scratch = Buffer.allocUnsafeSlow(Math.max(total, 2 * this.#scratch.length));
      let at = 0;
      for (const p of parts) at += p.copy(this.#scratch, at);
      raw = this.#scratch.subarray(0, total);
    }
    const body = this.#compressor.encode(raw);
    const stored = body === raw;
    const length = alignRecord(RECORD_HEADER_SIZE + body.length);
    let loc: RecordLoc;
    try {
      if (this.#current === undefined || this.#pos + length > this.#current.size) this.#switchSegment(length);
      const seg = this.#current as Segment;
      encodeRecordHeader({
        segSeq: seg.segSeq, firstSeq, lastSeq, ops, rawBytes: raw.length, storedBytes: body.length,
        bodySum: checksum(body, 0, body.length, JOURNAL_SEED), length, flags: stored ? REC_FLAG_STORED : 0,
      }, this.#header);
      const pad = length - RECORD_HEADER_SIZE - body.length;
      seg.file.writev(this.#pos, pad === 0 ? [this.#header, body] : [this.#header, body, ZEROS.subarray(0, pad)]);
      this.#unsynced = true;
      loc = { segment: seg.name, segSeq: seg.segSeq, offset: this.#pos, length, firstSeq, lastSeq };
      this.#pos += length;
      seg.lastSeq = lastSeq;
      this.#appendedSeq = lastSeq;
      if (this.#opts.sync) this.sync();
    } catch (err) {
      if (err instanceof BirchError) throw err;
      throw new FatalIoError(`writing the journal record of batches ${firstSeq}..${lastSeq} failed`, err, { file: this.#current?.name });
    }
    this.stats.records++;
    this.stats.ops += ops;
    this.stats.rawBytes += raw.length;
    this.stats.storedBytes += body.length;
    if (stored) this.stats.storedRecords++;
    this.stats.bytesWritten += length;
    return loc;
  }

  /** Makes every appended record durable. */
  sync(): void {
    if (!this.#unsynced || this.#current === undefined) return;
    try {
      this.#current.file.sync();
    } catch (err) {
      throw new FatalIoError('syncing the journal failed', err, { file: this.#current.name });
    }
    this.stats.syncs++;
    this.#unsynced = false;
    this.#syncedSeq = this.#appendedSeq;
  }

  /** The last batch of the last record written (appended, synced or not). */
  get appendedSeq(): number {
    return this.#appendedSeq;
  }

  /** The last batch of the last record a completed sync covers: durable. */
  get syncedSeq(): number {
    return this.#syncedSeq;
  }

  /** Both metas' trees hold every batch up to `upToSeq`: segments holding nothing newer may be reused. */
  release(upToSeq: number): void {
    this.#releasedSeq = Math.max(this.#releasedSeq, upToSeq);
  }

  /** Bytes of segment files in use (holding records not yet released, or being written). */
  get bytesHeld(): number {
    let n = 0;
    for (const s of this.#segments) if (s === this.#current || s.lastSeq > this.#releasedSeq) n += s.size;
    return n;
  }

  #switchSegment(recordBytes: number): void {
    this.sync();
    const need = SEGMENT_DATA_OFFSET + recordBytes;
    const segSeq = this.#segments.reduce((m, s) => Math.max(m, s.segSeq), 0) + 1;
    let seg = this.#reusable(need);
    if (seg !== undefined) {
      this.stats.segmentsRecycled++;
    } else {
      const size = Math.max(this.#opts.segmentBytes, alignRecord(need));
      const { name, file } = this.#createFile();
      this.#preallocate(file, 0, size);
      file.sync();
      this.#dir.syncDirectory();
      seg = { name, segSeq: 0, file, size, lastSeq: 0 };
      this.#segments.push(seg);
      this.stats.segmentsCreated++;
    }
    seg.segSeq = segSeq;
    seg.lastSeq = 0;
    seg.file.write(0, encodeSegmentHeader(segSeq));
    seg.file.sync();
    this.#current = seg;
    this.#pos = SEGMENT_DATA_OFFSET;
    this.stats.segments = this.#segments.length;
  }

  /** A segment that may be written from the start: not the current one, every record released. */
  #reusable(bytes: number): Segment | undefined {
    return this.#segments.find((s) => s !== this.#current && s.lastSeq <= this.#releasedSeq && s.size >= bytes);
  }

  /** A new segment file, under a name no file has had (names and segSeqs are counted apart). */
  #createFile(): { name: string; file: FileBackend } {
    const name = segmentName(this.#nextFileNumber());
    // Never over a file whose records may be needed (a writer that lost track of its segments).
    if (this.#dir.exists(name)) throw new BirchError('INTERNAL', `journal segment ${name} exists already`, { site: { file: name } });
    return { name, file: this.#dir.open(name, { create: true }) };
  }

  #nextFileNumber(): number {
    let n = 0;
    for (const s of this.#segments) n = Math.max(n, parseSegmentName(s.name) ?? 0, s.segSeq);
    if (this.#spare !== undefined) n = Math.max(n, parseSegmentName(this.#spare.name) ?? 0);
    return n + 1;
  }

  /**
   * Preallocates by writing zeros: overwriting allocated blocks later needs no file-size or extent
   * updates, so each record's fdatasync has less to write than an append would
   * (perf/journal-prealloc.ts measures it). The zeros go in 4 KiB writes on purpose: with large
   * page-cache folios (ext4 on Linux 6.x) a folio takes the size of the write that created it and
   * is written back whole, so 1 MiB zero writes made every later small record cost a 1 MiB
   * write-back (measured: 210 MB written for 200 synced 4 KiB records, 0.8 MB with 4 KiB
   * preallocation writes).
   */
  #preallocate(file: FileBackend, from: number, to: number): void {
    const zeros = ZEROS.subarray(0, PREALLOC_WRITE_BYTES);
    for (let off = from; off < to; off += PREALLOC_WRITE_BYTES) file.write(off, zeros);
  }

  /**
   * Prepares the next segment ahead of need, `budgetBytes` of zeros at a time, so that switching
   * segments never has to preallocate one while a commit waits (a new 4 MiB segment took 10-25 ms
   * here: one commit in a few hundred waited that long). Called while the writer is idle; a spare
   * is made only when no segment could be reused at the next switch. Returns whether more work
   * remains. Throws FatalIoError on failure.
   */
  prepareSpare(budgetBytes: number): boolean {
    if (this.#closed) return false;
    try {
      let spare = this.#spare;
      if (spare === undefined) {
        if (this.#reusable(this.#opts.segmentBytes) !== undefined) return false;
        const { name, file } = this.#createFile();
        spare = this.#spare = { name, file, written: 0 };
      }
      const to = Math.min(this.#opts.segmentBytes, spare.written + budgetBytes);
      this.#preallocate(spare.file, spare.written, to);
      spare.written = to;
      if (to < this.#opts.segmentBytes) return true;
      spare.file.sync();
      this.#dir.syncDirectory();
      this.#segments.push({ name: spare.name, segSeq: 0, file: spare.file, size: this.#opts.segmentBytes, lastSeq: 0 });
      this.stats.segmentsCreated++;
      this.stats.segments = this.#segments.length;
      this.#spare = undefined;
      return false;
    } catch (err) {
      if (err instanceof BirchError) throw err;
      throw new FatalIoError('preallocating a journal segment failed', err, { file: this.#spare?.name });
    }
  }

  /**
   * Deletes every segment file whose records are all released (at close, once both metas hold
   * everything): the journal then takes no space until the next write.
   */
  removeReleased(): void {
    try {
      this.sync();
      let removed = false;
      if (this.#spare !== undefined) {
        this.#spare.file.close();
        this.#dir.remove(this.#spare.name);
        this.#spare = undefined;
        removed = true;
      }
      for (let i = this.#segments.length - 1; i >= 0; i--) {
        const s = this.#segments[i] as Segment;
        if (s.lastSeq > this.#releasedSeq) continue;
        s.file.close();
        this.#dir.remove(s.name);
        this.#segments.splice(i, 1);
        if (s === this.#current) this.#current = undefined;
        removed = true;
      }
      if (removed) this.#dir.syncDirectory();
    } catch (err) {
      if (err instanceof BirchError) throw err;
      throw new FatalIoError('removing spent journal segments failed', err);
    }
    this.stats.segments = this.#segments.length;
  }

  close(): void {
    this.#closed = true;
    this.#spare?.file.close();
    this.#spare = undefined;
    for (const s of this.#segments) s.file.close();
    this.#segments.length = 0;
    this.#current = undefined;
  }
}

/** A record found by a scan: where it is, its header, and (for accepted records) its body. */
export interface ScannedRecord {
  loc: RecordLoc;
  header: RecordHeader;
}

export interface ScanResult {
  segments: SegmentInfo[];
  /** Records after `afterSeq` accepted for replay, in order. */
  accepted: ScannedRecord[];
  /** The last sequence number the journal holds (afterSeq if it holds nothing newer). */
  lastSeq: number;
  /** Why each segment's scan stopped ('' at its end), for tools and stats. */
  stops: string[];
  /**
   * Valid records the scan did not accept because batches before them are missing (a gap: a
   * damaged record before them). Recovery makes them unreadable (neutralizeGaps): batches written
   * after it reuse their sequence numbers.
   */
  gaps: { segment: string; offset: number }[];
}

/**
 * Scans the journal of `dir`: calls `replay` with the body of every intact record after
 * `afterSeq`, in order (a record's body is verified and decompressed first). With `syncAccepted`,
 * the segments that replayed records came from are synced (see the recovery rules above).
 */
export function scanJournal(dir: DirectoryBackend, afterSeq: number, replay: ((rec: ScannedRecord, body: Buffer) => void) | undefined, syncAccepted: boolean): ScanResult {
  const segs: Segment[] = [];
  const result: ScanResult = { segments: [], accepted: [], lastSeq: afterSeq, stops: [], gaps: [] };
  try {
    for (const name of dir.list().sort()) {
      if (parseSegmentName(name) === undefined) continue;
      const file = dir.open(name, { create: false });
      const seg: Segment = { name, segSeq: 0, file, size: 0, lastSeq: 0 };
      segs.push(seg);
      seg.size = file.length();
      const header = Buffer.alloc(SEGMENT_DATA_OFFSET);
      file.read(0, header);
      // A segment whose header is not intact never had an acknowledged record (the header is
      // synced before the first record); it is reused like any spent segment.
      seg.segSeq = decodeSegmentHeader(header, name) ?? 0;
    }
    segs.sort((a, b) => a.segSeq - b.segSeq);
    let expected = afterSeq + 1;
    for (const seg of segs) {
      if (seg.segSeq === 0) continue;
      let tookAny = false;
      const stop = scanSegment(seg, (h, offset) => {
        seg.lastSeq = Math.max(seg.lastSeq, h.lastSeq);
        if (h.lastSeq < expected) return 'skip';
        if (h.firstSeq !== expected) {
          result.gaps.push({ segment: seg.name, offset });
          return `gap: found batches ${h.firstSeq}..${h.lastSeq}, expected ${expected}`;
        }
        const loc: RecordLoc = { segment: seg.name, segSeq: seg.segSeq, offset, length: h.length, firstSeq: h.firstSeq, lastSeq: h.lastSeq };
        const body = readBody(seg.file, loc, h);
        if (typeof body === 'string') return body;
        const rec = { loc, header: h };
        replay?.(rec, body);
        result.accepted.push(rec);
        expected = h.lastSeq + 1;
        tookAny = true;
        return 'take';
      });
      // A segment's lastSeq covers only records before its stop: the rest are not in use.
      result.stops.push(stop === '' ? '' : `${seg.name}: ${stop}`);
      if (tookAny && syncAccepted) seg.file.sync();
    }
    result.lastSeq = expected - 1;
    result.segments = segs.map(({ name, segSeq, size, lastSeq }) => ({ name, segSeq, size, lastSeq }));
    return result;
  } finally {
    for (const s of segs) s.file.close();
  }
}

/**
 * Zeroes the header of each record after a gap (ScanResult.gaps) and syncs, so that no later scan
 * can take those stale batches for the batches that will be written under the same numbers.
 */
export function neutralizeGaps(dir: DirectoryBackend, gaps: readonly { segment: string; offset: number }[]): void {
  for (const g of gaps) {
    const file = dir.open(g.segment, { create: false });
    try {
      file.write(g.offset, Buffer.alloc(RECORD_HEADER_SIZE));
      file.sync();
    } finally {
      file.close();
    }
  }
}

/**
 * Walks the valid records of `seg`, calling `visit` for each; returns why it stopped ('' at the
 * end of the segment). `visit` returns 'skip' or 'take' to go on, or a reason to stop.
 */
function scanSegment(seg: Segment, visit: (h: RecordHeader, offset: number) => string): string {
  let pos = SEGMENT_DATA_OFFSET;
  const hb = Buffer.alloc(RECORD_HEADER_SIZE);
  while (pos + RECORD_HEADER_SIZE <= seg.size) {
    seg.file.read(pos, hb);
    if (readU32(hb, 0) === 0 && hb.every((b) => b === 0)) return `end of records at offset ${pos}`;
    const h = decodeRecordHeader(hb);
    if (typeof h === 'string') return `${h} at offset ${pos}`;
    if (h.segSeq !== seg.segSeq) return `record from an earlier use of the segment at offset ${pos}`;
    if (pos + h.length > seg.size) return `record at offset ${pos} runs past the end of the segment`;
    const verdict = visit(h, pos);
    if (verdict !== 'skip' && verdict !== 'take') return `${verdict} at offset ${pos}`;
    pos += h.length;
  }
  return '';
}

/** The record's operations, verified and decompressed, or why they are not intact. */
function readBody(file: FileBackend, loc: RecordLoc, h: RecordHeader): Buffer | string {
  const stored = Buffer.allocUnsafe(h.storedBytes);
  file.read(loc.offset + RECORD_HEADER_SIZE, stored);
  if (checksum(stored, 0, stored.length, JOURNAL_SEED) !== h.bodySum) return 'record body checksum mismatch';
  const raw = (h.flags & REC_FLAG_STORED) !== 0 ? stored : decompress(stored, h.rawBytes);
  if (raw === undefined) return 'record body does not decompress';
  const bad = forEachOp(raw, h.ops, () => undefined);
  return bad ?? raw;
}

/**
 * Reads records back by location (the checkpointer: the records of the replayed batches it merges). A
 * record that is not intact here was intact when written and synced, so it is corruption.
 */
export class RecordReader {
  readonly #dir: DirectoryBackend;
  readonly #files = new Map<string, FileBackend>();
  constructor(dir: DirectoryBackend) {
    this.#dir = dir;
  }

  read(loc: RecordLoc): { header: RecordHeader; body: Buffer } {
    let file = this.#files.get(loc.segment);
    if (file === undefined) {
      try {
        file = this.#dir.open(loc.segment, { create: false, readOnly: true });
      } catch (err) {
        throw new BirchError('IO', `cannot open journal segment ${loc.segment}`, { cause: err, site: { file: loc.segment } });
      }
      this.#files.set(loc.segment, file);
    }
    const hb = Buffer.alloc(RECORD_HEADER_SIZE);
    file.read(loc.offset, hb);
    const h = decodeRecordHeader(hb);
    const site = { file: loc.segment, offset: loc.offset };
    if (typeof h === 'string') throw new CorruptionError(`journal record of batches ${loc.firstSeq}..${loc.lastSeq}: ${h}`, site);
    if (h.segSeq !== loc.segSeq || h.firstSeq !== loc.firstSeq || h.lastSeq !== loc.lastSeq) {
      throw new CorruptionError(`journal record of batches ${loc.firstSeq}..${loc.lastSeq} is not where it was written`, site);
    }
    const body = readBody(file, loc, h);
    if (typeof body === 'string') throw new CorruptionError(`journal record of batches ${loc.firstSeq}..${loc.lastSeq}: ${body}`, site);
    return { header: h, body };
  }

  /** Closes segments no later read needs (all but those named). */
  closeExcept(keep: ReadonlySet<string>): void {
    for (const [name, f] of this.#files) {
      if (keep.has(name)) continue;
      f.close();
      this.#files.delete(name);
    }
  }

  close(): void {
    this.closeExcept(new Set());
  }
}

/** Every valid record header of every segment, for tools; reads only. */
export function listJournal(dir: DirectoryBackend): { segment: string; segSeq: number; records: { offset: number; header: RecordHeader }[]; stop: string }[] {
  const out: { segment: string; segSeq: number; records: { offset: number; header: RecordHeader }[]; stop: string }[] = [];
  for (const name of dir.list().sort()) {
    if (parseSegmentName(name) === undefined) continue;
    const file = dir.open(name, { create: false, readOnly: true });
    try {
      const header = Buffer.alloc(SEGMENT_DATA_OFFSET);
      file.read(0, header);
      const segSeq = decodeSegmentHeader(header, name) ?? 0;
      const seg: Segment = { name, segSeq, file, size: file.length(), lastSeq: 0 };
      const records: { offset: number; header: RecordHeader }[] = [];
      // A header of zeros is a segment made ahead of need (the spare) or never used: normal.
      const unused = header.subarray(0, SEGMENT_HEADER_END).every((b) => b === 0);
      const stop =
        segSeq !== 0
          ? scanSegment(seg, (h, offset) => {
              records.push({ offset, header: h });
              return 'skip';
            })
          : unused
            ? 'unused: a spare segment, made ahead of need (normal)'
            : 'segment header is not intact';
      out.push({ segment: name, segSeq, records, stop });
    } finally {
      file.close();
    }
  }
  return out.sort((a, b) => a.segSeq - b.segSeq);
}
