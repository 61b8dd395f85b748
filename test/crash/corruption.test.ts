// Corruption of every page kind: a bit flipped in each page of the data file, at several places,
// and in every journal record of a crash image. Every case is detected (a typed error naming what
// and where, or recovery to the last intact commit); never a crash, never a wrong value.
import assert from 'node:assert/strict';
import { BirchError, CorruptionError, Database, MemoryDirectory } from '../../api/index.js';
import type { MemoryFile } from '../../pager/backend.js';
import { PAGE_SIZE, PAGE_KIND_NAMES } from '../../pager/page-format.js';
import { RECORD_HEADER_SIZE } from '../../journal/format.js';
import { key } from '../helpers/index.js';
import { reliabilityRow } from '../helpers/reliability.js';

type Model = Map<string, Map<string, Buffer>>;
const TREES = [undefined, 'albums', 'artists'] as const;
const OPTS = { journalSegmentSize: 128 * 1024, checkpointBytes: 2 ** 40 };

/** A database with branch, leaf, overflow, catalog and free-list pages, and two different metas. */
function build(): { dir: MemoryDirectory; model: Model } {
  const dir = new MemoryDirectory();
  const db = Database.open('c', { ...OPTS, backend: dir });
  const model: Model = new Map(TREES.map((t) => [t ?? '', new Map()]));
  const put = (t: string | undefined, k: string, v: Buffer): void => {
    db.write((w) => w.put(k, v, t));
    (model.get(t ?? '') as Map<string, Buffer>).set(k, v);
  };
  db.write((w) => {
    for (let i = 0; i < 600; i++) {
      const v = Buffer.from(`main ${i} `.repeat(5));
      w.put(key(i), v);
      (model.get('') as Map<string, Buffer>).set(key(i), v);
    }
  });
  put('albums', 'big', Buffer.alloc(30_000, 0x5a)); // overflow pages
  put('artists', 'a', Buffer.from('artist'));
  db.checkpointSync();
  db.write((w) => {
    for (let i = 0; i < 600; i += 3) {
      w.del(key(i));
      (model.get('') as Map<string, Buffer>).delete(key(i));
    }
  });
  put('albums', 'small', Buffer.from('x'));
  db.close(); // a second flush: the two metas now differ, and there are free pages
  return { dir, model };
}

/** Opens and reads everything; returns 'refused', 'detected' or 'clean'. Throws on a wrong value or an untyped error. */
function probe(dir: MemoryDirectory, model: Model, where: string): 'refused' | 'detected' | 'clean' {
  let db: Database;
  try {
    db = Database.open('c', { ...OPTS, backend: dir });
  } catch (err) {
    assert.ok(err instanceof BirchError, `${where}: open threw an untyped ${String(err)}`);
    return 'refused';
  }
  let detected = false;
  try {
    const typed = (err: unknown): void => {
      assert.ok(err instanceof CorruptionError, `${where}: a read threw ${String(err)}`);
      assert.ok(err.site.pageNo !== undefined, `${where}: the error names no page: ${err.message}`);
      detected = true;
    };
    for (const t of TREES) {
      for (const [k, v] of model.get(t ?? '') as Map<string, Buffer>) {
        try {
          const got = db.read((r) => r.get(k, t));
          assert.ok(got !== undefined && got.equals(v), `${where}: a WRONG answer for ${t ?? '(default)'}/${k}`);
        } catch (err) {
          if (err instanceof assert.AssertionError) throw err;
          typed(err);
        }
      }
      try {
        const n = db.read((r) => [...r.range({}, t)].length);
        assert.equal(n, (model.get(t ?? '') as Map<string, Buffer>).size, `${where}: a range over ${t ?? '(default)'} gave a wrong count`);
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        typed(err);
      }
    }
    const report = db.check();
    if (detected) assert.ok(!report.ok, `${where}: reads met corruption that check() missed`);
    return detected || !report.ok ? 'detected' : 'clean';
  } finally {
    db.close();
  }
}

