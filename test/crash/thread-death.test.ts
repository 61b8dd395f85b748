// A worker thread that dies (a crash inside it: here it ends itself at one of its writes, through
// the test-only fault plan) must not take acknowledged writes with it, nor leave a caller waiting:
// the handle fails every pending and later write with INTERNAL naming the thread, close() settles,
// and a reopen finds every acknowledged write, with the trees sound.
import assert from 'node:assert/strict';
import { BirchError, open, type Birch, type FaultPlan } from '../../api/index.js';
import { assertClean, rmDir, tmpDir } from '../helpers/index.js';

const CALLERS = 16;

/** Callers put keys until one of their writes fails; returns what was acknowledged and the errors. */
async function writeUntilFailure(db: Birch): Promise<{ acked: Map<string, string>; errors: unknown[] }> {
  const acked = new Map<string, string>();
  const errors: unknown[] = [];
  await Promise.all(Array.from({ length: CALLERS }, async (_, c) => {
    for (let i = 0; i < 1_000_000; i++) {
      const key = `c${String(c).padStart(2, '0')}-${String(i).padStart(7, '0')}`;
      const value = `value ${c}/${i} `.repeat(8);
      try {
        await db.put(key, value);
      } catch (err) {
        errors.push(err);
        return;
      }
      acked.set(key, value);
    }
  }));
  return { acked, errors };
}

function assertThreadError(err: unknown, thread: 'writer' | 'checkpointer'): void {
  assert.ok(err instanceof BirchError, `not a BirchError: ${String(err)}`);
  assert.equal(err.code, 'INTERNAL', err.message);
  assert.equal(err.site.thread, thread, err.message);
  assert.match(err.message, new RegExp(`the ${thread} thread failed: the thread exited \\(code 70\\)`), 'the injected exit is what failed it');
}

async function assertAllThere(dir: string, acked: Map<string, string>): Promise<void> {
  const db = await open(dir);
  try {
    for (const [k, v] of acked) assert.equal(db.get(k)?.toString(), v, `acknowledged ${k} is missing after reopening`);
    await db.checkpoint();
    assertClean(db);
  } finally {
    await db.close();
  }
}

describe('crash: a worker thread dies', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => (dir = tmpDir('birch-thread')));
  afterEach(() => rmDir(dir));

  for (const [thread, plan] of [
    ['writer', { op: 'write', n: 200, sticky: false, action: 'exit-thread', thread: 'writer' }],
    ['writer', { op: 'sync', n: 50, sticky: false, action: 'exit-thread', thread: 'writer' }],
    ['checkpointer', { op: 'write', n: 1, sticky: false, action: 'exit-thread', thread: 'checkpointer' }],
    ['checkpointer', { op: 'sync', n: 2, sticky: false, action: 'exit-thread', thread: 'checkpointer' }],
  ] as [('writer' | 'checkpointer'), FaultPlan][]) {
    it(`the ${thread} thread, at its ${plan.op} #${plan.n}: every caller settles, writes fail with INTERNAL, nothing acknowledged is lost`, async () => {
      const db = await open(dir, { checkpointBytes: 256 * 1024, journalSegmentSize: 256 * 1024, faults: plan });
      const { acked, errors } = await writeUntilFailure(db);
      assert.equal(errors.length, CALLERS, 'every caller saw its write fail');
      for (const err of errors) assertThreadError(err, thread);
      assert.ok(acked.size > 0, 'some writes were acknowledged before the thread died');
      await assert.rejects(db.put('after', 'x'), (e: unknown) => (assertThreadError(e, thread), true));
      // Reads go on from what the handle knows.
      const [someKey, someValue] = acked.entries().next().value as [string, string];
      assert.equal(db.get(someKey)?.toString(), someValue);
      assert.equal(db.stats({ trees: false }).failed?.includes(`the ${thread} thread`), true);
      await db.close().catch((e: unknown) => assertThreadError(e, thread));
      await assertAllThere(dir, acked);
    });
  }
});
