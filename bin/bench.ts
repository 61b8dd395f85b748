// `birch bench`: write workloads on a temporary database, measured end to end.
// Every figure printed is measured in this run; nothing is estimated.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Database, open } from '../engine/index.js';

export interface BenchOptions {
  /** Concurrent async callers (the `concurrent` workload). */
  callers: number;
  txns: number;
  batch: number;
  keySize: number;
  valueSize: number;
  sync: boolean;
  seed: number;
  dir?: string;
  cacheSize?: number;
}

export interface BenchResult {
  workload: string;
  engine: string;
  items: number;
  seconds: number;
  opsPerSec: number;
  commitP50Ms: number;
  commitP99Ms: number;
  userBytes: number;
  diskBytesWritten: number | null;
  writeAmplification: number | null;
  compressionRatio: number;
  pagesPerCommit: number;
  writeRunsPerFlush: number;
  fileBytes: number;
  peakRssBytes: number;
  /** Group commit: batches merged per commit (concurrent workload). */
  batchesPerCommit?: number;
}

/** mulberry32, seeded, so that every engine and every run sees the same keys. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fillRandomBytes(buf: Buffer, rand: () => number): void {
  for (let i = 0; i < buf.length; i += 4) {
    const v = Math.floor(rand() * 4294967296);
    for (let j = 0; j < 4 && i + j < buf.length; j++) buf[i + j] = (v >>> (j * 8)) & 0xff;
  }
}

/** Bytes this process has caused to be written to storage, from Linux's /proc/self/io. */
function diskWriteBytes(): number | null {
  try {
    const m = /^write_bytes:\s*(\d+)/m.exec(fs.readFileSync('/proc/self/io', 'utf8'));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const name of fs.readdirSync(dir)) total += fs.statSync(path.join(dir, name)).size;
  return total;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export type KeyGen = (txn: number, i: number, out: Buffer) => void;

export const WORKLOADS: Record<string, { describe: string; defaults: Partial<BenchOptions>; keys: (o: BenchOptions) => KeyGen; concurrent?: boolean }> = {
  fillseq: {
    describe: 'ascending keys, the sequential-insert case',
    defaults: { txns: 1000, batch: 100, keySize: 16, valueSize: 128 },
    keys: (o) => (txn, i, out) => {
      out.fill(0x30);
      const s = String(txn * o.batch + i);
      out.write(s, Math.max(0, out.length - s.length), 'latin1');
    },
  },
  concurrent: {
    describe: 'callers concurrent async callers, each awaiting single-op durable puts of random keys (group commit)',
    defaults: { txns: 640, batch: 100, keySize: 16, valueSize: 100, callers: 64 },
    concurrent: true,
    keys: (o) => {
      const rand = prng(o.seed ^ 0xc0c0);
      return (_txn, _i, out) => fillRandomBytes(out, rand);
    },
  },
  fillrandom: {
    describe: 'uniformly random keys, the random-insert case',
    defaults: { txns: 1000, batch: 100, keySize: 16, valueSize: 100 },
    keys: (o) => {
      const rand = prng(o.seed ^ 0x5eed);
      return (_txn, _i, out) => fillRandomBytes(out, rand);
    },
  },
};

export async function runBirchWorkload(name: string, o: BenchOptions, onProgress?: (done: number) => void): Promise<BenchResult> {
  const w = WORKLOADS[name];
  if (w === undefined) throw new Error(`unknown workload ${name}`);
  if (w.concurrent === true) return runBirchConcurrent(name, o, onProgress);
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), `birch-bench-${name}-`));
  fs.mkdirSync(dir, { recursive: true });
  const db = Database.open(dir, { sync: o.sync, ...(o.cacheSize !== undefined ? { cacheSize: o.cacheSize } : {}) });
  const keyGen = w.keys(o);
  const valueRand = prng(o.seed);
  const key = Buffer.alloc(o.keySize);
  const value = Buffer.alloc(o.valueSize);
  const latencies: number[] = [];
  const io0 = diskWriteBytes();
  let peakRss = process.memoryUsage().rss;
  const t0 = performance.now();
  try {
    for (let t = 0; t < o.txns; t++) {
      const c0 = performance.now();
      db.write((tx) => {
        for (let i = 0; i < o.batch; i++) {
          keyGen(t, i, key);
          fillRandomBytes(value, valueRand);
          tx.put(key, value);
        }
      });
      latencies.push(performance.now() - c0);
      // Yield to the event loop between commits, as the writer thread does, so that background
      // data-file flushes make progress.
      await yieldToLoop();
      if (t % 100 === 0) {
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
        onProgress?.(t + 1);
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    db.checkpointSync();
    const stats = db.stats();
    const io1 = diskWriteBytes();
    db.close();
    const items = o.txns * o.batch;
    const userBytes = items * (o.keySize + o.valueSize);
    const disk = io0 !== null && io1 !== null ? io1 - io0 : null;
    latencies.sort((a, b) => a - b);
    onProgress?.(o.txns);
    return {
      workload: name,
      engine: 'birchdb',
      items,
      seconds,
      opsPerSec: items / seconds,
      commitP50Ms: percentile(latencies, 50),
      commitP99Ms: percentile(latencies, 99),
      userBytes,
      diskBytesWritten: disk,
      writeAmplification: disk === null || disk === 0 ? null : disk / userBytes,
      compressionRatio: stats.journal.compressionRatio,
      pagesPerCommit: stats.pagesPerCommit,
      writeRunsPerFlush: stats.dataFile.writeRunsPerFlush,
      fileBytes: dirBytes(dir),
      peakRssBytes: Math.max(peakRss, process.memoryUsage().rss),
    };
  } finally {
    if (!db.closed) db.close();
    if (o.dir === undefined) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `callers` async callers share txns x batch single-op puts; each awaits its put before the next.
 * The writer thread merges whatever is queued into one commit. Latency is per put.
 */
async function runBirchConcurrent(name: string, o: BenchOptions, onProgress?: (done: number) => void): Promise<BenchResult> {
  const w = WORKLOADS[name] as (typeof WORKLOADS)[string];
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), `birch-bench-${name}-`));
  fs.mkdirSync(dir, { recursive: true });
  const db = await open(dir, { sync: o.sync, ...(o.cacheSize !== undefined ? { cacheSize: o.cacheSize } : {}) });
  const total = o.txns * o.batch;
  const keyGen = w.keys(o);
  const valueRand = prng(o.seed);
  // Keys and values are generated up front so that every engine gets the same ones, and the timed
  // loop measures only the writes.
  const keys: Buffer[] = [];
  const values: Buffer[] = [];
  for (let i = 0; i < total; i++) {
    const k = Buffer.alloc(o.keySize);
    keyGen(0, i, k);
    keys.push(k);
    const v = Buffer.alloc(o.valueSize);
    fillRandomBytes(v, valueRand);
    values.push(v);
  }
  const latencies: number[] = [];
  let next = 0;
  let peakRss = process.memoryUsage().rss;
  const io0 = diskWriteBytes();
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: o.callers }, async () => {
        for (let i = next++; i < total; i = next++) {
          const c0 = performance.now();
          await db.put(keys[i] as Buffer, values[i] as Buffer);
          latencies.push(performance.now() - c0);
          if (i % 5000 === 0) {
            peakRss = Math.max(peakRss, process.memoryUsage().rss);
            onProgress?.(Math.floor(i / o.batch));
          }
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const stats = db.stats();
    await db.close();
    const io1 = diskWriteBytes();
    const userBytes = total * (o.keySize + o.valueSize);
    const disk = io0 !== null && io1 !== null ? io1 - io0 : null;
    latencies.sort((a, b) => a - b);
    onProgress?.(o.txns);
    return {
      workload: name,
      engine: 'birchdb',
      items: total,
      seconds,
      opsPerSec: total / seconds,
      commitP50Ms: percentile(latencies, 50),
      commitP99Ms: percentile(latencies, 99),
      userBytes,
      diskBytesWritten: disk,
      writeAmplification: disk === null || disk === 0 ? null : disk / userBytes,
      compressionRatio: stats.journal.compressionRatio,
      pagesPerCommit: stats.pagesPerCommit,
      writeRunsPerFlush: stats.dataFile.writeRunsPerFlush,
      fileBytes: dirBytes(dir),
      peakRssBytes: Math.max(peakRss, process.memoryUsage().rss),
      batchesPerCommit: stats.writer.batchesPerCommit,
    };
  } finally {
    if (!db.closed) await db.close();
    if (o.dir === undefined) fs.rmSync(dir, { recursive: true, force: true });
  }
}
