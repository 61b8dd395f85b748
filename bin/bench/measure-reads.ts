// The timed phases of the read workloads: readrandom, readseq, scan100 and readwhilewriting.
// Preparing a phase makes every input it uses (a key per read, the operations whose latency is
// taken, the writers' keys and values), so that the clock runs over the engine's work and a loop
// around it, nothing more. A get or range is awaited only when the engine returns a Promise: an
// await of a plain value costs a microtask per read, paid by every engine alike, which would
// narrow every ratio between them.
import fs from 'node:fs';
import path from 'node:path';
import type { Engine } from './engines.js';
import { keyMaker, prng, valueMaker, RANGES_PER_TXN, SCAN_PASSES, WRITES_PER_KEY, type BenchOptions, type Workload } from './workloads.js';

/** One read in this many has its latency taken (seeded): two clock reads are a large share of a 2-3 us read. */
const LATENCY_SAMPLE_EVERY = 16;
/** readwhilewriting's reader lets the event loop run (the writes progress) after this many reads, for every engine. */
const READS_PER_YIELD = 64;
/** readrandom reports progress after this many reads. */
const READS_PER_TICK = 1024;
/** scan100 reports progress after this many ranges. */
const RANGES_PER_TICK = 64;
const WARM_CHUNK_BYTES = 1 << 20;

export interface ReadOutcome {
  /** Operations: reads, or entries read for the scans. */
  done: number;
  /** Latencies in ms of the operations timed (a sample of the reads; every scan and range). */
  latencies: number[];
  /** readwhilewriting, an engine that reports checkpoints: the read latencies taken while one ran. */
  duringCheckpoint?: number[];
  /** readwhilewriting: the writers' puts and the latency of each, ms. */
  writes?: { ops: number; latencies: number[] };
  userBytes: number;
}

export interface ReadPhase {
  /** What the progress bar counts to. */
  total: number;
  /**
   * An untimed first pass of the same reads, before the clock (readrandom): it fills each
   * engine's caches (birchdb's frames, lmdb-js's page tables), so that the timed pass measures the
   * steady state a running application sees. Returns its rate, reported apart.
   */
  warmUp?(): Promise<number>;
  /** The timed phase; `tick(done, progressed)` after each step (progressed: towards `total`, if not done). */
  run(tick: (done: number, progressed?: number) => void): Promise<ReadOutcome>;
}

/**
 * Reads every file under `dir` once, in 1 MiB chunks, so that the OS page cache holds them: both
 * lmdb-js (mmap) and birchdb (pread) then start from the same warm files. A file the engine
 * removes meanwhile is skipped.
 */
