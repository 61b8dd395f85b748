// The write-ahead journal: one record per commit, written with one vectored write and made durable
// before the commit is acknowledged; replayed on open; recycled once the data file holds its pages.
//
// Recovery rules (see format.ts for the layout):
//  - segments are read in seq order; within a segment, records are read from the first 4 KiB
//    boundary after the header until the first invalid one (bad magic, checksum, seq, sizes, or a
//    body that does not decompress to its stated size): that is the torn or corrupt tail;
//  - records up to the data file's last applied txn are skipped; after it, only consecutive txn
//    ids are accepted, so a stale record from a segment's earlier use is never replayed;
//  - writing always resumes in a fresh (or recycled, re-sequenced) segment, never after a tail
//    that recovery rejected, so rejected bytes can never become part of a valid chain later.
import { BirchError, CorruptionError, FatalIoError } from '../pager/errors.js';
import type { DirectoryBackend, FileBackend } from '../pager/backend.js';
import { readU32, readU64 } from '../pager/bytes.js';
import { STATE_TXN_ID } from '../pager/meta-format.js';
import { verifyPage } from '../pager/page-format.js';
import { MAX_DELTA_ENTRY_BYTES, applyDelta, encodeDelta, readDeltaEntry } from './delta.js';
import { checksum } from '../pager/checksum.js';
import { compressInto, decompress } from './codec.js';
import {
  REC_FLAG_STORED, RECORD_HEADER_SIZE, SEGMENT_DATA_OFFSET, alignUp4K, decodeRecordHeader, decodeSegmentHeader, encodeRecordHeader,
  encodeSegmentHeader, parseSegmentName, segmentName, type RecordHeader,
} from './format.js';

export interface JournalOptions {
  /** Size of each preallocated segment file. A larger record gets a segment of its own size. */
  segmentBytes: number;
  /** fdatasync each record before the commit is acknowledged. */
  sync: boolean;
}

export interface JournalRecord {
  txnId: number;
  state: Buffer;
  /** Page number -> image, ascending. */
  pages: Map<number, Buffer>;
}

/** The committed page a new page was copied from: a delta's base. */
export interface PageBase {
  no: number;
  img: Buffer;
}

export interface JournalStats {
  records: number;
  pagesWritten: number;
  rawBytes: number;
  compressedBytes: number;
  bytesWritten: number;
  syncs: number;
  segments: number;
  segmentsCreated: number;
  segmentsRecycled: number;
  recoveredRecords: number;
  recoveryStop: string;
  /** Records written uncompressed because recent commits did not compress (adaptive compression). */
  storedRecords: number;
}

interface Segment {
  name: string;
  seq: number;
  file: FileBackend;
  size: number;
  /** The highest txn id written to this segment in its current use (0: none). */
  lastTxn: number;
}

/** A valid record header found by a scan, and where it sits. */
export interface ScannedRecord {
  segment: string;
  offset: number;
  header: RecordHeader;
}

const ZEROS = Buffer.alloc(1 << 20);

