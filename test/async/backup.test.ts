// db.backup(): a compact copy of one snapshot, taken while writes go on. Checked: the copy holds
// exactly the state of the moment backup() was called (compared entry by entry with a snapshot
// taken in the same turn, and with a model of the acknowledged writes), in every tree, values on
// overflow pages included; it opens, passes check() and takes writes; the source lost nothing; a
// backup that fails (bad target, the source closed mid-copy, a SIGKILL mid-copy) leaves no
// directory that looks like a backup.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BirchError, open, type Birch, type BackupProgress, type Snapshot } from '../../api/index.js';
import { rmDir, tmpDir } from '../helpers/index.js';

const TREES = [undefined, 'albums', 'émoji'] as const;

function entriesOf(src: Birch | Snapshot, tree: string | undefined): [string, string][] {
  return [...src.range(tree === undefined ? {} : { tree })].map(([k, v]) => [k.toString('latin1'), v.toString('latin1')]);
}

function leftovers(parent: string): string[] {
  return fs.readdirSync(parent).filter((n) => n.includes('.backup-'));
}

describe('backup: a compact, checked copy of one snapshot while writes go on', () => {
  let base: string;
  beforeEach(() => {
    base = tmpDir('birch-backup');
  });
  afterEach(() => {
    rmDir(base);
  });

  it('holds exactly the state backup() was called at, in every tree, while 8 writers go on; opens, checks clean, takes writes', async () => {
    const src = path.join(base, 'src');
    const db = await open(src, { checkpointBytes: 1 << 20 });
    const model = new Map<string, Map<string, string>>(TREES.map((t) => [t ?? '', new Map()]));
    const put = async (tree: string | undefined, k: string, v: string | Buffer): Promise<void> => {
      await db.put(k, v, tree === undefined ? {} : { tree });
      (model.get(tree ?? '') as Map<string, string>).set(Buffer.from(k).toString('latin1'), Buffer.from(v).toString('latin1'));
    };
    for (let i = 0; i < 30_000; i += 500) {
      await db.batch(Array.from({ length: 500 }, (_, j) => ({ type: 'put' as const, key: `k${String(i + j).padStart(6, '0')}`, value: `v${i + j}`.repeat(8) })));
      for (let j = 0; j < 500; j++) (model.get('') as Map<string, string>).set(`k${String(i + j).padStart(6, '0')}`, `v${i + j}`.repeat(8));
    }
    await put('albums', 'big', Buffer.alloc(20_000, 7)); // overflow pages
    await put('émoji', '🙂', 'smile');
    await db.checkpoint(); // some of it in the trees, the rest in the write buffer
    for (let i = 0; i < 300; i++) await put(i % 2 === 0 ? undefined : 'albums', `b${i}`, `buffered ${i}`);
    await db.del('k000010');
    (model.get('') as Map<string, string>).delete('k000010');

    let stop = false;
    let acked = 0;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let n = 0; !stop; n++) {
        await db.put(`w${w}-${n}`, 'during', w % 2 === 0 ? {} : { tree: 'albums' });
        acked++;
      }
    });
    await new Promise((r) => setTimeout(r, 20));
    // The same turn: the snapshot and the backup see the same batches.
    const snap = db.snapshot();
    const ackedAtCall = acked;
    const progress: BackupProgress[] = [];
    const result = await db.backup(path.join(base, 'copy'), { onProgress: (p) => progress.push(p) });
    const ackedAfter = acked;
    stop = true;
    await Promise.all(writers);
    assert.ok(ackedAfter > ackedAtCall, `writes went on during the backup (${ackedAfter - ackedAtCall} acknowledged)`);
    assert.equal(result.seq, snap.seq);
    assert.equal(result.dir, path.join(base, 'copy'));
    assert.deepEqual(progress.map((p) => p.phase).filter((p, i, a) => a[i - 1] !== p), ['copy', 'check', 'done']);
    assert.ok(progress.some((p) => p.phase === 'copy' && p.entries > 0 && p.entries < result.entries), 'progress came in slices');
    assert.deepEqual(leftovers(base), [], 'no temporary directory left');

    const copy = await open(result.dir);
    try {
      assert.deepEqual(copy.check().errors, []);
      assert.deepEqual(copy.trees(), snap.trees());
      let total = 0;
      for (const t of TREES) {
        const want = entriesOf(snap, t);
        assert.deepEqual(entriesOf(copy, t), want, `tree ${t ?? '(default)'} as of the snapshot`);
        total += want.length;
        // The model: every write acknowledged before the call is there (writers' keys aside, which
        // depend on the moment), and nothing else of the fill.
        const m = model.get(t ?? '') as Map<string, string>;
        const got = new Map(want.filter(([k]) => !k.startsWith('w')));
        assert.deepEqual(got, m, `tree ${t ?? '(default)'} against the model`);
      }
      assert.equal(result.entries, total);
      const s = copy.stats();
      assert.equal(s.dataFile.freePages, 0, 'a compact copy has no free page');
      assert.equal(s.recovery.batches, 0, 'and no journal to replay');
      await copy.put('after', 'restore');
      assert.equal(copy.get('after')?.toString(), 'restore');
    } finally {
      await copy.close();
    }
    snap.release();
    assert.ok(db.get(`w0-0`) !== undefined, 'the source kept its writes');
    await db.close();
  });

  it('compact: false copies the data file page for page as of a checkpoint made first, while 4 writers go on; opens and checks clean', async () => {
    const src = path.join(base, 'src');
    const db = await open(src, { checkpointBytes: 1 << 20 });
    const model = new Map<string, string>();
    for (let i = 0; i < 20_000; i += 500) {
      const ops = Array.from({ length: 500 }, (_, j) => ({ type: 'put' as const, key: `k${String(i + j).padStart(6, '0')}`, value: `v${i + j}`.repeat(8) }));
      await db.batch(ops);
      for (const o of ops) model.set(o.key, o.value);
    }
    await db.put('big', Buffer.alloc(20_000, 7), { tree: 'albums' });
    // Deletes leave free pages: a page copy keeps them, and its free list must say so.
    await db.batch(Array.from({ length: 5000 }, (_, j) => ({ type: 'del' as const, key: `k${String(j * 3).padStart(6, '0')}` })));
    for (let j = 0; j < 5000; j++) model.delete(`k${String(j * 3).padStart(6, '0')}`);
    await db.put('buffered', 'yes');
    model.set('buffered', 'yes');
    let stop = false;
    const acked: number[] = [0, 0, 0, 0];
    const writers = acked.map(async (_, w) => {
      for (let n = 0; !stop; n++) {
        await db.put(`w${w}-${String(n).padStart(6, '0')}`, 'during');
        acked[w] = n + 1;
      }
    });
    await new Promise((r) => setTimeout(r, 20));
    const ackedAtCall = [...acked];
    const seqAtCall = db.seq;
    const progress: string[] = [];
    const result = await db.backup(path.join(base, 'pages'), { compact: false, onProgress: (p) => progress.push(p.phase) });
    stop = true;
    await Promise.all(writers);
    assert.ok(result.seq >= seqAtCall, 'every batch acknowledged before the call is in it');
    assert.deepEqual(progress, ['copy', 'check', 'done']);
    assert.deepEqual(leftovers(base), []);
    const copy = await open(result.dir);
    try {
      assert.deepEqual(copy.check().errors, []);
      assert.equal(copy.stats().recovery.batches, 0, 'no journal to replay');
      assert.deepEqual(copy.trees(), ['albums']);
      assert.equal(copy.get('big', { tree: 'albums' })?.length, 20_000);
      const rows = [...copy.range()].map(([k, v]) => [k.toString(), v.toString()] as const);
      assert.deepEqual(new Map(rows.filter(([k]) => !k.startsWith('w'))), model);
      // One moment of each writer: a prefix of its writes, holding all acknowledged before the call.
      for (let w = 0; w < 4; w++) {
        const ns = rows.filter(([k]) => k.startsWith(`w${w}-`)).map(([k]) => Number(k.slice(3)));
        assert.deepEqual(ns, Array.from({ length: ns.length }, (_, i) => i), `writer ${w}: a prefix`);
        assert.ok(ns.length >= (ackedAtCall[w] as number), `writer ${w}: ${ns.length} in the copy, ${ackedAtCall[w]} acknowledged before the call`);
      }
      assert.equal(result.entries, rows.length + 1);
      await copy.put('after', 'restore');
      assert.equal(copy.get('after')?.toString(), 'restore');
    } finally {
      await copy.close();
    }
    await db.close();
  });

  it('refuses a target that exists, unknown or bad options and a closed handle, writing nothing', async () => {
    const db = await open(path.join(base, 'src'));
    await db.put('a', 'b');
    fs.mkdirSync(path.join(base, 'taken'));
    const code = (c: string) => (e: unknown) => e instanceof BirchError && e.code === c;
    await assert.rejects(db.backup(path.join(base, 'taken')), code('BAD_OPTION'));
    await assert.rejects(db.backup(path.join(base, 'x'), { compat: true } as never), (e: unknown) => code('BAD_OPTION')(e) && /unknown backup option 'compat'/.test((e as Error).message));
    await assert.rejects(db.backup(path.join(base, 'x'), { onProgress: 3 } as never), code('BAD_OPTION'));
    await assert.rejects(db.backup(path.join(base, 'x'), { compact: 'no' } as never), code('BAD_OPTION'));
    assert.ok(!fs.existsSync(path.join(base, 'x')));
    assert.deepEqual(leftovers(base), []);
    assert.equal(db.stats().snapshots.live, 0, 'every refused backup released its snapshot');
    await db.close();
    await assert.rejects(db.backup(path.join(base, 'y')), code('DB_CLOSED'));
    assert.ok(!fs.existsSync(path.join(base, 'y')));
  });

  it('a backup cut short by close() fails typed and leaves nothing behind', async () => {
    const db = await open(path.join(base, 'src'));
    for (let i = 0; i < 40_000; i += 1000) await db.batch(Array.from({ length: 1000 }, (_, j) => ({ type: 'put' as const, key: `k${i + j}`, value: 'x'.repeat(100) })));
    await db.checkpoint();
    const pending = db.backup(path.join(base, 'cut'));
    await new Promise((r) => setImmediate(r)); // one slice copied
    const closing = db.close();
    await assert.rejects(pending, (e: unknown) => e instanceof BirchError && e.code === 'DB_CLOSED');
    await closing;
    assert.ok(!fs.existsSync(path.join(base, 'cut')));
    assert.deepEqual(leftovers(base), []);
  });

  it('SIGKILL early in a backup, mid-copy, late, during its check and after it: the target is either absent or a whole, checked copy; the source loses nothing', async function () {
    this.timeout(120_000);
    const child = fileURLToPath(new URL('./backup-child.js', import.meta.url));
    const src = path.join(base, 'src');
    const db = await open(src);
    const N = 60_000;
    for (let i = 0; i < N; i += 1000) await db.batch(Array.from({ length: 1000 }, (_, j) => ({ type: 'put' as const, key: `k${String(i + j).padStart(6, '0')}`, value: `value ${i + j}`.padEnd(120, '.') })));
    await db.close();
    let complete = 0;
    let absent = 0;
    // Kill points: early in the copy, in its middle, near its end, during the check, and after it.
    const killAt: ((out: string) => boolean)[] = [
      (o) => (o.match(/slice/g) ?? []).length >= 1,
      (o) => (o.match(/slice/g) ?? []).length >= 6,
      (o) => (o.match(/slice/g) ?? []).length >= 12,
      (o) => o.includes('check'),
      (o) => o.includes('done'),
    ];
    for (let round = 0; round < killAt.length; round++) {
      const target = path.join(base, `kill-${round}`);
      const p = spawn(process.execPath, [child, src, target], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      // Kill once the copy has begun, after a growing share of it.
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if ((killAt[round] as (o: string) => boolean)(out) || out.includes('done')) {
            clearInterval(check);
            p.kill('SIGKILL');
            resolve();
          }
        }, 1);
      });
      await new Promise((r) => p.once('exit', r));
      if (fs.existsSync(target)) {
        complete++;
        const copy = await open(target);
        assert.deepEqual(copy.check().errors, []);
        assert.equal(copy.stats({ trees: true }).trees.find((t) => t.name === null)?.entries, N);
        assert.equal(copy.get('k012345')?.toString().trim(), 'value 12345'.padEnd(120, '.'));
        await copy.close();
      } else absent++;
    }
    assert.ok(absent > 0, 'some kills landed before the rename');
    assert.ok(complete > 0, 'the kill after done found a whole backup');
    const again = await open(src);
    assert.equal(again.stats({ trees: true }).trees.find((t) => t.name === null)?.entries, N);
    assert.deepEqual(again.check().errors, []);
    await again.close();
    console.log(`      ${absent} kills left no backup, ${complete} a whole one`);
  });
});
