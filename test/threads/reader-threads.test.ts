// Readers in other threads (db.readerHandle() in the owner, openReader() in a worker): they read
// the last checkpoint through the shared page cache, refuse writes, and hold pages back from reuse
// exactly as long as they read them: a snapshot until released, a reader until it closes or its
// thread ends (terminated with a snapshot open included).
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { open, type Birch } from '../../api/index.js';
import { rmDir, tmpDir } from '../helpers/index.js';
import type { ReaderCommand } from './reader-worker.js';

const key = (i: number): string => `k${String(i).padStart(6, '0')}`;

class ReaderThread {
  readonly worker: Worker;
  readonly #replies: ((r: { ok?: unknown; error?: string }) => void)[] = [];
  readonly ready: Promise<unknown>;

  constructor(db: Birch) {
    const handle = db.readerHandle();
    this.worker = new Worker(new URL('./reader-worker.js', import.meta.url), { workerData: { handle }, transferList: [handle.port] });
    this.worker.on('message', (m: { ok?: unknown; error?: string }) => this.#replies.shift()?.(m));
    this.worker.on('error', (err) => {
      for (const r of this.#replies.splice(0)) r({ error: String(err) });
    });
    this.ready = this.#next();
  }

  #next(): Promise<{ ok?: unknown; error?: string }> {
    return new Promise((resolve) => this.#replies.push(resolve));
  }

  /** The command's result; a typed failure rejects with its code. */
  async run<T>(c: ReaderCommand): Promise<T> {
    const reply = this.#next();
    this.worker.postMessage(c);
    const r = await reply;
    if (r.error !== undefined) throw Object.assign(new Error(r.error), { code: r.error });
    return r.ok as T;
  }

  async exit(): Promise<void> {
    await this.worker.terminate();
  }
}

/** Waits until the owner's 'close' event for a reader's channel has run (it comes on a later turn). */
async function readersDrop(db: Birch, threads: number): Promise<void> {
  for (let i = 0; i < 500 && db.stats().readers.threads !== threads; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(db.stats().readers.threads, threads);
}

/** Two tiny checkpoints: what earlier ones freed is released, if nothing holds it; pending is then the last one's few pages. */
async function settle(db: Birch): Promise<void> {
  for (const v of ['y', 'z']) {
    await db.put('settle', v);
    await db.checkpoint();
  }
}

async function fill(db: Birch, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i += 500) {
    const ops = [];
    for (let k = i; k < Math.min(n, i + 500); k++) ops.push({ type: 'put' as const, key: key(k), value: `${tag}${k}` });
    await db.batch(ops);
  }
}

describe('reader threads', function () {
  this.timeout(120_000);
  let dir: string;
  let db: Birch;
  const threads: ReaderThread[] = [];
  beforeEach(async () => {
    dir = tmpDir('birch-readers');
    db = await open(dir, { cacheSize: 1 << 20 });
  });
  afterEach(async () => {
    for (const t of threads.splice(0)) await t.exit();
    if (!db.closed) await db.close();
    rmDir(dir);
  });
  const start = async (): Promise<ReaderThread> => {
    const t = new ReaderThread(db);
    threads.push(t);
    await t.ready;
    return t;
  };

  it('reads the last checkpoint, not the write buffer, and refuses writes with READ_ONLY', async () => {
    await fill(db, 2000, 'a');
    await db.put('t1', 'x', { tree: 'named' });
    await db.checkpoint();
    const r = await start();
    assert.equal(await r.run({ op: 'get', key: key(7) }), 'a7');
    assert.equal((await r.run<unknown[]>({ op: 'scan' })).length, 2000);
    assert.deepEqual(await r.run({ op: 'scan', tree: 'named' }), [['t1', 'x']]);
    assert.deepEqual(await r.run({ op: 'trees' }), ['named']);
    await db.put(key(7), 'buffered');
    assert.equal(db.get(key(7))?.toString(), 'buffered');
    assert.equal(await r.run({ op: 'get', key: key(7) }), 'a7', 'a reader does not see the write buffer');
    await db.checkpoint();
    assert.equal(await r.run({ op: 'get', key: key(7) }), 'buffered', 'it sees the next checkpoint');
    await assert.rejects(r.run({ op: 'put' }), { code: 'READ_ONLY' });
    // A handle opens one reader: two on one slot would clear each other's pins.
    await assert.rejects(r.run({ op: 'reopen' }), { code: 'BAD_OPTION' });
  });

  it("a reader's snapshot reads the same entries while the owner rewrites and deletes everything", async () => {
    await fill(db, 3000, 'old');
    await db.checkpoint();
    const r = await start();
    const seq = await r.run<number>({ op: 'snapshot' });
    const before = await r.run<[string, string][]>({ op: 'snapScan' });
    assert.equal(before.length, 3000);
    const pinned = db.stats().readers.oldestCheckpointId;
    assert.equal(typeof pinned, 'number');
    // Churn: every page of the old trees is freed many times over; with the pin ignored, the
    // freed pages would be reused and the snapshot would read other pages (wrong or corrupt).
    for (let round = 0; round < 6; round++) {
      await fill(db, 3000, `r${round}-`);
      await db.batch(Array.from({ length: 1000 }, (_, i) => ({ type: 'del' as const, key: key(i * 3) })));
      await db.checkpoint();
    }
    assert.ok(db.stats().dataFile.pendingPages > 0, 'the old trees are pending, not free');
    assert.equal(db.stats().readers.oldestCheckpointId, pinned, 'the pin stays on the snapshot\'s checkpoint');
    assert.deepEqual(await r.run({ op: 'snapScan' }), before);
    assert.deepEqual(await r.run({ op: 'snapGetMany', keys: [key(0), key(2999), 'nope'] }), ['old0', 'old2999', null]);
    assert.equal(await r.run({ op: 'get', key: key(1) }), 'r5-1', 'a plain read reads the newest checkpoint');
    assert.ok(seq < db.seq);
    await r.run({ op: 'snapRelease' });
    assert.equal(db.stats().readers.oldestCheckpointId, null);
    await settle(db);
    assert.ok(db.stats().dataFile.pendingPages < 20, `released pages come back (pending ${db.stats().dataFile.pendingPages})`);
  });

  for (const end of ['closed', 'terminated'] as const) {
    it(`a reader ${end} with its snapshot open holds nothing back after`, async () => {
      await fill(db, 3000, 'a');
      await db.checkpoint();
      const r = await start();
      await r.run({ op: 'snapshot' });
      assert.equal(db.stats().readers.threads, 1);
      if (end === 'closed') await r.run({ op: 'close' });
      else await r.exit();
      await readersDrop(db, 0);
      assert.equal(db.stats().readers.oldestCheckpointId, null);
      for (let round = 0; round < 3; round++) {
        await fill(db, 3000, `r${round}`);
        await db.checkpoint();
      }
      await settle(db);
      const { pendingPages } = db.stats().dataFile;
      assert.ok(pendingPages < 20, `pages come back: ${pendingPages} pending`);
      // The slots are free again: as many readers as ever can start.
      const again = await start();
      assert.equal(await again.run({ op: 'get', key: key(5) }), 'r25');
    });
  }

  it('refuses reads with DB_CLOSED once the owner closes, and a handle is refused after', async () => {
    await fill(db, 100, 'a');
    await db.checkpoint();
    const r = await start();
    await r.run({ op: 'snapshot' });
    await db.close();
    await assert.rejects(r.run({ op: 'get', key: key(1) }), { code: 'DB_CLOSED' });
    await assert.rejects(r.run({ op: 'snapScan' }), { code: 'DB_CLOSED' });
    assert.throws(() => db.readerHandle(), { code: 'DB_CLOSED' });
  });

  it('serves two reader threads at once while the owner writes', async () => {
    await fill(db, 2000, 'a');
    await db.checkpoint();
    const [r1, r2] = [await start(), await start()];
    const writes = (async () => {
      for (let round = 0; round < 4; round++) {
        await fill(db, 2000, `w${round}`);
        await db.checkpoint();
      }
    })();
    for (let i = 0; i < 20; i++) {
      for (const r of [r1, r2]) {
        const rows = await r.run<[string, string][]>({ op: 'scan' });
        assert.equal(rows.length, 2000);
        // One checkpoint per scan: every value carries the same round's tag.
        const tags = new Set(rows.map(([, v]) => v.replace(/\d+$/, '')));
        assert.equal(tags.size, 1, `one checkpoint per scan, saw ${[...tags].join(',')}`);
      }
    }
    await writes;
  });
});
