// The batch arena (api/batch-arena.ts), without threads: batches are handed out back to back in
// shared chunks, never overwritten, and a turn's adjacent batches become one view.
import assert from 'node:assert/strict';
import { BatchArena, TurnParts } from '../../api/batch-arena.js';

/** The bytes a take placed, as a view (the engine keeps the chunk and the offset instead). */
function take(arena: BatchArena, n: number): Buffer {
  const off = arena.take(n);
  return arena.buf.subarray(off, off + n);
}

describe('batch arena', () => {
  it('hands out adjacent shared bytes, starts a chunk when one is full, and never reuses bytes', () => {
    const arena = new BatchArena(1024);
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
    const arena = new BatchArena(1024);
    const a = take(arena, 100);
    const big = take(arena, 129);
    const b = take(arena, 100);
    assert.equal(big.buffer.byteLength, 129);
    assert.equal(b.buffer, a.buffer);
    assert.equal(b.byteOffset, 100);
    assert.equal(arena.allocatedBytes, 1024 + 129);
  });

  it('keeps adjacent bytes of batches that are not consecutive apart', () => {
    const arena = new BatchArena(1000);
    const parts = new TurnParts();
    const a = arena.take(50);
    const b = arena.take(50);
    parts.add(arena.buf, a, 50, 1, 1);
    parts.add(arena.buf, b, 50, 1, 3);
    assert.deepEqual(parts.parts.map((p) => [p.firstSeq, p.lastSeq]), [[1, 1], [3, 3]]);
  });

  it('joins a turn\'s adjacent batches into one view and keeps the others apart, in order', () => {
    const arena = new BatchArena(1000);
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
});
