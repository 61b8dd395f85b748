// Measures what journal preallocation buys: the latency of "write one 4 KiB record + fdatasync"
// when appending to a growing file, versus overwriting a file preallocated with zeros (in 4 KiB
// writes, as journal/journal.ts does). Reports, never asserts. Runs in a temporary directory on
// the same filesystem as os.tmpdir().
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeDirectory } from '../pager/backend.js';

const RECORDS = Number(process.env.PERF_RECORDS ?? 1000);
const RECORD_BYTES = 4096;

function measure(label: string, prepare: (write: (pos: number, b: Buffer) => void) => void, file: ReturnType<NodeDirectory['open']>): { label: string; mean: number; p50: number; p99: number } {
  prepare((pos, b) => file.write(pos, b));
  file.sync();
  const rec = Buffer.alloc(RECORD_BYTES, 0xab);
  const times: number[] = [];
  for (let i = 0; i < RECORDS; i++) {
    const t0 = performance.now();
    file.write(RECORD_BYTES * (i + 1), rec);
    file.sync();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return { label, mean, p50: times[Math.floor(times.length / 2)] as number, p99: times[Math.floor(times.length * 0.99)] as number };
}

export function journalPreallocBench(): string[] {
  const dirPath = fs.mkdtempSync(path.join(os.tmpdir(), 'birch-perf-'));
  try {
    const dir = new NodeDirectory(dirPath);
    const append = measure('append to a new file', () => {}, dir.open('append.wal', { create: true }));
    const zeros = Buffer.alloc(4096);
    const prealloc = measure('overwrite a preallocated file', (write) => {
      for (let off = 0; off < (RECORDS + 2) * RECORD_BYTES; off += 4096) write(off, zeros);
    }, dir.open('prealloc.wal', { create: true }));
    const lines = [`journal record write + fdatasync, ${RECORDS} records of ${RECORD_BYTES} bytes:`];
    for (const r of [append, prealloc]) lines.push(`  ${r.label.padEnd(32)} mean ${r.mean.toFixed(3)} ms  p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms`);
    lines.push(`  preallocated / append mean latency: ${(prealloc.mean / append.mean).toFixed(2)}x`);
    return lines;
  } finally {
    fs.rmSync(dirPath, { recursive: true, force: true });
  }
}
