// Space that comes back while open: db.compact() and the autoCompact option. After most keys are
// deleted, the file shrinks to about what a fresh load of the rest takes, with the database open,
// reads and writes going on; a snapshot taken before keeps every page it reads (its reads do not
// change) and holds back the part of the file past them, which stats() shows as pending pages.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BirchError, open, type Birch } from '../../api/index.js';
import { rmDir, tmpDir } from '../helpers/index.js';

const N = 60_000;
const key = (i: number): string => `k${String(i).padStart(7, '0')}`;
const value = (i: number): Buffer => Buffer.alloc(100, i & 255);

async function load(db: Birch, keys: number[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    await db.batch(keys.slice(i, i + 1000).map((k) => ({ type: 'put' as const, key: key(k), value: value(k) })));
  }
}

/** Keys 0..N-1 in a scattered order, so that deletes leave holes all over the file. */
const scattered = Array.from({ length: N }, (_, i) => (i * 7919) % N);
const kept = (i: number): boolean => i % 10 === 0;

describe('compact: space that comes back while open', () => {
  let base: string;
  beforeEach(() => {
    base = tmpDir('birch-compact');
  });
  afterEach(() => {
    rmDir(base);
  });

  const fileBytes = (dir: string): number => fs.statSync(path.join(dir, 'data.birch')).size;

  it('after deleting 90% of the keys, compact() leaves the file within 1.3x of a fresh load of the rest, open, reads and writes right', async () => {
    const dir = path.join(base, 'a');
    const db = await open(dir);
    await load(db, scattered);
    await db.checkpoint(); // all of it in the trees, so that the deletes free pages
    const dels = scattered.filter((i) => !kept(i));
    for (let i = 0; i < dels.length; i += 1000) await db.batch(dels.slice(i, i + 1000).map((k) => ({ type: 'del' as const, key: key(k) })));
    await db.checkpoint();
    const grown = fileBytes(dir);
    const r = await db.compact();
    assert.equal(r.bytesBefore, grown);
    assert.equal(r.bytesAfter, fileBytes(dir), 'the file was cut while open');
    assert.equal(r.pendingPages, db.stats().dataFile.pendingPages);
    for (let i = 0; i < N; i += 37) assert.deepEqual(db.get(key(i)), kept(i) ? value(i) : undefined, `key ${i}`);
    assert.deepEqual(db.check().errors, []);
    await db.put('after', 'compaction');
    await db.checkpoint();
    assert.equal(db.get('after')?.toString(), 'compaction');

    const fresh = path.join(base, 'fresh');
    const f = await open(fresh);
    await load(f, Array.from({ length: N / 10 }, (_, i) => i * 10));
    await f.close();
    const ratio = r.bytesAfter / fileBytes(fresh);
    console.log(`      ${(grown / 2 ** 20).toFixed(1)} MiB -> ${(r.bytesAfter / 2 ** 20).toFixed(1)} MiB open, in ${r.ms.toFixed(0)} ms; a fresh load of the rest: ${(fileBytes(fresh) / 2 ** 20).toFixed(1)} MiB (${ratio.toFixed(2)}x)`);
    assert.ok(ratio <= 1.3, `${ratio.toFixed(2)}x a fresh load`);
    await db.close();
    const again = await open(dir);
    assert.deepEqual(again.get(key(10)), value(10));
    assert.equal(again.get(key(11)), undefined);
    await again.close();
  });

  it('a snapshot taken before keeps its pages and its reads; the file past them waits for it (pending pages), then comes back', async () => {
    const dir = path.join(base, 'b');
    const db = await open(dir);
    await load(db, scattered);
    await db.checkpoint();
    const snap = db.snapshot();
    const dels = scattered.filter((i) => !kept(i));
    for (let i = 0; i < dels.length; i += 1000) await db.batch(dels.slice(i, i + 1000).map((k) => ({ type: 'del' as const, key: key(k) })));
    const held = await db.compact();
    assert.ok(held.pendingPages > 0, 'pages the snapshot reads are pending');
    assert.equal(db.stats().dataFile.pendingPages, held.pendingPages);
    assert.equal(db.stats().snapshots.live, 1);
    // The snapshot still reads every key, from pages nothing has overwritten.
    let n = 0;
    for (const [k, v] of snap.range()) {
      const i = Number(k.toString().slice(1));
      assert.deepEqual(v, value(i));
      n++;
    }
    assert.equal(n, N);
    snap.release();
    const after = await db.compact();
    assert.ok(after.bytesAfter < held.bytesAfter / 3, `released: ${held.bytesAfter} -> ${after.bytesAfter} bytes`);
    assert.deepEqual(db.check().errors, []);
    await db.close();
  });

  it('autoCompact: a checkpoint that leaves most of the file free is followed by a compaction, with no call', async () => {
    const dir = path.join(base, 'c');
    const db = await open(dir, { autoCompact: true });
    await load(db, scattered);
    await db.checkpoint();
    const grown = fileBytes(dir);
    const runsBefore = db.stats().autoCompact.runs;
    const dels = scattered.filter((i) => !kept(i));
    for (let i = 0; i < dels.length; i += 1000) await db.batch(dels.slice(i, i + 1000).map((k) => ({ type: 'del' as const, key: key(k) })));
    await db.checkpoint();
    // The pages the deletes freed are pending until later checkpoints release them (both metas
    // past the one that freed them): a few small writes, each checkpointed.
    for (let round = 0; round < 4 && db.stats().autoCompact.runs === runsBefore; round++) {
      await db.put(`one more ${round}`, 'checkpoint');
      await db.checkpoint();
      for (let t = 0; t < 50 && db.stats().autoCompact.runs === runsBefore; t++) await new Promise((r) => setTimeout(r, 10));
    }
    const s = db.stats().autoCompact;
    assert.ok(s.runs > runsBefore, 'an automatic compaction ran after the deletes');
    assert.ok(s.last !== null && s.last.bytesAfter < grown / 3, `the file came back: ${grown} -> ${s.last?.bytesAfter}`);
    assert.deepEqual(db.get(key(20)), value(20));
    assert.deepEqual(db.check().errors, []);
    await db.close();

    const off = await open(path.join(base, 'd'));
    await load(off, scattered.slice(0, 20_000));
    await off.batch(scattered.slice(0, 19_000).map((k) => ({ type: 'del' as const, key: key(k) })));
    await off.checkpoint();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(off.stats().autoCompact.runs, 0, 'off by default');
    await off.close();
  });

  it('autoCompact does not start under steady random overwrites (their churn is not space to give back)', async () => {
    const db = await open(path.join(base, 'churn'), { autoCompact: true, checkpointBytes: 512 * 1024 });
    await load(db, scattered.slice(0, 20_000));
    let x = 1;
    for (let round = 0; round < 60; round++) {
      const ops = Array.from({ length: 500 }, () => {
        x = (x * 48271) % 2147483647;
        const k = x % 20_000;
        return { type: 'put' as const, key: key(k), value: value(k + round) };
      });
      await db.batch(ops);
    }
    await db.checkpoint();
    const s = db.stats();
    assert.ok(s.checkpoints.count >= 10, `${s.checkpoints.count} checkpoints`);
    assert.equal(s.autoCompact.runs, 0, `${s.autoCompact.runs} automatic compactions over ${s.checkpoints.count} checkpoints of overwrites`);
    await db.close();
  });

  it('refuses bad autoCompact options, and compact() on a closed handle', async () => {
    for (const bad of [{ freeShare: 0 }, { freeShare: 0.2 }, { freeShare: 1.5 }, { share: 0.3 }, 'yes']) {
      await assert.rejects(open(path.join(base, 'e'), { autoCompact: bad as never }), (e: unknown) => e instanceof BirchError && e.code === 'BAD_OPTION');
    }
    const db = await open(path.join(base, 'e'), { autoCompact: { freeShare: 0.5 } });
    await db.close();
    await assert.rejects(db.compact(), (e: unknown) => e instanceof BirchError && e.code === 'DB_CLOSED');
  });
  it('SIGKILL at points of a compaction while a caller writes: reopening loses no acknowledged write and checks clean', async function () {
    this.timeout(180_000);
    const child = fileURLToPath(new URL('./compact-child.js', import.meta.url));
    const template = path.join(base, 'template');
    const t = await open(template);
    await load(t, scattered);
    await t.close();
    let beforeDone = 0;
    // Kill points, in ms after the compaction starts.
    for (const delay of [0, 1, 3, 6, 12, 40]) {
      const dir = path.join(base, `kill-${delay}`);
      fs.cpSync(template, dir, { recursive: true });
      const p = spawn(process.execPath, [child, dir, String(N)], { stdio: ['ignore', 'pipe', 'inherit'] });
      // Listened for from the start: a late kill may find the child gone already.
      const exited = new Promise((r) => p.once('exit', r));
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (out.includes('compact\n') || out.includes('closed')) {
            clearInterval(check);
            setTimeout(() => {
              p.kill('SIGKILL');
              resolve();
            }, delay);
          }
        }, 1);
      });
      await exited;
      if (!out.includes('compacted')) beforeDone++;
      const acked = [...out.matchAll(/ack (\d+)/g)].map((m) => Number(m[1]));
      const db = await open(dir);
      try {
        assert.deepEqual(db.check().errors, []);
        for (const n of acked) assert.equal(db.get(`a${String(n).padStart(6, '0')}`)?.toString(), `after ${n}`, `acknowledged write ${n} (kill ${delay} ms in)`);
        for (let i = 0; i < N; i += 7) assert.deepEqual(db.get(key(i)), kept(i) ? value(i) : undefined, `key ${i} (kill ${delay} ms in)`);
      } finally {
        await db.close();
      }
    }
    assert.ok(beforeDone > 0, 'some kills landed inside the compaction');
    console.log(`      ${beforeDone} kills of 6 landed before the compaction finished`);
  });
});