/**
 * LZ4 when it pays. Compressing costs CPU before the record can be written; it saves sync time
 * in proportion to the bytes it removes, and disk bytes. Measured on the team's machine (2-core VM,
 * ext4 on virtio): write+fdatasync costs about 0.9 ns per byte past its fixed 0.14 ms. The codec
 * (codec.ts, TypeScript) costs about 2.1 ns per byte on compressible pages (ratio 20 on a test of
 * small keys and repeated values) and gives up on incompressible ones within 0.02 ns per byte.
 * On this disk compression therefore costs a little more time than it saves, and is kept for what
 * it saves in journal bytes where data compresses well. The journal keeps an average of the ratio
 * achieved and stores bodies as they are while it is below MIN_RATIO, compressing one record in
 * PROBE_EVERY to notice when the data becomes compressible again.
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
const PREALLOC_WRITE_BYTES = 4096;

export class Journal {
  readonly #dir: DirectoryBackend;
  readonly #opts: JournalOptions;
  readonly #segments: Segment[] = [];
  #current: Segment | undefined;
  #pos = 0;
  #unsynced = false;
  #flushedTxn = 0;
  readonly stats: JournalStats = {
    records: 0, pagesWritten: 0, rawBytes: 0, compressedBytes: 0, bytesWritten: 0, syncs: 0,
    segments: 0, segmentsCreated: 0, segmentsRecycled: 0, recoveredRecords: 0, recoveryStop: '', storedRecords: 0,
  };
  readonly #compressor = new AdaptiveCompressor();
  /** Where each record body is built (grown as needed, reused). */
  #scratch = Buffer.allocUnsafeSlow(0);

  private constructor(dir: DirectoryBackend, opts: JournalOptions) {
    this.#dir = dir;
    this.#opts = opts;
  }

  /**
   * Opens the journal in `dir` and hands every intact record after `afterTxn`, in order, to
   * `replay`. A delta's base is the newest image an earlier replayed record holds or, if none
   * does, `readDataFilePage(no)`: page `no` of the data file, verified. Writing starts later, in
   * a fresh segment, on the first append.
   */
  static open(dir: DirectoryBackend, opts: JournalOptions, afterTxn: number, replay: (rec: JournalRecord) => void, readDataFilePage: (no: number) => Buffer): Journal {
    const j = new Journal(dir, opts);
    try {
      j.#recover(afterTxn, replay, readDataFilePage);
    } catch (err) {
      // A refused segment, a damaged base or a failed read: no handle may stay open behind it.
      j.close();
      throw err;
    }
    return j;
  }

  #recover(afterTxn: number, replay: (rec: JournalRecord) => void, readDataFilePage: (no: number) => Buffer): void {
    this.#flushedTxn = afterTxn;
    // The newest image of each page replayed so far: the state before the record being read.
    const replayed = new Map<number, Buffer>();
    const readBase = (no: number): Buffer => replayed.get(no) ?? readDataFilePage(no);
    for (const name of this.#dir.list().sort()) {
      const seqFromName = parseSegmentName(name);
      if (seqFromName === undefined) continue;
      const file = this.#dir.open(name, { create: false });
      // Owned by the journal (closed with it) before anything below can throw.
      const seg: Segment = { name, seq: 0, file, size: 0, lastTxn: 0 };
      this.#segments.push(seg);
      seg.size = file.length();
      const header = Buffer.alloc(SEGMENT_DATA_OFFSET);
      file.read(0, header);
      // A segment whose header is not intact never had an acknowledged record (the header is
      // synced before the first record); it is reused like any spent segment.
      seg.seq = decodeSegmentHeader(header, name) ?? 0;
    }
    this.#segments.sort((a, b) => a.seq - b.seq);
    let expected = afterTxn + 1;
    const stops: string[] = [];
    for (const seg of this.#segments) {
      if (seg.seq === 0) continue;
      const stop = this.#scanSegment(seg, (h, offset) => {
        if (h.txnId < expected) return 'skip';
        if (h.txnId > expected) return `gap: found txn ${h.txnId}, expected ${expected}`;
        const rec = this.#readBody(seg, offset, h, readBase);
        if (typeof rec === 'string') return rec;
        for (const [no, img] of rec.pages) replayed.set(no, img);
        replay(rec);
        this.stats.recoveredRecords++;
        expected++;
        return 'take';
      });
      if (stop !== '') stops.push(`${seg.name}: ${stop}`);
    }
    this.stats.recoveryStop = stops.join('; ');
    this.stats.segments = this.#segments.length;
  }

  /**
   * Walks the valid records of `seg`, calling `visit` for each; returns why it stopped ('' at the
   * end of the segment). `visit` returns 'skip' or 'take' to go on, or a reason to stop.
   */
  #scanSegment(seg: Segment, visit: (h: RecordHeader, offset: number) => string): string {
    let pos = SEGMENT_DATA_OFFSET;
    const hb = Buffer.alloc(RECORD_HEADER_SIZE);
    while (pos + RECORD_HEADER_SIZE <= seg.size) {
      seg.file.read(pos, hb);
      if (readU32(hb, 0) === 0 && hb.every((b) => b === 0)) return `end of records at offset ${pos}`;
      const h = decodeRecordHeader(hb);
      if (typeof h === 'string') return `${h} at offset ${pos}`;
      if (h.seq !== seg.seq) return `record from an earlier use of the segment at offset ${pos}`;
      if (pos + h.length > seg.size) return `record at offset ${pos} runs past the end of the segment`;
      const verdict = visit(h, pos);
      if (verdict !== 'skip' && verdict !== 'take') return `${verdict} at offset ${pos}`;
      seg.lastTxn = Math.max(seg.lastTxn, h.txnId);
      pos += h.length;
    }
    return '';
  }

  #readBody(seg: Segment, offset: number, h: RecordHeader, readBase: (no: number) => Buffer): JournalRecord | string {
    const compressed = Buffer.alloc(h.compressedBytes);
    seg.file.read(offset + RECORD_HEADER_SIZE, compressed);
    if (checksum(compressed) !== h.bodySum) return 'record body checksum mismatch';
    const raw = (h.flags & REC_FLAG_STORED) !== 0 ? compressed : decompress(compressed, h.rawBytes);
    if (raw === undefined) return 'record body does not decompress';
    if (readU64(h.state, STATE_TXN_ID) !== h.txnId) return 'record state names another txn';
    const pages = new Map<number, Buffer>();
    let at = 0;
    for (let i = 0; i < h.pageCount; i++) {
      const e = readDeltaEntry(raw, at);
      if (typeof e === 'string') return e;
      // The body passed its checksum, so it is what was written: a base that does not rebuild a
      // verifying image is damage in the data file, not a torn record, and is reported as such.
      // A base is never a page of the same record: a commit's pages are all newly allocated.
      const img = applyDelta(raw, e, e.baseNo === undefined ? undefined : readBase(e.baseNo));
      if (typeof img === 'string') return img;
      try {
        verifyPage(img, e.no);
      } catch (err) {
        // The body passed its checksum, so it is what was written: an image that does not verify
        // means its base in the data file is damaged. Stopping here would silently drop this and
        // every later acknowledged commit, so it is reported instead.
        throw new CorruptionError(
          `journal record of txn ${h.txnId} does not rebuild page ${e.no}${e.baseNo === undefined ? '' : ` from page ${e.baseNo}`}`,
          { file: seg.name, offset, pageNo: e.no },
          { cause: err },
        );
      }
      pages.set(e.no, img);
      at = e.runsEnd;
    }
    if (at !== raw.length) return 'record body is longer than its entries';
    return { txnId: h.txnId, state: h.state, pages };
  }

  /**
   * Appends one commit record and, with `sync`, makes it durable. Throws FatalIoError on failure.
   * `pages` are the commit's sealed images, ascending; `bases` names, for a page copied from a
   * committed one, that page and its committed image: the record stores only the differences.
   */
  append(txnId: number, state: Buffer, pages: Map<number, Buffer>, bases: ReadonlyMap<number, PageBase>): void {
    const count = pages.size;
    const need = count * MAX_DELTA_ENTRY_BYTES;
    if (this.#scratch.length < need) this.#scratch = Buffer.allocUnsafeSlow(Math.max(need, 2 * this.#scratch.length));
    let end = 0;
    for (const [no, img] of pages) {
      const base = bases.get(no);
      end = encodeDelta(this.#scratch, end, no, img, base?.no, base?.img);
    }
    // The scratch buffer is reused by the next append: backends copy what they are given.
    const raw = this.#scratch.subarray(0, end);
    const body = this.#compressor.encode(raw);
    const stored = body === raw;
    const length = alignUp4K(RECORD_HEADER_SIZE + body.length);
    try {
      if (this.#current === undefined || this.#pos + length > this.#current.size) this.#switchSegment(length);
      const seg = this.#current as Segment;
      const header = encodeRecordHeader({
        seq: seg.seq, txnId, pageCount: count, rawBytes: raw.length, compressedBytes: body.length,
        bodySum: checksum(body), length, flags: stored ? REC_FLAG_STORED : 0, state,
      });
      const padBytes = length - RECORD_HEADER_SIZE - body.length;
      seg.file.writev(this.#pos, [header, body, ZEROS.subarray(0, padBytes)]);
      this.#unsynced = true;
      if (this.#opts.sync) this.sync();
      this.#pos += length;
      seg.lastTxn = txnId;
    } catch (err) {
      if (err instanceof BirchError) throw err;
      throw new FatalIoError(`writing journal record for txn ${txnId} failed`, err);
    }
    this.stats.records++;
    this.stats.pagesWritten += count;
    this.stats.rawBytes += raw.length;
    this.stats.compressedBytes += body.length;
    if (stored) this.stats.storedRecords++;
    this.stats.bytesWritten += length;
  }

  /** Makes every appended record durable. */
  sync(): void {
    if (!this.#unsynced || this.#current === undefined) return;
    try {
      this.#current.file.sync();
    } catch (err) {
      throw new FatalIoError('syncing the journal failed', err);
    }
    this.stats.syncs++;
    this.#unsynced = false;
  }

  /**
   * Makes every record appended so far durable, off this thread (the sync runs on the libuv
   * pool), so the caller can build and write the next commit meanwhile. Records appended while it
   * runs are not covered: call again. Throws FatalIoError on failure.
   */
  async syncAsync(): Promise<void> {
    if (!this.#unsynced || this.#current === undefined) return;
    const file = this.#current.file;
    this.#unsynced = false;
    try {
      await file.syncAsync();
    } catch (err) {
      throw new FatalIoError('syncing the journal failed', err);
    }
    this.stats.syncs++;
  }

  /** The data file now holds every txn up to `txn`: segments holding nothing newer may be reused. */
  release(txn: number): void {
    this.#flushedTxn = Math.max(this.#flushedTxn, txn);
  }

  #switchSegment(recordBytes: number): void {
    this.sync();
    const need = SEGMENT_DATA_OFFSET + recordBytes;
    const seq = this.#segments.reduce((m, s) => Math.max(m, s.seq), 0) + 1;
    let seg = this.#segments.find((s) => s !== this.#current && s.lastTxn <= this.#flushedTxn && s.size >= need);
    if (seg !== undefined) {
      this.stats.segmentsRecycled++;
    } else {
      const name = segmentName(seq);
      const size = Math.max(this.#opts.segmentBytes, alignUp4K(need));
      const file = this.#dir.open(name, { create: true });
      // Preallocate by writing zeros: overwriting allocated blocks later needs no file-size or
      // extent updates, so each record's fdatasync has less to write than an append would
      // (perf/journal-prealloc.ts measures it). The zeros go in 4 KiB writes on purpose: with
      // large page-cache folios (ext4 on Linux 6.x) a folio takes the size of the write that
      // created it and is written back whole, so 1 MiB zero writes made every later 4 KiB record
      // cost a 1 MiB write-back (measured: 210 MB written for 200 synced 4 KiB records, 0.8 MB
      // with 4 KiB preallocation writes).
      const zeros = ZEROS.subarray(0, PREALLOC_WRITE_BYTES);
      for (let off = 0; off < size; off += PREALLOC_WRITE_BYTES) file.write(off, zeros);
      file.sync();
      this.#dir.syncDirectory();
      seg = { name, seq, file, size, lastTxn: 0 };
      this.#segments.push(seg);
      this.stats.segmentsCreated++;
    }
    seg.seq = seq;
    seg.lastTxn = 0;
    seg.file.write(0, encodeSegmentHeader(seq));
    seg.file.sync();
    this.#current = seg;
    this.#pos = SEGMENT_DATA_OFFSET;
    this.stats.segments = this.#segments.length;
  }

  /** Every valid record header, segment by segment, for tools. */
  listRecords(): { segment: string; seq: number; records: ScannedRecord[]; stop: string }[] {
    return this.#segments.map((seg) => {
      const records: ScannedRecord[] = [];
      const stop = seg.seq === 0 ? 'segment header is not intact' : this.#scanSegment(seg, (header, offset) => {
        records.push({ segment: seg.name, offset, header });
        return 'skip';
      });
      return { segment: seg.name, seq: seg.seq, records, stop };
    });
  }

  close(): void {
    for (const s of this.#segments) s.file.close();
    this.#segments.length = 0;
    this.#current = undefined;
  }
}
