// Corruption of every page kind and of every journal record still to be replayed: a bit flipped
// in each page of the data file, at many places, and in every record of a crash image. Each case
// is held to the outcome its place calls for (not to a total): a page the newest trees reach must
// be detected (a CorruptionError naming the page, and check()) or refuse the open; the file
// header and the free-space bitmap refuse the open; a damaged meta falls back to the other, and
// the journal replays the rest; pages nothing reaches are harmless. Never a wrong value, never an
// untyped error.
import assert from 'node:assert/strict';
import { BirchError, CorruptionError, MemoryDirectory, open, type Birch } from '../../api/index.js';
import type { MemoryFile } from '../../pager/backend.js';
import { readMetas } from '../../pager/data-file.js';
import { PAGE_SIZE } from '../../pager/page-format.js';
import { decodeFreeList } from '../../pager/freelist.js';
import { RECORD_HEADER_SIZE } from '../../journal/format.js';
import { listJournal } from '../../journal/journal.js';
import { childAt, count, isLeaf, leafValue } from '../../btree/node.js';
import { overflowPagesFor } from '../../btree/node-format.js';
import { decodeDesc, decodeRoots } from '../../btree/roots-format.js';
import { iterate } from '../../btree/cursor.js';
import type { TreeDesc } from '../../btree/tree.js';
import { key } from '../helpers/index.js';
import { assertRowClean, checkCaseAsync, reliabilityRow } from '../helpers/reliability.js';

type Model = Map<string, Map<string, Buffer>>;
const TREES = [undefined, 'albums', 'artists'] as const;
const OPTS = { journalSegmentSize: 128 * 1024, checkpointBytes: 2 ** 40 };

/**
 * A crash image with branch, leaf, overflow, catalog and bitmap pages, two metas of different
 * checkpoints, and free pages (the first checkpoint's, freed by the second).
 */
async function build(): Promise<{ dir: MemoryDirectory; model: Model }> {
  const dir = new MemoryDirectory();
  const db = await open('c', { ...OPTS, backend: dir });
  const model: Model = new Map(TREES.map((t) => [t ?? '', new Map()]));
  const put = async (t: string | undefined, k: string, v: Buffer): Promise<void> => {
    await db.put(k, v, t === undefined ? {} : { tree: t });
    (model.get(t ?? '') as Map<string, Buffer>).set(k, v);
  };
  const main = model.get('') as Map<string, Buffer>;
  await db.batch(Array.from({ length: 2000 }, (_, i) => {
    const v = Buffer.from(`main ${i} `.repeat(5));
    main.set(key(i), v);
    return { type: 'put' as const, key: key(i), value: v };
  }));
  await put('albums', 'big', Buffer.alloc(30_000, 0x5a)); // overflow pages
  await put('artists', 'a', Buffer.from('artist'));
  await db.checkpoint();
  await db.batch(Array.from({ length: 600 }, (_, j) => {
    main.delete(key(j * 3));
    return { type: 'del' as const, key: key(j * 3) };
  }));
  await put('albums', 'small', Buffer.from('x'));
  await db.checkpoint();
  const image = dir.clone();
  await db.close();
  return { dir: image, model };
}

type Role = 'header' | 'newest meta' | 'older meta' | 'bitmap' | 'tree' | 'unreached';

/**
 * What each page of the image is to its newest checkpoint: every page up to the larger of the two
 * metas' page counts (the file is longer, in growth steps of zeros no meta reaches).
 */
