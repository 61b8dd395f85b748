// open()'s options: what memoryLimit gives each part, and what it refuses.
import assert from 'node:assert/strict';
import { DEFAULTS, MIN_MEMORY_LIMIT, resolveOptions } from '../../api/options.js';

const MiB = 2 ** 20;

describe('options: memoryLimit', () => {
  it('splits the limit: half to the cache, a sixteenth to checkpointBytes, maxQueuedBytes and maxRecordBytes, the rest to the write path', () => {
    const o = resolveOptions({ memoryLimit: 256 * MiB });
    assert.equal(o.memoryLimit, 256 * MiB);
    assert.equal(o.cacheSize, 128 * MiB);
    assert.equal(o.writeMemoryBytes, 128 * MiB);
    assert.equal(o.checkpointBytes, 16 * MiB);
    assert.equal(o.maxQueuedBytes, 16 * MiB);
    assert.equal(o.maxRecordBytes, 16 * MiB);
    // maxRecordBytes stays at its default past 256 MiB.
    assert.equal(resolveOptions({ memoryLimit: 1024 * MiB }).maxRecordBytes, DEFAULTS.maxRecordBytes);
  });

  it('lets an option given beside it win, and the write path takes what the cache leaves', () => {
    const o = resolveOptions({ memoryLimit: 256 * MiB, cacheSize: 64 * MiB, checkpointBytes: 4 * MiB });
    assert.equal(o.cacheSize, 64 * MiB);
    assert.equal(o.writeMemoryBytes, 192 * MiB);
    assert.equal(o.checkpointBytes, 4 * MiB);
    assert.equal(o.maxQueuedBytes, 16 * MiB);
  });

  it('without it, nothing is limited and the defaults stand', () => {
    const o = resolveOptions({});
    assert.equal(o.memoryLimit, undefined);
    assert.equal(o.writeMemoryBytes, undefined);
    assert.equal(o.checkpointBytes, DEFAULTS.checkpointBytes);
  });

  it('refuses a limit under 16 MiB, and a cache that leaves the write path less than an eighth', () => {
    assert.throws(() => resolveOptions({ memoryLimit: MIN_MEMORY_LIMIT - 1 }), { code: 'BAD_OPTION' });
    assert.throws(() => resolveOptions({ memoryLimit: 'lots' }), { code: 'BAD_OPTION' });
    assert.throws(() => resolveOptions({ memoryLimit: 64 * MiB, cacheSize: 60 * MiB }), { code: 'BAD_OPTION' });
    assert.doesNotThrow(() => resolveOptions({ memoryLimit: 64 * MiB, cacheSize: 56 * MiB }));
  });

  it('takes maxRecordBytes under its former name maxMergeBytes, and refuses both at once', () => {
    assert.equal(resolveOptions({ maxMergeBytes: 3 * MiB }).maxRecordBytes, 3 * MiB);
    assert.equal(resolveOptions({ maxRecordBytes: 5 * MiB }).maxRecordBytes, 5 * MiB);
    assert.throws(() => resolveOptions({ maxRecordBytes: MiB, maxMergeBytes: MiB }), { code: 'BAD_OPTION' });
  });
});

describe('options: worker threads\' heap bounds', () => {
  it('bound the writer at 64 MiB and the checkpointer at 16x checkpointBytes, never under 512 MiB', () => {
    assert.deepEqual(resolveOptions({}).threadHeapLimits, { writerMb: 64, checkpointerMb: 512 });
    assert.deepEqual(resolveOptions({ checkpointBytes: 64 * MiB }).threadHeapLimits, { writerMb: 64, checkpointerMb: 1024 });
    assert.deepEqual(resolveOptions({ checkpointBytes: 1 }).threadHeapLimits, { writerMb: 64, checkpointerMb: 512 });
    // memoryLimit gives checkpointBytes a sixteenth, so the checkpointer's bound is the limit itself.
    assert.deepEqual(resolveOptions({ memoryLimit: 16 * 1024 * MiB }).threadHeapLimits, { writerMb: 64, checkpointerMb: 16 * 1024 });
  });
});
