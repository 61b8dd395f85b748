// Memory of the write buffer per operation, beyond its key and value bytes: the figure behind
// ENTRY_OVERHEAD_BYTES (db/buffer.ts). Reported, never asserted.
//   node --expose-gc dist/perf/buffer-overhead.js [keyBytes] [ops]    (default 16 and 200,000)
// Operations are encoded into 1 MiB shared chunks as the arena does, then applied to a generation;
// the slots, buckets and chunks are array buffers (memoryUsage().arrayBuffers), the key index a
// range builds is heap.
import { Generation } from '../db/buffer.js';
import { OP_PUT, opBytes, writeOp } from '../journal/format.js';

const keyBytes = Number(process.argv[2] ?? 16);
const ops = Number(process.argv[3] ?? 200_000);
const CHUNK = 1 << 20;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

/** Collects until array buffers freed by the collector are given back (their release is deferred). */
async function settled(): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 3; i++) {
    (gc as () => void)();
    await new Promise((r) => setTimeout(r, 100));
  }
  return process.memoryUsage();
}

const m0 = await settled();
const gen = new Generation();
const chunks: Buffer[] = [];
let chunk: Buffer = Buffer.alloc(0);
let used = 0;
const value = Buffer.alloc(100, 1);
for (let i = 0; i < ops; i++) {
  const key = Buffer.from(String((i * 7919) % 1_000_003).padStart(keyBytes, '0'));
  const n = opBytes(0, key.length, value.length);
  if (used + n > chunk.length) {
    chunk = Buffer.from(new SharedArrayBuffer(CHUNK));
    chunks.push(chunk);
    used = 0;
  }
  const end = writeOp(chunk, used, OP_PUT, undefined, key, value);
  gen.write('', chunk, end - value.length - key.length, key.length, value.length, i + 1, i + 1);
  used = end;
}
const m1 = await settled();
gen.trees.get('')?.index();
const m2 = await settled();
const perOp = (bytes: number): number => Number((bytes / ops).toFixed(1));
const chunkBytes = chunks.length * CHUNK;
console.log(JSON.stringify({
  keyBytes, ops,
  rawBytesPerOp: keyBytes + value.length,
  chunkBytesPerOp: perOp(chunkBytes),
  slotBytesPerOp: perOp(m1.arrayBuffers - m0.arrayBuffers - chunkBytes + m1.heapUsed - m0.heapUsed),
  keyIndexBytesPerOp: perOp(m2.heapUsed - m1.heapUsed + m2.arrayBuffers - m1.arrayBuffers),
  entries: gen.trees.get('')?.size,
}));
