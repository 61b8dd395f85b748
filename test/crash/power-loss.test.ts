// Power loss at every write and sync point of a workload, through the public async API on the
// simulated disk (the writer and the checkpointer run on this thread, on that disk): journal
// records, segment switches, and every point inside a checkpoint (page writes, the data-file
// sync, the meta write, the second sync, journal recycling). After each cut the database must
// open, hold every acknowledged batch, hold no batch in part, checkpoint what it replayed, and
// pass check(). A second workload cuts power at every point of a close() that compacts the file
// (moves the trees into the holes freed pages left, then gives the file's tail back). Unlike a
// SIGKILL, a power cut loses what was written but not synced, so this is the test that catches a
// missing fsync or a wrong write order.
import assert from 'node:assert/strict';
import path from 'node:path';
import { open, type Birch, type MemoryDirectory } from '../../api/index.js';
import { CrashDirectory, type CrashOp } from '../helpers/crash-dir.js';
import { rmDir, rng, tmpDir } from '../helpers/index.js';
import { assertRowClean, checkCaseAsync, reliabilityRow, type ReliabilityRow } from '../helpers/reliability.js';

const BATCHES = Number(process.env.BIRCH_POWER_COMMITS ?? 600);
// Small segments and checkpoints: a checkpoint every few batches, segments recycled often.
const OPTS = { journalSegmentSize: 64 * 1024, checkpointBytes: 48 * 1024 };
const keyOf = (t: number, i: number): string => `t${t}-${String(i).padStart(2, '0')}`;
const valueOf = (t: number, i: number): string => `value of ${t}/${i} `.repeat(1 + ((t + i) % 6));

/** Checks one crash image: opens, reads, checkpoints, checks. */
async function verify(image: MemoryDirectory, acked: number, attempted: number, where: string): Promise<void> {
  const db = await open('crashed', { ...OPTS, backend: image });
  try {
    const last = Number(db.get('last')?.toString() ?? '0');
    assert.ok(last >= acked, `${where}: opened at batch ${last}, but batch ${acked} was acknowledged`);
    assert.ok(last <= attempted, `${where}: opened at batch ${last}, beyond the ${attempted} attempted`);
    assert.equal(db.seq, last, `${where}: 'last' disagrees with the sequence number`);
    for (let t = Math.max(1, last - 14); t <= Math.min(attempted, last + 2); t++) {
      const expected = t > last || t <= last - 10 ? 0 : 20;
      let present = 0;
      for (let i = 0; i < 20; i++) {
        const v = db.get(keyOf(t, i));
        if (v !== undefined) {
          present++;
          assert.equal(v.toString(), valueOf(t, i), `${where}: wrong value for ${keyOf(t, i)}`);
        }
      }
      assert.equal(present, expected, `${where}: batch ${t} has ${present} of its keys (opened at ${last})`);
    }
    await db.checkpoint();
    const report = db.check();
    assert.ok(report.ok, `${where}: check() failed: ${report.errors.slice(0, 3).join('; ')}`);
  } finally {
    await db.close();
  }
}

/** Options of the two cases below that cut power in a compaction: a checkpoint every few batches. */
const COMPACT_OPTS = { journalSegmentSize: 256 * 1024, checkpointBytes: 64 * 1024 };

/** `rounds` batches of 300 puts of random keys (of 6,000) over many checkpoints, into `model`: much of the file ends up free or pending. */
async function randomRewrites(db: Birch, rand: () => number, rounds: number, model: Map<string, string>): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    const ops: Parameters<typeof db.batch>[0] = [];
    for (let i = 0; i < 300; i++) {
      const k = `k${String(Math.floor(rand() * 6000)).padStart(5, '0')}`;
      const v = `round ${round} `.repeat(1 + (i % 8));
      ops.push({ type: 'put', key: k, value: v });
      model.set(k, v);
    }
    await db.batch(ops);
  }
}

/** The set-up of the cases that cut power in a compaction or a backup: a simulated disk, and `rounds` of randomRewrites on it. */
async function rewrittenSim(ctx: Mocha.Context, rounds: number): Promise<{ row: ReliabilityRow; seed: number; rand: () => number; sim: CrashDirectory; db: Birch; model: Map<string, string> }> {
  const row = reliabilityRow(ctx, 'power loss');
  const seed = Number(process.env.BIRCH_SEED ?? Date.now() % 100000);
  const rand = rng(seed);
  const sim = new CrashDirectory();
  const db = await open('sim', { ...COMPACT_OPTS, backend: sim });
  const model = new Map<string, string>();
  await randomRewrites(db, rand, rounds, model);
  return { row, seed, rand, sim, db, model };
}

