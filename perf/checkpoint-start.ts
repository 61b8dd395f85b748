// When checkpoints start (api/checkpoint-trigger.ts), reported, never asserted:
//   node dist/perf/checkpoint-start.js <seq|random> [checkpointBytes in MiB, default 32]
// 2,000,000 puts in order (16 B keys, 128 B values) or 1,000,000 random (16 B keys, 100 B values),
// 100 per awaited batch, durable, on a temporary database: many checkpoints. Prints one JSON line
// with the rate, the peak RSS, the checkpoints and the tree pages they wrote.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type BatchOp } from '../api/index.js';

const shape = process.argv[2] === 'random' ? 'random' : 'seq';
const mib = Number(process.argv[3] ?? 32);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'birch-perf-ckpt-'));
const db = await open(root, { checkpointBytes: mib * 2 ** 20 });
const txns = shape === 'seq' ? 20_000 : 10_000;
let x = 42;
const rnd = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
const value = Buffer.alloc(shape === 'seq' ? 128 : 100, 3);
const t0 = performance.now();
for (let t = 0; t < txns; t++) {
  const ops: BatchOp[] = [];
  for (let j = 0; j < 100; j++) {
    const key = Buffer.alloc(16);
    if (shape === 'seq') key.write(String(t * 100 + j).padStart(16, '0'), 'latin1');
    else for (let k = 0; k < 16; k += 4) key.writeUInt32BE(rnd(), k);
    ops.push({ type: 'put', key, value });
  }
  await db.batch(ops);
}
const ms = performance.now() - t0;
const s = db.stats();
await db.close();
fs.rmSync(root, { recursive: true, force: true });
console.log(JSON.stringify({
  shape, checkpointBytesMiB: mib, opsPerS: Math.round((txns * 100) / (ms / 1000)),
  peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024), checkpoints: s.checkpoints.count, pagesWritten: s.checkpoints.pagesWritten,
}));