export function readFilesOnce(dir: string): void {
  const chunk = Buffer.allocUnsafe(WARM_CHUNK_BYTES);
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      readFilesOnce(p);
      continue;
    }
    let fd: number;
    try {
      fd = fs.openSync(p, 'r');
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') continue;
      throw err;
    }
    try {
      while (fs.readSync(fd, chunk, 0, chunk.length, null) > 0);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Which of `n` operations have their latency taken: a seeded 1 in LATENCY_SAMPLE_EVERY. */
function latencySample(n: number, seed: number): Uint8Array {
  const rand = prng(seed ^ 0x5a3b);
  const sampled = new Uint8Array(n);
  for (let i = 0; i < n; i++) sampled[i] = rand() * LATENCY_SAMPLE_EVERY < 1 ? 1 : 0;
  return sampled;
}

/** `n` random existing keys (the prefill's), one Buffer per read. */
function readKeys(o: BenchOptions, n: number, seed: number): Buffer[] {
  const total = o.txns * o.batch;
  const rand = prng(seed);
  const seqKey = keyMaker('seq', o);
  return Array.from({ length: n }, () => seqKey(Math.floor(rand() * total)));
}

/** Reads keys[from..to), the sampled ones timed into `latencies`; every key must exist. */
async function getAll(engine: Engine, keys: Buffer[], sampled: Uint8Array, from: number, to: number, latencies: number[]): Promise<void> {
  for (let i = from; i < to; i++) {
    const timed = sampled[i] === 1;
    const c0 = timed ? performance.now() : 0;
    let v = engine.get(keys[i] as Buffer);
    if (v instanceof Promise) v = await v;
    if (timed) latencies.push(performance.now() - c0);
    if (v === undefined) throw new Error(`${engine.name}: a key written by the fill is missing`);
  }
}

function readRandom(engine: Engine, o: BenchOptions): ReadPhase {
  const n = o.txns * o.batch;
  const keys = readKeys(o, n, o.seed ^ 0x0bad);
  const sampled = latencySample(n, o.seed);
  return {
    total: n,
    warmUp: async () => {
      const t0 = performance.now();
      await getAll(engine, keys, new Uint8Array(n), 0, n, []);
      return n / ((performance.now() - t0) / 1000);
    },
    run: async (tick) => {
      const latencies: number[] = [];
      for (let at = 0; at < n; at += READS_PER_TICK) {
        const to = Math.min(n, at + READS_PER_TICK);
        await getAll(engine, keys, sampled, at, to, latencies);
        tick(to);
      }
      return { done: n, latencies, userBytes: 0 };
    },
  };
}

function readSeq(engine: Engine, o: BenchOptions): ReadPhase {
  const total = o.txns * o.batch;
  return {
    total: SCAN_PASSES * total,
    run: async (tick) => {
      const latencies: number[] = [];
      let done = 0;
      for (let pass = 0; pass < SCAN_PASSES; pass++) {
        const c0 = performance.now();
        const n = await engine.scan();
        latencies.push(performance.now() - c0);
        if (n !== total) throw new Error(`${engine.name}: scan found ${n} entries, expected ${total}`);
        done += n;
        tick(done);
      }
      return { done, latencies, userBytes: 0 };
    },
  };
}

/** scan100: RANGES_PER_TXN x txns ranges of `batch` entries, each timed (tens of us, so two clock reads are noise). */
function scanRanges(engine: Engine, o: BenchOptions): ReadPhase {
  const total = o.txns * o.batch;
  const ranges = o.txns * RANGES_PER_TXN;
  const rand = prng(o.seed ^ 0x5ca9);
  const seqKey = keyMaker('seq', o);
  const starts: Buffer[] = [];
  // Keys are fixed-width decimals, so a range from key i holds the keys i, i+1, ... up to the last.
  const expected = new Int32Array(ranges);
  for (let r = 0; r < ranges; r++) {
    const i = Math.floor(rand() * total);
    starts.push(seqKey(i));
    expected[r] = Math.min(o.batch, total - i);
  }
  return {
    total: ranges,
    run: async (tick) => {
      const latencies: number[] = [];
      let done = 0;
      for (let r = 0; r < ranges; r++) {
        const c0 = performance.now();
        let n = engine.range(starts[r] as Buffer, o.batch);
        if (typeof n !== 'number') n = await n;
        latencies.push(performance.now() - c0);
        if (n !== expected[r]) throw new Error(`${engine.name}: a range read ${n} entries, expected ${expected[r]}`);
        done += n;
        if ((r + 1) % RANGES_PER_TICK === 0) tick(done, r + 1);
      }
      return { done, latencies, userBytes: 0 };
    },
  };
}

/**
 * readwhilewriting: --callers writers each await durable single puts (overwrites of random
 * existing keys) while one reader, on the same thread, reads random existing keys until they
 * finish. Both let the event loop run: each writer once per put, the reader every READS_PER_YIELD
 * reads, whatever the engine. Before each chunk the reader asks whether a checkpoint is in flight
 * and files that chunk's read latencies accordingly.
 */
function readWhileWriting(engine: Engine, o: BenchOptions): ReadPhase {
  const total = o.txns * o.batch;
  const writes = Math.round(total * WRITES_PER_KEY);
  const rand = prng(o.seed ^ 0x0bad);
  const seqKey = keyMaker('seq', o);
  const value = valueMaker(o);
  const putKeys: Buffer[] = [];
  const putValues: Buffer[] = [];
  for (let i = 0; i < writes; i++) {
    putKeys.push(seqKey(Math.floor(rand() * total)));
    putValues.push(value());
  }
  // As many read keys as prefilled keys; the reader goes round them again if the writers outlast them.
  const keys = readKeys(o, total, o.seed ^ 0x7ead);
  const sampled = latencySample(total, o.seed ^ 0x7ead);
  return {
    total: writes,
    run: async (tick) => {
      const writeLatencies: number[] = [];
      let next = 0;
      let written = 0;
      let writing = true;
      const writers = Promise.all(
        Array.from({ length: o.callers }, async () => {
          for (let i = next++; i < writes; i = next++) {
            const c0 = performance.now();
            const put = engine.put(putKeys[i] as Buffer, putValues[i] as Buffer);
            if (put instanceof Promise) await put;
            writeLatencies.push(performance.now() - c0);
            written++;
            // A synchronous put (better-sqlite3 commits on this thread) never reaches the event
            // loop, so the writers would run every put before the reader's next turn: yield once,
            // as an asynchronous put does by waiting for its I/O.
            if (!(put instanceof Promise)) await new Promise(setImmediate);
          }
        }),
      ).finally(() => {
        writing = false;
      });
      const latencies: number[] = [];
      const duringCheckpoint: number[] = [];
      let reads = 0;
      try {
        for (let at = 0; writing; at = at + READS_PER_YIELD >= total ? 0 : at + READS_PER_YIELD) {
          const to = Math.min(total, at + READS_PER_YIELD);
          const inCheckpoint = engine.checkpointInFlight?.() ?? false;
          const before = latencies.length;
          await getAll(engine, keys, sampled, at, to, latencies);
          if (inCheckpoint) for (let j = before; j < latencies.length; j++) duringCheckpoint.push(latencies[j] as number);
          reads += to - at;
          tick(reads, written);
          await new Promise(setImmediate);
        }
      } catch (err) {
        next = writes; // no more puts begin; those in flight finish before the error is passed on
        await Promise.allSettled([writers]);
        throw err;
      }
      await writers;
      return {
        done: reads,
        latencies,
        ...(engine.checkpointInFlight === undefined ? {} : { duringCheckpoint }),
        writes: { ops: writes, latencies: writeLatencies },
        userBytes: writes * (o.keySize + o.valueSize),
      };
    },
  };
}

/** Makes the inputs of a read workload's timed phase (call it before the clock starts). */
export function prepareReads(engine: Engine, w: Workload, o: BenchOptions): ReadPhase {
  switch (w.kind) {
    case 'readrandom':
      return readRandom(engine, o);
    case 'readseq':
      return readSeq(engine, o);
    case 'scan':
      return scanRanges(engine, o);
    case 'readwhilewriting':
      return readWhileWriting(engine, o);
    default:
      throw new Error(`${w.name} is not a read workload`);
  }
}