function roles(dir: MemoryDirectory): Role[] {
  const file = dir.files.get('data.birch') as MemoryFile;
  const metas = readMetas(file);
  const pages = Math.max(metas.newest.pageCount, metas.older?.pageCount ?? 0);
  const out: Role[] = Array.from({ length: pages }, () => 'unreached');
  out[0] = 'header';
  out[1 + (metas.newest.checkpointId % 2)] = 'newest meta';
  out[1 + ((metas.newest.checkpointId + 1) % 2)] = 'older meta';
  const read = (no: number): Buffer => file.data.subarray(no * PAGE_SIZE, (no + 1) * PAGE_SIZE);
  const walk = (desc: TreeDesc): void => {
    const visit = (no: number): void => {
      out[no] = 'tree';
      const p = read(no);
      for (let i = 0; i < count(p); i++) {
        if (!isLeaf(p)) visit(childAt(p, i));
        else {
          const v = leafValue(p, i);
          if (v.overflow) for (let k = 0; k < overflowPagesFor(v.valueLen); k++) out[v.at + k] = 'tree';
        }
      }
    };
    if (desc.root !== 0) visit(desc.root);
  };
  const roots = decodeRoots(metas.newest.roots);
  walk(roots.main);
  walk(roots.catalog);
  for (const [, v] of iterate((no) => read(no), roots.catalog, {})) walk(decodeDesc(v));
  for (const no of decodeFreeList(metas.newest.freeRoot, metas.newest.pageCount, (no) => read(no)).pages) out[no] = 'bitmap';
  return out;
}

/** Opens and reads everything; returns 'refused', 'detected' or 'clean'. Throws on a wrong value or an untyped error. */
async function probe(dir: MemoryDirectory, model: Model, where: string): Promise<'refused' | 'detected' | 'clean'> {
  let db;
  try {
    db = await open('c', { ...OPTS, backend: dir });
  } catch (err) {
    assert.ok(err instanceof BirchError, `${where}: open threw an untyped ${String(err)}`);
    return 'refused';
  }
  let detected = false;
  let outcome: 'detected' | 'clean' | undefined;
  let failed = false;
  try {
    const typed = (err: unknown): void => {
      assert.ok(err instanceof CorruptionError, `${where}: a read threw ${String(err)}`);
      assert.ok(err.site.pageNo !== undefined, `${where}: the error names no page: ${err.message}`);
      detected = true;
    };
    for (const t of TREES) {
      const opts = t === undefined ? {} : { tree: t };
      for (const [k, v] of model.get(t ?? '') as Map<string, Buffer>) {
        try {
          const got = db.get(k, opts);
          assert.ok(got !== undefined && got.equals(v), `${where}: a WRONG answer for ${t ?? '(default)'}/${k}`);
        } catch (err) {
          if (err instanceof assert.AssertionError) throw err;
          typed(err);
        }
      }
      try {
        const n: number = [...db.range(opts)].length;
        assert.equal(n, (model.get(t ?? '') as Map<string, Buffer>).size, `${where}: a range over ${t ?? '(default)'} gave a wrong count`);
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        typed(err);
      }
    }
    const report = db.check();
    if (detected) assert.ok(!report.ok, `${where}: reads met corruption that check() missed`);
    outcome = detected || !report.ok ? 'detected' : 'clean';
    return outcome;
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    // A case that failed already reports its own failure; otherwise close() is checked too.
    const closeFailure = await closeProbed(db, where, outcome === 'detected');
    if (closeFailure !== undefined && !failed) throw closeFailure;
  }
}

/**
 * Closes a probed handle. Closing checkpoints what the journal replayed, settles the metas and
 * gives the file's free tail back, so it may read the damaged page too: where reads or check()
 * detected the corruption (`detected`), a CorruptionError naming a page is the one failure
 * expected of it; anything else (an untyped error, another code, a corruption found only here)
 * fails the case. Returns that failure.
 */
async function closeProbed(db: Birch, where: string, detected: boolean): Promise<assert.AssertionError | undefined> {
  try {
    await db.close();
    return undefined;
  } catch (err) {
    if (!(err instanceof BirchError)) return new assert.AssertionError({ message: `${where}: close() threw an untyped ${String(err)}` });
    if (!(err instanceof CorruptionError)) return new assert.AssertionError({ message: `${where}: close() failed with ${err.code}: ${err.message}` });
    if (!detected) return new assert.AssertionError({ message: `${where}: close() met corruption that reads and check() had not detected: ${err.message}` });
    if (err.site.pageNo === undefined) return new assert.AssertionError({ message: `${where}: close()'s error names no page: ${err.message}` });
    return undefined;
  }
}

