// memoryLimit's admission rule, on a memory disk (the writer and checkpointer on this thread):
// what a checkpoint cannot give back never makes a batch wait or force checkpoints.
import assert from 'node:assert/strict';
import { memDb } from '../helpers/index.js';

const MiB = 2 ** 20;

describe('memoryLimit: admission', () => {
  it('lets a batch that would not fit beside what a snapshot holds go in at once, without forcing a checkpoint', async () => {
    // Write share 8 MiB; checkpointBytes large, so that only the limit starts checkpoints here.
    const { db } = await memDb({ memoryLimit: 16 * MiB, checkpointBytes: 64 * MiB });
    const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ type: 'put' as const, key: `k${from + i}`, value: Buffer.alloc(1000, 1) }));
    try {
      for (let b = 0; b < 3; b++) await db.batch(batch(b * 1000, 1000));
      const snap = db.snapshot();
      await db.checkpoint();
      const held = db.stats().memory.snapshotBytes;
      assert.ok(held > 3 * MiB, `the snapshot holds the checkpointed generation (${held} bytes)`);
      await db.put('small', 'x');
      const before = db.stats();
      // About 2.7 MiB as the buffer counts it: twice that beside what the snapshot holds is past
      // the write share, so no checkpoint could make room for it.
      await db.batch(batch(10_000, 2300));
      const after = db.stats();
      assert.equal(after.checkpoints.count, before.checkpoints.count, 'no checkpoint was forced for it');
      assert.equal(after.memory.limitWaits, before.memory.limitWaits, 'it did not wait');
      assert.equal(snap.get('k0')?.length, 1000);
      assert.equal(db.get('k10000')?.length, 1000);
      snap.release();
    } finally {
      await db.close();
    }
  });

  it('makes a batch that a checkpoint can make room for wait for one, and starts it', async () => {
    const { db } = await memDb({ memoryLimit: 16 * MiB, checkpointBytes: 64 * MiB });
    try {
      // Each batch is about 1.2 MiB as the buffer counts it; the fourth would make the active
      // generation, copied at its checkpoint, pass the 8 MiB share.
      for (let b = 0; b < 6; b++) await db.batch(Array.from({ length: 1000 }, (_, i) => ({ type: 'put' as const, key: `k${b}-${i}`, value: Buffer.alloc(1000, 2) })));
      const s = db.stats();
      assert.ok(s.checkpoints.count >= 1, 'the limit started a checkpoint');
      assert.ok(s.memory.limitWaits >= 1, 'a batch waited for it');
      assert.equal(db.get('k5-999')?.length, 1000);
    } finally {
      await db.close();
    }
  });
});
