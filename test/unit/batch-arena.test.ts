// The batch arena (api/batch-arena.ts), without threads: batches are handed out back to back in
// shared chunks, not overwritten while anything may read them, and a turn's adjacent batches become one view.
import assert from 'node:assert/strict';
import { BatchArena, TurnParts, type ArenaChunk } from '../../api/batch-arena.js';
import { Generation } from '../../db/buffer.js';

/** The bytes a take placed, as a view (the engine keeps the chunk and the offset instead). */
function take(arena: BatchArena, n: number): Buffer {
  const off = arena.take(n);
  return arena.buf.subarray(off, off + n);
}

describe('batch arena', () => {
  it('hands out adjacent shared bytes, starts a chunk when one is full, and never reuses bytes', () => {
    const arena = new BatchArena({ chunkBytes: 1024 });
    const taken: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const b = take(arena, 100);
      b.fill(i);
      taken.push(b);
    }
    assert.ok(taken.every((b) => b.buffer instanceof SharedArrayBuffer));
    // Ten batches of 100 bytes fit a chunk of 1,024; the eleventh starts the next chunk.
    assert.equal(taken[1]?.buffer, taken[0]?.buffer);
    assert.equal(taken[1]?.byteOffset, 100);
    assert.notEqual(taken[10]?.buffer, taken[9]?.buffer);
    assert.equal(taken[10]?.byteOffset, 0);
    assert.equal(arena.allocatedBytes, 4 * 1024);
    taken.forEach((b, i) => assert.ok(b.every((x) => x === i), `batch ${i} was overwritten`));
  });

  it('gives a batch over an eighth of a chunk a chunk of its own, sized to it, and keeps filling the current one', () => {
    const arena = new BatchArena({ chunkBytes: 1024 });
    const a = take(arena, 100);
    const big = take(arena, 129);
    const b = take(arena, 100);
    assert.equal(big.buffer.byteLength, 129);
    assert.equal(b.buffer, a.buffer);
    assert.equal(b.byteOffset, 100);
    assert.equal(arena.allocatedBytes, 1024 + 129);
  });

  it('keeps adjacent bytes of batches that are not consecutive apart', () => {
    const arena = new BatchArena({ chunkBytes: 1000 });
    const parts = new TurnParts();
    const a = arena.take(50);
    const b = arena.take(50);
    parts.add(arena.buf, a, 50, 1, 1);
    parts.add(arena.buf, b, 50, 1, 3);
    assert.deepEqual(parts.parts.map((p) => [p.firstSeq, p.lastSeq]), [[1, 1], [3, 3]]);
  });

  it('joins a turn\'s adjacent batches into one view and keeps the others apart, in order', () => {
    const arena = new BatchArena({ chunkBytes: 1000 });
    const parts = new TurnParts();
    const x = take(arena, 120).fill(1);
    const y = take(arena, 120).fill(2);
    take(arena, 10); // refused at admission: never part of the turn
    const z = take(arena, 120).fill(3);
    for (let i = 0; i < 5; i++) take(arena, 120); // other turns' batches: 970 bytes taken
    const w = take(arena, 120).fill(4); // the next chunk
    assert.notEqual(w.buffer, z.buffer);
    [x, y, z, w].forEach((b, i) => parts.add(Buffer.from(b.buffer), b.byteOffset, b.length, i + 1, 10 + i));
    const views = parts.parts.map((p) => p.bytes);
    assert.equal(views.reduce((n, v) => n + v.byteLength, 0), 480);
    assert.deepEqual(views.map((v) => v.byteLength), [240, 120, 120]);
    // Each view says which batches it holds and how many operations, for the checkpoint that merges it.
    assert.deepEqual(parts.parts.map((p) => [p.firstSeq, p.lastSeq, p.ops]), [[10, 11, 3], [12, 12, 3], [13, 13, 4]]);
    const joined = Buffer.concat(views);
    assert.ok(joined.equals(Buffer.concat([x, y, z, w])));
  });

  describe('reuse of chunks', () => {
    // Chunks of 1,000 bytes hold 8 batches of 125 (the largest that does not get a chunk of its own).
    const CHUNK = 1000;
    const B = 125;

    /** Generations as the handle has them: the live chain, and those snapshots pinned. */
    function readers(): { live: Generation[]; pinned: Generation[]; arena: (maxFreeBytes?: number) => BatchArena } {
      const r = {
        live: [new Generation()],
        pinned: [] as Generation[],
        arena: (maxFreeBytes = 10 * CHUNK) => new BatchArena({ chunkBytes: CHUNK, maxFreeBytes, readers: { live: () => r.live, held: () => r.pinned } }),
      };
      return r;
    }

    /** Takes one batch, encoded and (given a generation) admitted into it, as the commit pipeline does. */
    function batch(arena: BatchArena, gen?: Generation): ArrayBufferLike {
      const b = take(arena, B);
      const c = arena.chunk as ArenaChunk;
      c.encoded++;
      if (gen !== undefined) BatchArena.admitted(c, gen);
      return b.buffer;
    }

    /** Fills one chunk with 8 batches admitted into `gen`; returns its memory. */
    function chunkOf(arena: BatchArena, gen: Generation): ArrayBufferLike {
      const first = batch(arena, gen);
      for (let i = 1; i < 8; i++) batch(arena, gen);
      return first;
    }

    it('reuses a sealed chunk once its generations are neither live nor pinned by a snapshot', () => {
      const r = readers();
      const arena = r.arena();
      const g1 = r.live[0] as Generation;
      const first = chunkOf(arena, g1);
      const g2 = new Generation();
      r.live = [g2, g1]; // g1 frozen for a checkpoint
      batch(arena, g2); // seals the first chunk
      arena.release();
      assert.equal(arena.freeBytes, 0, 'the checkpoint merging g1 is not published yet');
      r.pinned = [g1]; // a snapshot taken before it
      r.live = [g2]; // published: g1 leaves the live chain
      arena.release();
      assert.equal(arena.freeBytes, 0, 'the snapshot still reads g1');
      for (let i = 1; i < 8; i++) batch(arena, g2);
      assert.notEqual(batch(arena, g2), first, 'a new chunk while the first is pinned');
      r.pinned = []; // the snapshot is released
      for (let i = 1; i < 8; i++) batch(arena, g2);
      assert.equal(batch(arena, g2), first, 'the first chunk is reused once nothing reads g1');
      assert.equal(arena.reusedBytes, CHUNK);
    });

    it('keeps a chunk while a batch encoded into it waits for admission, or while one of its generations is live', () => {
      const r = readers();
      const arena = r.arena();
      const g1 = r.live[0] as Generation;
      const waiting = batch(arena); // encoded, held back: not admitted yet
      for (let i = 1; i < 8; i++) batch(arena, g1);
      const second = chunkOf(arena, g1);
      const g2 = new Generation();
      batch(arena, g2);
      r.live = [g2];
      arena.release();
      assert.equal(arena.freeBytes, CHUNK, 'only the first chunk is left out: a batch in it still waits');
      const again = readers();
      const spanning = again.arena();
      const h1 = again.live[0] as Generation;
      for (let i = 0; i < 7; i++) batch(spanning, h1);
      const h2 = new Generation();
      batch(spanning, h2); // the chunk's last batch went into the active generation
      batch(spanning, h2); // seals it
      again.live = [h2];
      spanning.release();
      assert.equal(spanning.freeBytes, 0, 'a chunk with a batch in a live generation is kept');
      assert.notEqual(second, waiting);
    });

    it('keeps no more free chunks than maxFreeBytes, none by default, and none after clear()', () => {
      const none = new BatchArena({ chunkBytes: CHUNK });
      const g = new Generation();
      for (let c = 0; c < 4; c++) chunkOf(none, g);
      batch(none, g);
      none.release();
      assert.equal(none.freeBytes, 0);
      const r = readers();
      const two = r.arena(2 * CHUNK);
      const old = r.live[0] as Generation;
      for (let c = 0; c < 4; c++) chunkOf(two, old);
      r.live = [new Generation()];
      batch(two, r.live[0]); // a new chunk: four are free, the pool keeps two and this batch takes one
      two.release();
      assert.equal(two.reusedBytes, CHUNK);
      assert.equal(two.freeBytes, CHUNK);
      two.clear();
      assert.equal(two.freeBytes, 0);
    });
  });
});
