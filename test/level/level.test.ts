// birchdb/level: abstract-level's own compliance suite against BirchLevel (run by
// abstract-suite.ts in a child process, its TAP summary read here), and what the suite cannot see:
// a store on files with its threads, reopened; birchdb's data as BirchLevel reads it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemoryDirectory, open } from '../../api/index.js';
import { BirchLevel, EMPTY_KEY_TREE } from '../../level/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));

describe('birchdb/level: BirchLevel', () => {
  it("passes abstract-level's test suite, with its sublevel re-run (stores on memory directories)", function () {
    this.timeout(300_000);
    const r = spawnSync(process.execPath, [path.join(here, 'abstract-suite.js')], { env: { ...process.env, BIRCH_LEVEL_SUITE: 'memory' }, encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
    const count = (what: string): number => Number(new RegExp(`^# ${what}\\s+(\\d+)$`, 'm').exec(r.stdout)?.[1] ?? NaN);
    const failures = r.stdout.split('\n').filter((l) => l.startsWith('not ok')).slice(0, 20);
    console.log(`      abstract-level/test: ${count('tests')} assertions, ${count('pass')} passed, ${Number.isNaN(count('fail')) ? 0 : count('fail')} failed`);
    assert.deepEqual(failures, [], `failed assertions:\n${failures.join('\n')}\n${r.stderr.slice(0, 2000)}`);
    assert.equal(r.status, 0, r.stderr.slice(0, 2000));
    assert.ok(count('tests') > 5000, 'the whole suite ran');
    assert.equal(count('pass'), count('tests'));
  });

  it('on files with its threads: the empty key, ranges by abstract-level rules, seek, snapshots, clear, and a reopen', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'birch-level-'));
    try {
      const db = new BirchLevel<string, string>(dir);
      await db.open();
      await db.batch([
        { type: 'put', key: '', value: 'empty' },
        ...Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: String(i).padStart(3, '0'), value: `v${i}` })),
      ]);
      assert.equal(await db.get(''), 'empty');
      const keys = await db.keys({ gte: '030', lte: '070', gt: '040', lt: '060' }).all();
      assert.equal(keys.length, 41, 'gte and lte take precedence: 030..070');
      assert.deepEqual(await db.keys({ lt: '002' }).all(), ['', '000', '001'], 'the empty key sorts first');
      assert.deepEqual(await db.keys({ reverse: true, lte: '001' }).all(), ['001', '000', ''], 'and last in reverse');
      const it = db.iterator({ gte: '010' });
      it.seek('050');
      assert.deepEqual(await it.next(), ['050', 'v50']);
      it.seek('000');
      assert.equal(await it.next(), undefined, 'a seek to a target outside the range ends it (abstract-level)');
      it.seek('020');
      assert.deepEqual(await it.next(), ['020', 'v20'], 'and the next seek inside it goes on');
      await it.close();
      const snap = db.snapshot();
      await db.clear({ gte: '', lt: '050' });
      assert.equal(await db.get(''), undefined);
      assert.equal(await db.get('049'), undefined);
      assert.equal(await db.get('049', { snapshot: snap }), 'v49', 'the snapshot still reads the cleared keys');
      assert.equal(await db.get('', { snapshot: snap }), 'empty');
      await snap.close();
      await db.put('', 'again');
      await db.close();
      const again = new BirchLevel<string, string>(dir, { createIfMissing: false });
      await again.open();
      assert.equal(await again.get(''), 'again');
      assert.equal((await again.keys().all()).length, 51);
      await again.close();
      // The same directory through birchdb's own API: keys as they are; the empty key in its tree.
      const birch = await open(dir);
      assert.equal(birch.get('077')?.toString(), 'v77');
      assert.deepEqual(birch.trees(), [EMPTY_KEY_TREE]);
      await birch.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('limits all() with the empty key too, ends at a seek outside the range, closes a snapshot under an open iterator, orders clear() before later writes', async () => {
    const db = new BirchLevel<string, string>('mem', { birch: { backend: new MemoryDirectory() } });
    await db.batch(['', 'a', 'b', '5', '6'].map((key) => ({ type: 'put' as const, key, value: `v${key}` })));
    assert.deepEqual(await db.keys({ limit: 1 }).all(), ['']);
    assert.deepEqual(await db.keys({ limit: 1, reverse: true }).all(), ['b']);
    assert.deepEqual(await db.keys({ limit: 2, reverse: true, lt: '6' }).all(), ['5', '']);
    const it = db.keys({ limit: 3 });
    assert.equal(await it.next(), '');
    assert.deepEqual(await it.all(), ['5', '6'], 'all() after next(): the limit counts both');
    const cases: [object, string, string | undefined][] = [[{ gte: '5' }, '4', undefined], [{ gt: '5' }, '5', undefined], [{ gt: '5' }, '51', '6'], [{ lt: '6', reverse: true }, '7', undefined], [{ lte: '6', reverse: true }, '59', '5']];
    for (const [range, target, want] of cases) {
      const s = db.keys(range);
      s.seek(target);
      assert.equal(await s.next(), want, `${JSON.stringify(range)} seek ${target}`);
      await s.close();
    }
    const snap = db.snapshot();
    const open1 = db.iterator({ snapshot: snap });
    assert.deepEqual(await open1.next(), ['', 'v']);
    await db.put('a', 'changed');
    await snap.close(); // resolves with the iterator open, and releases birchdb's snapshot
    assert.equal(db.birch.stats().snapshots.live, 0, 'released at once');
    await assert.rejects(open1.next(), (e: Error & { code?: string }) => e.code === 'LEVEL_SNAPSHOT_NOT_OPEN');
    await open1.close();
    await db.batch(Array.from({ length: 25_000 }, (_, i) => ({ type: 'put' as const, key: `k${String(i).padStart(5, '0')}`, value: 'x' })));
    const cleared = db.clear({ gte: 'k' });
    const later = db.put('k20000', 'after');
    await Promise.all([cleared, later]);
    assert.equal(await db.get('k20000'), 'after', 'a write made after clear() is not undone by it');
    assert.equal((await db.keys({ gte: 'k' }).all()).length, 1);
    // Past one pass (100,000 keys), clear() waits for each pass before the next: all of it goes.
    await db.batch(Array.from({ length: 130_000 }, (_, i) => ({ type: 'put' as const, key: `m${String(i).padStart(6, '0')}`, value: 'x' })));
    await db.clear({ gte: 'm', lt: 'n' });
    assert.deepEqual(await db.keys({ gte: 'm', lt: 'n' }).all(), []);
    assert.equal(await db.get('x'.repeat(5000)), undefined, 'a key too long to exist is absent');
    assert.equal(await db.has('x'.repeat(5000)), false);
    assert.deepEqual(await db.getMany(['a', 'x'.repeat(5000)]), ['changed', undefined]);
    await db.close();
    for (const tree of ['', EMPTY_KEY_TREE]) assert.throws(() => new BirchLevel('mem', { tree }), TypeError);
  });

  it('keeps each store in the tree its `tree` option names, empty keys apart', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'birch-level-trees-'));
    try {
      for (const [tree, v] of [['a', 'A'], ['b', 'B']] as const) {
        const db = new BirchLevel<string, string>(dir, { tree });
        await db.batch([{ type: 'put', key: '', value: v }, { type: 'put', key: 'k', value: v }]);
        await db.close();
      }
      const a = new BirchLevel<string, string>(dir, { tree: 'a' });
      assert.deepEqual(await a.iterator().all(), [['', 'A'], ['k', 'A']]);
      await a.clear();
      await a.close();
      const b = new BirchLevel<string, string>(dir, { tree: 'b' });
      assert.deepEqual(await b.iterator().all(), [['', 'B'], ['k', 'B']], "clearing a's store left b's whole");
      await b.close();
      const birch = await open(dir);
      assert.equal(birch.get('k', { tree: 'b' })?.toString(), 'B');
      assert.equal(birch.get('k'), undefined, 'nothing in the default tree');
      await birch.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