describe('crash: corruption of every page kind and journal record', () => {
  const { dir: base, model } = build();
  const data = (base.files.get('data.birch') as MemoryFile).data;
  // Pages in use (the file is longer: it grows in steps).
  const pages = ((): number => {
    const db = Database.open('c', { ...OPTS, backend: base.clone() });
    const n = db.stats().dataFile.pageCount;
    db.close();
    return n;
  })();
  // Every header field of every page kind, then a spread over the rest of the page.
  const HEADER_OFFSETS = [0, 2, 5, 8, 9, 11, 13, 15, 17, 19, 21, 24, 32, 40, 64, 100];
  const SPREAD = Number(process.env.BIRCH_CORRUPT_STRIDE ?? 43);
  const JOURNAL_STRIDE = Number(process.env.BIRCH_JOURNAL_CORRUPT_STRIDE ?? 5);
  const OFFSETS = [...HEADER_OFFSETS, ...Array.from({ length: Math.floor((PAGE_SIZE - 101) / SPREAD) }, (_, i) => 101 + i * SPREAD), PAGE_SIZE - 1];

  it('a flipped bit anywhere in the data file: detected or harmless, never a wrong value', function () {
    const row = reliabilityRow(this, 'corruption');
    const outcomes = { refused: 0, detected: 0, clean: 0 };
    const kinds = new Map<string, number>();
    for (let p = 0; p < pages; p++) {
      const kind = PAGE_KIND_NAMES[data[p * PAGE_SIZE + 8] as number] ?? 'unused';
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      for (const off of OFFSETS) {
        const d = base.clone();
        const f = d.files.get('data.birch') as MemoryFile;
        f.data[p * PAGE_SIZE + off] = (f.data[p * PAGE_SIZE + off] as number) ^ 0x10;
        outcomes[probe(d, model, `page ${p} (${kind}) byte ${off}`)]++;
        row.cases++;
      }
    }
    console.log(`      ${pages * OFFSETS.length} flips over ${pages} pages (${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ')}): ${outcomes.refused} refused to open, ${outcomes.detected} detected, ${outcomes.clean} harmless (free pages, or a meta that fell back to the other one)`);
    assert.ok(outcomes.detected + outcomes.refused > 0);
  });

  it('a flipped bit in any journal record still to be replayed: recovery to the last intact commit', function () {
    const row = reliabilityRow(this, 'corruption');
    // A crash image: commits after the last flush live only in the journal.
    const dir = base.clone();
    const db = Database.open('c', { ...OPTS, backend: dir });
    const extra: Model = new Map([...model].map(([t, kv]) => [t, new Map(kv)]));
    for (let t = 0; t < 6; t++) {
      db.write((w) => w.put(`late${t}`, `value ${t}`));
      (extra.get('') as Map<string, Buffer>).set(`late${t}`, Buffer.from(`value ${t}`));
    }
    const records = db.journalRecords().flatMap((s) => s.records).filter((r) => r.header.txnId > db.txnId - 6);
    const image = dir.clone();
    db.close();
    let cases = 0;
    for (const r of records) {
      // Every byte of the header, then every JOURNAL_STRIDE-th byte of the body.
      const body = Array.from({ length: Math.ceil(r.header.compressedBytes / JOURNAL_STRIDE) }, (_, i) => RECORD_HEADER_SIZE + i * JOURNAL_STRIDE);
      for (const off of [...Array.from({ length: RECORD_HEADER_SIZE }, (_, i) => i), ...body]) {
        const d = image.clone();
        const f = d.files.get(r.segment) as MemoryFile;
        f.data[r.offset + off] = (f.data[r.offset + off] as number) ^ 0x01;
        const opened = Database.open('c', { ...OPTS, backend: d });
        try {
          // Every commit before the damaged record is there; the damaged one and later ones are not.
          const lastIntact = r.header.txnId - 1;
          assert.equal(opened.txnId, lastIntact, `record of txn ${r.header.txnId}, byte ${off}`);
          opened.read((rd) => {
            for (let t = 0; t < 6; t++) {
              const expectPresent = opened.txnId >= db.txnId - 5 + t;
              assert.equal(rd.get(`late${t}`)?.toString(), expectPresent ? `value ${t}` : undefined);
            }
          });
          assert.ok(opened.check().ok);
        } finally {
          opened.close();
        }
        cases++;
        row.cases++;
      }
    }
    console.log(`      ${cases} journal record flips: each opened at the commit before the damaged record`);
  });
});

describe('crash: a damaged newest meta after the journal has moved on', () => {
  it('falls back to the older meta and replays every commit since it: the journal keeps them', () => {
    // Flush A, commits, flush B, more commits that reuse journal segments, a crash; then the
    // newest meta (B) turns out damaged. Opening must fall back to A and replay everything after A,
    // so the journal may only recycle records up to the OLDER meta, never up to the newest.
    const dir = new MemoryDirectory();
    const db = Database.open('m', { backend: dir, journalSegmentSize: 64 * 1024, checkpointBytes: 2 ** 40 });
    const value = (t: number, i: number): string => `v${t}-${i} `.repeat(8);
    let t = 0;
    const commits = (n: number): void => {
      for (let k = 0; k < n; k++) {
        t++;
        const tt = t;
        db.write((w) => {
          for (let i = 0; i < 30; i++) w.put(`k${(tt * 7 + i) % 400}`, value(tt, i));
          w.put('last', String(tt));
        });
      }
    };
    commits(40);
    db.checkpointSync(); // meta A
    commits(40);
    db.checkpointSync(); // meta B
    commits(40); // journal only; with a 64 KiB segment size these reuse segments
    const expected = new Map<string, string>();
    db.read((r) => {
      for (const [k, v] of r.range()) expected.set(k.toString(), v.toString());
    });
    const crashed = dir.clone();
    db.close();
    const file = crashed.files.get('data.birch') as MemoryFile;
    const metaTxn = (p: number): number => file.data.readUInt32LE(p * PAGE_SIZE + 24);
    const newest = metaTxn(1) > metaTxn(2) ? 1 : 2;
    file.data[newest * PAGE_SIZE + 60] = (file.data[newest * PAGE_SIZE + 60] as number) ^ 0x40;
    const opened = Database.open('m', { backend: crashed });
    try {
      assert.equal(opened.txnId, t, 'every commit is replayed from the older meta');
      opened.read((r) => {
        const got = new Map([...r.range()].map(([k, v]) => [k.toString(), v.toString()]));
        assert.deepEqual(got, expected);
      });
      assert.ok(opened.check().ok);
    } finally {
      opened.close();
    }
  });
});