/** The outcomes a flip may have, by the role of its page. */
const ALLOWED: Record<Role, ('refused' | 'detected' | 'clean')[]> = {
  header: ['refused'],
  bitmap: ['refused'],
  tree: ['detected', 'refused'],
  // The other meta opens, and the journal replays every batch since it.
  'newest meta': ['clean'],
  'older meta': ['clean'],
  unreached: ['clean'],
};

describe('crash: corruption of every page kind and journal record', () => {
  let base: MemoryDirectory;
  let model: Model;
  before(async () => {
    ({ dir: base, model } = await build());
  });
  // Every header field of every page kind, then a spread over the rest of the page.
  const HEADER_OFFSETS = [0, 2, 5, 8, 9, 11, 13, 15, 17, 19, 21, 24, 32, 40, 64, 100];
  const SPREAD = Number(process.env.BIRCH_CORRUPT_STRIDE ?? 43);
  const JOURNAL_STRIDE = Number(process.env.BIRCH_JOURNAL_CORRUPT_STRIDE ?? 5);
  const OFFSETS = [...HEADER_OFFSETS, ...Array.from({ length: Math.floor((PAGE_SIZE - 101) / SPREAD) }, (_, i) => 101 + i * SPREAD), PAGE_SIZE - 1];

  it('a flipped bit anywhere in the data file: detected, refused or harmless as its page calls for, never a wrong value', async function () {
    this.timeout(900_000);
    const row = reliabilityRow(this, 'corruption');
    const role = roles(base);
    const kinds = new Map<Role, number>();
    const outcomes = { refused: 0, detected: 0, clean: 0 };
    for (let p = 0; p < role.length; p++) {
      const r = role[p] as Role;
      kinds.set(r, (kinds.get(r) ?? 0) + 1);
      // A page nothing reaches is not read: its header bytes stand for the rest.
      for (const off of r === 'unreached' ? HEADER_OFFSETS : OFFSETS) {
        const where = `page ${p} (${r}) byte ${off}`;
        await checkCaseAsync(row, where, async () => {
          const d = base.clone();
          const f = d.files.get('data.birch') as MemoryFile;
          f.data[p * PAGE_SIZE + off] = (f.data[p * PAGE_SIZE + off] as number) ^ 0x10;
          const got = await probe(d, model, where);
          outcomes[got]++;
          assert.ok(ALLOWED[r].includes(got), `${where}: ${got}, where ${ALLOWED[r].join(' or ')} was due${got === 'clean' ? ' (not detected)' : ''}`);
        });
      }
    }
    console.log(`      ${row.cases} flips over ${role.length} pages (${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ')}): ${outcomes.refused} refused to open, ${outcomes.detected} detected, ${outcomes.clean} harmless, each as its page calls for`);
    assert.ok((kinds.get('tree') ?? 0) > 10 && (kinds.get('unreached') ?? 0) > 0 && kinds.get('bitmap') === 1, 'every kind of page was flipped');
    assertRowClean(row);
  });

  it('a flipped bit in any journal record still to be replayed: recovery to the last intact batch', async function () {
    this.timeout(900_000);
    const row = reliabilityRow(this, 'corruption');
    // A crash image: batches after the last checkpoint live only in the journal.
    const dir = base.clone();
    const db = await open('c', { ...OPTS, backend: dir });
    const first = db.seq + 1;
    for (let t = 0; t < 6; t++) await db.put(`late${t}`, `value ${t}`.repeat(50));
    const image = dir.clone();
    await db.close();
    const records = listJournal(image).flatMap((s) => s.records.map((r) => ({ segment: s.segment, ...r }))).filter((r) => r.header.firstSeq >= first);
    assert.equal(records.length, 6);
    for (const r of records) {
      // Every byte of the header, then every JOURNAL_STRIDE-th byte of the body.
      const body = Array.from({ length: Math.ceil(r.header.storedBytes / JOURNAL_STRIDE) }, (_, i) => RECORD_HEADER_SIZE + i * JOURNAL_STRIDE);
      for (const off of [...Array.from({ length: RECORD_HEADER_SIZE }, (_, i) => i), ...body]) {
        const where = `record of batch ${r.header.firstSeq}, byte ${off}`;
        await checkCaseAsync(row, where, async () => {
          const d = image.clone();
          const f = d.files.get(r.segment) as MemoryFile;
          f.data[r.offset + off] = (f.data[r.offset + off] as number) ^ 0x01;
          const opened = await open('c', { ...OPTS, backend: d });
          try {
            // Every batch before the damaged record is there; the damaged one and later ones are not.
            assert.equal(opened.seq, r.header.firstSeq - 1, `${where}: opened at batch ${opened.seq}`);
            for (let t = 0; t < 6; t++) {
              const expectPresent = first + t < r.header.firstSeq;
              assert.equal(opened.get(`late${t}`)?.toString(), expectPresent ? `value ${t}`.repeat(50) : undefined, `${where}: late${t} is ${expectPresent ? 'lost' : 'visible'}`);
            }
            await opened.checkpoint();
            assert.ok(opened.check().ok);
          } finally {
            await opened.close();
          }
        });
      }
    }
    console.log(`      ${row.cases} journal record flips: each opened at the batch before the damaged record`);
    assertRowClean(row);
  });
});