/** Opens a crash image and checks that it holds `acked` exactly where acknowledged, checkpoints, and passes check(). */
async function verifyImage(row: ReliabilityRow, image: MemoryDirectory, acked: Map<string, string>, where: string): Promise<void> {
  await checkCaseAsync(row, where, async () => {
    const reopened = await open('crashed', { ...COMPACT_OPTS, backend: image });
    try {
      for (const [k, v] of acked) assert.equal(reopened.get(k)?.toString(), v, `${where}: ${k} was acknowledged but is lost or has a wrong value`);
      await reopened.checkpoint();
      const report = reopened.check();
      assert.ok(report.ok, `${where}: check() failed: ${report.errors.slice(0, 3).join('; ')}`);
    } finally {
      await reopened.close();
    }
  });
  row.acked += acked.size;
}

describe('crash: power loss at every write and sync point, through the async API (simulated disk)', () => {
  it(`recovers every acknowledged batch, and nothing in part, after a cut at any point of ${BATCHES} batches`, async function () {
    this.timeout(900_000);
    const row = reliabilityRow(this, 'power loss');
    const seed = Number(process.env.BIRCH_SEED ?? Date.now() % 100000);
    const rand = rng(seed);
    const sim = new CrashDirectory();
    let acked = 0;
    let attempted = 0;
    let points = 0;
    const ops: Record<string, number> = {};
    /** Crash images taken at points since the last check, verified between batches. */
    let images: { image: MemoryDirectory; acked: number; attempted: number; where: string }[] = [];
    sim.onOp = (op: CrashOp) => {
      points++;
      ops[op.kind] = (ops[op.kind] ?? 0) + 1;
      const where = `seed ${seed}, point ${points} (${op.kind} ${op.file}), acknowledged ${acked}`;
      const variants: [string, (file: string, index: number, sectors: number) => number][] = [
        ['nothing unsynced kept', () => 0],
        ['everything kept', (_f, _i, s) => s],
        ['a random subset, some torn', (_f, _i, s) => (rand() < 0.5 ? 0 : rand() < 0.7 ? s : Math.floor(rand() * s))],
        ['another random subset', (_f, _i, s) => (rand() < 0.3 ? 0 : rand() < 0.8 ? s : Math.floor(rand() * s))],
      ];
      for (const [name, keep] of variants) images.push({ image: sim.crashImage(keep), acked, attempted, where: `${where}, ${name}` });
    };
    const drain = async (): Promise<void> => {
      const batch = images;
      images = [];
      for (const c of batch) {
        await checkCaseAsync(row, c.where, () => verify(c.image, c.acked, c.attempted, c.where));
        row.acked += c.acked;
      }
    };
    const db = await open('sim', { ...OPTS, backend: sim });
    for (let t = 1; t <= BATCHES; t++) {
      attempted = t;
      const ops: Parameters<typeof db.batch>[0] = [];
      for (let i = 0; i < 20; i++) ops.push({ type: 'put', key: keyOf(t, i), value: valueOf(t, i) });
      if (t > 10) for (let i = 0; i < 20; i++) ops.push({ type: 'del', key: keyOf(t - 10, i) });
      ops.push({ type: 'put', key: 'last', value: String(t) });
      await db.batch(ops);
      acked = t;
      await drain();
    }
    await db.close();
    await drain();
    console.log(`      ${points} crash points (${Object.entries(ops).map(([k, v]) => `${v} ${k}`).join(', ')}), ${row.cases} crash images verified (seed ${seed})`);
    assert.ok((ops.write ?? 0) > BATCHES && (ops.sync ?? 0) > BATCHES, 'cuts landed in journal records and checkpoints alike');
    assertRowClean(row);
  });

  it('recovers everything after a cut at any point of a close() that compacts the file', async function () {
    this.timeout(900_000);
    // Random rewrites over many checkpoints: a third of the file or more ends up free pages.
    const { row, seed, rand, sim, db, model } = await rewrittenSim(this, 30);
    const before = db.stats({ trees: false }).dataFile;
    let points = 0;
    const images: MemoryDirectory[] = [];
    sim.onOp = () => {
      points++;
      images.push(sim.crashImage(() => 0), sim.crashImage((_f, _i, s) => (rand() < 0.5 ? 0 : s)));
    };
    await db.close();
    sim.onOp = undefined;
    for (const [n, image] of images.entries()) await verifyImage(row, image, model, `seed ${seed}, image ${n} of close()`);
    const size = sim.crashImage((_f, _i, s) => s).files.get('data.birch')?.size ?? 0;
    const unused = before.freePages + before.pendingPages;
    console.log(`      close() of a file of ${before.pageCount} pages (${unused} free or pending): ${points} crash points, ${images.length} images verified; the file after close ${size / 4096} pages`);
    assert.ok(unused > 0.3 * before.pageCount && size / 4096 < before.pageCount - unused / 2, 'close() compacted the file');
    assertRowClean(row);
  });

  it('recovers everything after a cut at any point of a compact() while open, with writes after it', async function () {
    this.timeout(900_000);
    const { row, seed, rand, sim, db, model } = await rewrittenSim(this, 20);
    // Delete most keys: the trees shrink and most of the file becomes free.
    const dels: Parameters<typeof db.batch>[0] = [];
    for (const k of [...model.keys()]) {
      if (rand() < 0.8) {
        dels.push({ type: 'del', key: k });
        model.delete(k);
      }
    }
    await db.batch(dels);
    await db.checkpoint();
    const before = db.stats().dataFile;
    let points = 0;
    const images: { image: MemoryDirectory; acked: Map<string, string> }[] = [];
    let acked = new Map(model);
    sim.onOp = () => {
      points++;
      images.push({ image: sim.crashImage(() => 0), acked }, { image: sim.crashImage((_f, _i, s) => (rand() < 0.5 ? 0 : s)), acked });
    };
    const r = await db.compact();
    for (let i = 0; i < 5; i++) {
      await db.put(`after${i}`, `written after the compaction ${i}`);
      model.set(`after${i}`, `written after the compaction ${i}`);
      acked = new Map(model);
    }
    sim.onOp = undefined;
    await db.close();
    for (const [n, { image, acked: want }] of images.entries()) await verifyImage(row, image, want, `seed ${seed}, image ${n} of compact()`);
    console.log(`      compact() of a file of ${before.pageCount} pages (${before.freePages} free, ${before.pendingPages} pending): ${r.bytesBefore / 4096} -> ${r.bytesAfter / 4096} pages; ${points} crash points, ${images.length} images verified`);
    assert.ok(r.bytesAfter < r.bytesBefore / 2, 'compact() gave more than half the file back');
    assertRowClean(row);
  });
  it('recovers every acknowledged write after a cut at any point while a backup runs beside writes', async function () {
    this.timeout(900_000);
    const { row, seed, rand, sim, db, model } = await rewrittenSim(this, 12);
    let acked = new Map(model);
    let points = 0;
    const images: { image: MemoryDirectory; acked: Map<string, string> }[] = [];
    sim.onOp = () => {
      points++;
      images.push({ image: sim.crashImage((_f, _i, s) => (rand() < 0.5 ? 0 : s)), acked });
    };
    // The backup goes to the real disk (the simulated one is the source's); it reads a snapshot
    // while batches go on, and each cut must keep every batch acknowledged before it.
    const target = path.join(tmpDir('birch-power-backup'), 'copy');
    let stop = false;
    const writes = (async () => {
      for (let n = 0; !stop; n++) {
        const k = `during${String(n).padStart(4, '0')}`;
        await db.put(k, `written during the backup ${n}`);
        model.set(k, `written during the backup ${n}`);
        acked = new Map(model);
      }
    })();
    const r = await db.backup(target);
    stop = true;
    await writes;
    sim.onOp = undefined;
    await db.close();
    const copy = await open(r.dir);
    assert.deepEqual(copy.check().errors, []);
    await copy.close();
    rmDir(path.dirname(target));
    for (const [n, { image, acked: want }] of images.entries()) await verifyImage(row, image, want, `seed ${seed}, image ${n} during a backup`);
    console.log(`      a backup of ${r.entries} entries beside writes: ${points} write and sync points, ${images.length} images verified`);
    assert.ok(images.length > 10, 'cuts landed while the backup ran');
    assertRowClean(row);
  });
});
