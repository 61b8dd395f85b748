// When a checkpoint starts (api/checkpoint-trigger.ts): at half of checkpointBytes after one that
// appended, at the whole of it after one that rewrote leaves spread over the tree.
import assert from 'node:assert/strict';
import { checkpointTrigger } from '../../api/checkpoint-trigger.js';
import { ENTRY_OVERHEAD_BYTES } from '../../db/buffer.js';
import { open } from '../../api/index.js';
import { rmDir, tmpDir } from '../helpers/index.js';

const MiB = 2 ** 20;

describe('checkpoint trigger', () => {
  it('halves after a checkpoint that wrote under twice its data in pages, and not otherwise', () => {
    // 10,000 operations of 116 data bytes: 1,160,000 bytes, about 283 pages.
    const gen = { ops: 10_000, bytes: 10_000 * (116 + ENTRY_OVERHEAD_BYTES) };
    assert.equal(checkpointTrigger(32 * MiB, gen, 300), 16 * MiB, 'appended: about its data in pages');
    assert.equal(checkpointTrigger(32 * MiB, gen, 566), 16 * MiB, 'at twice its data, still appending');
    assert.equal(checkpointTrigger(32 * MiB, gen, 567), 32 * MiB, 'past twice its data: leaves were rewritten');
    assert.equal(checkpointTrigger(32 * MiB, undefined, 0), 32 * MiB);
    assert.equal(checkpointTrigger(32 * MiB, { ops: 0, bytes: 0 }, 0), 32 * MiB);
  });

  for (const shape of ['in order', 'random'] as const) {
    it(`through the handle: keys ${shape} ${shape === 'in order' ? 'halve' : 'keep'} the next checkpoint's start (stats().checkpoints.nextAtBytes)`, async function () {
      this.timeout(120_000);
      const dir = tmpDir('birch-trigger');
      try {
        const db = await open(dir, { checkpointBytes: MiB });
        let x = 7;
        const rnd = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
        // 60,000 puts of 16 B keys and 100 B values: about 18 MiB counted, many checkpoints; the
        // random tree grows to several times the buffer, so its checkpoints rewrite most leaves.
        for (let t = 0; t < 600; t++) {
          const ops = Array.from({ length: 100 }, (_, j) => {
            const key = Buffer.alloc(16);
            if (shape === 'in order') key.write(String(t * 100 + j).padStart(16, '0'), 'latin1');
            else for (let k = 0; k < 16; k += 4) key.writeUInt32BE(rnd(), k);
            return { type: 'put' as const, key, value: Buffer.alloc(100, t % 256) };
          });
          await db.batch(ops);
        }
        await db.checkpoint();
        const s = db.stats().checkpoints;
        assert.ok(s.count >= 4, `only ${s.count} checkpoints ran`);
        assert.equal(s.nextAtBytes, shape === 'in order' ? MiB / 2 : MiB);
        await db.close();
      } finally {
        rmDir(dir);
      }
    });
  }
});