describe('crash: a damaged newest meta after the journal has moved on', () => {
  it('falls back to the older meta and replays every batch since it: the journal keeps them', async () => {
    // Checkpoint A, batches, checkpoint B, more batches that reuse journal segments, a crash;
    // then the newest meta (B) turns out damaged. Opening must fall back to A and replay
    // everything after A, so the journal may only recycle records up to the OLDER meta.
    const dir = new MemoryDirectory();
    const db = await open('m', { backend: dir, journalSegmentSize: 64 * 1024, checkpointBytes: 2 ** 40 });
    const value = (t: number, i: number): string => `v${t}-${i} `.repeat(8);
    let t = 0;
    const batches = async (n: number): Promise<void> => {
      for (let k = 0; k < n; k++) {
        t++;
        const tt = t;
        await db.batch([...Array.from({ length: 30 }, (_, i) => ({ type: 'put' as const, key: `k${(tt * 7 + i) % 400}`, value: value(tt, i) })), { type: 'put', key: 'last', value: String(tt) }]);
      }
    };
    await batches(40);
    await db.checkpoint(); // meta A
    await batches(40);
    await db.checkpoint(); // meta B
    await batches(40); // journal only; with 64 KiB segments these reuse segments
    const expected = new Map([...db.range()].map(([k, v]) => [k.toString(), v.toString()]));
    const crashed = dir.clone();
    await db.close();
    const file = crashed.files.get('data.birch') as MemoryFile;
    const newest = readMetas(file).newest.checkpointId;
    const slot = 1 + (newest % 2);
    file.data[slot * PAGE_SIZE + 60] = (file.data[slot * PAGE_SIZE + 60] as number) ^ 0x40;
    assert.equal(readMetas(file).newest.checkpointId, newest - 1, 'the older meta is the one that opens');
    const opened = await open('m', { backend: crashed });
    try {
      assert.equal(opened.seq, t, 'every batch is replayed from the older meta');
      assert.deepEqual(new Map([...opened.range()].map(([k, v]) => [k.toString(), v.toString()])), expected);
      await opened.checkpoint();
      assert.ok(opened.check().ok);
    } finally {
      await opened.close();
    }
  });
});
