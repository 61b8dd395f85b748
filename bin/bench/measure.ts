// Measuring one workload on one engine, inside the child process that runs it.
import fs from 'node:fs';
import path from 'node:path';
import type { Engine, KV } from './engines.js';
import { prepareReads, readFilesOnce, type ReadOutcome } from './measure-reads.js';
import { keyMaker, prng, valueMaker, versionMaker, READ_KINDS, type BenchOptions, type Workload } from './workloads.js';

export interface BenchResult {
  workload: string;
  engine: string;
  /** Operations in the timed phase. */
  ops: number;
  seconds: number;
  opsPerSec: number;
  /** Latency per transaction (per read, scan or range for the reads, per put for concurrent), ms. */
  p50Ms: number;
  p99Ms: number;
  /** readwhilewriting: the writers' puts, next to the reads above. */
  writes?: { ops: number; opsPerSec: number; p50Ms: number; p99Ms: number };
  userBytes: number;
  diskBytesWritten: number | null;
  writeAmplification: number | null;
  fileBytes: number;
  peakRssBytes: number;
  extra: Record<string, number>;
  /**
   * Samples over time: [seconds since start, ops done, rss bytes, file bytes, checkpoints finished
   * (-1: the engine has none), latency p50 and p99 in ms of the operations timed since the last
   * sample (-1: none timed, or a read workload, whose latencies are taken apart)].
   */
  timeline: [number, number, number, number, number, number, number][];
}

/** Latencies per timeline interval that its p50 and p99 are taken from. */
const LATENCY_SAMPLE = 2048;

/** Bytes this process has caused to be written to storage (Linux /proc/self/io), or null. */
export function diskWriteBytes(): number | null {
  try {
    const m = /^write_bytes:\s*(\d+)/m.exec(fs.readFileSync('/proc/self/io', 'utf8'));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

/** Bytes of the files under `dir`; a file the engine removes while this walks is skipped. */
export function dirBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += dirBytes(p);
    else total += fs.statSync(p, { throwIfNoEntry: false })?.size ?? 0;
  }
  return total;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number);
}

/** Fills `count` items in transactions of `batch`, untimed (the set-up of the read/overwrite/delete workloads). */
async function prefill(engine: Engine, w: Workload, o: BenchOptions): Promise<void> {
  const key = keyMaker(w.keys, o);
  const value = valueMaker(o);
  for (let t = 0; t < o.txns; t++) {
    const ops: KV[] = [];
    for (let i = 0; i < o.batch; i++) ops.push({ key: key(t * o.batch + i), value: value() });
    await engine.write(ops);
  }
}

/**
 * Runs the workload's timed phase. Workloads that need data first fill it untimed, then close and
 * reopen the engine, so that every engine starts the timed phase from a closed, durable database
 * and none is charged for (or spared) the other's deferred work.
 */
export async function measure(open: () => Promise<Engine>, w: Workload, o: BenchOptions, dir: string, progress: (done: number, total: number) => void): Promise<BenchResult> {
  const total = o.txns * o.batch;
  let engine = await open();
  if (w.kind !== 'fill' && w.kind !== 'concurrent') {
    await prefill(engine, w, o);
    await engine.close();
    engine = await open();
  }
  const reads = READ_KINDS.includes(w.kind) ? prepareReads(engine, w, o) : undefined;
  // Inputs that the timed phase only looks up are made before it starts, as for every engine.
  const rand = prng(o.seed ^ 0x0bad);
  // Deletes visit every key once, in a seeded random order.
  const order = w.kind === 'delete' ? Array.from({ length: total }, (_, i) => i) : [];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const putKeys: Buffer[] = [];
  const putValues: Buffer[] = [];
  if (w.kind === 'concurrent') {
    const key = keyMaker('random', o);
    const value = valueMaker(o);
    for (let i = 0; i < total; i++) {
      putKeys.push(key(0));
      putValues.push(value());
    }
  }
  let latencies: number[] = [];
  const timeline: BenchResult['timeline'] = [];
  let done = 0;
  /** Progress towards `reads.total`, where it is not `done`. */
  let progressed: number | undefined;
  let lastSample = 0;
  // Last before the clock: every engine's files in the OS page cache.
  if (reads !== undefined) readFilesOnce(dir);
  const firstPassOpsPerSec = await reads?.warmUp?.();
  const endTimed = engine.beginTimed?.();
  const t0 = performance.now();
  let latencyMark = 0;
  const sample = (force = false): void => {
    const now = performance.now();
    if (!force && now - lastSample < 250) return;
    lastSample = now;
    // At most LATENCY_SAMPLE of the interval's latencies, evenly spread: sorting them all would put
    // the harness's work inside the timed loop.
    const n = latencies.length - latencyMark;
    const stride = Math.max(1, Math.ceil(n / LATENCY_SAMPLE));
    const recent: number[] = [];
    for (let i = latencyMark; i < latencies.length; i += stride) recent.push(latencies[i] as number);
    recent.sort((a, b) => a - b);
    latencyMark = latencies.length;
    const at = (q: number): number => (recent.length === 0 ? -1 : (recent[Math.min(recent.length - 1, Math.floor(q * recent.length))] as number));
    timeline.push([(now - t0) / 1000, done, process.memoryUsage().rss, dirBytes(dir), engine.extra().checkpoints ?? -1, at(0.5), at(0.99)]);
    progress(progressed ?? done, reads?.total ?? total);
  };
  const io0 = diskWriteBytes();
  let userBytes = 0;
  let read: ReadOutcome | undefined;
  const pick = (): number => Math.floor(rand() * total);
  const seqKey = keyMaker('seq', o);
  /** One timed transaction: its latency, bytes and operations counted. */
  const timedWrite = async (ops: KV[]): Promise<void> => {
    userBytes += ops.reduce((s, op) => s + op.key.length + (op.value?.length ?? 0), 0);
    const c0 = performance.now();
    await engine.write(ops);
    latencies.push(performance.now() - c0);
    done += ops.length;
    sample();
  };
  if (reads !== undefined) {
    read = await reads.run((n, p) => {
      done = n;
      progressed = p;
      sample();
    });
    done = read.done;
    latencies = read.latencies;
    userBytes = read.userBytes;
  } else switch (w.kind) {
    case 'fill':
    case 'overwrite':
    case 'delete': {
      const key = keyMaker(w.keys, o);
      const value = valueMaker(o);
      for (let t = 0; t < o.txns; t++) {
        const ops: KV[] = [];
        for (let i = 0; i < o.batch; i++) {
          const n = t * o.batch + i;
          if (w.kind === 'fill') ops.push({ key: key(n), value: value() });
          else if (w.kind === 'overwrite') ops.push({ key: seqKey(pick()), value: value() });
          else ops.push({ key: seqKey(order[n] as number), value: null });
        }
        await timedWrite(ops);
      }
      break;
    }
    case 'versions': {
      const next = versionMaker(o);
      for (let t = 0; t < o.txns; t++) await timedWrite(next().map((c) => ({ key: c.key, value: c.value, store: c.store })));
      break;
    }
    case 'concurrent': {
      userBytes = total * (o.keySize + o.valueSize);
      let next = 0;
      await Promise.all(
        Array.from({ length: o.callers }, async () => {
          for (let i = next++; i < total; i = next++) {
            const c0 = performance.now();
            await engine.put(putKeys[i] as Buffer, putValues[i] as Buffer);
            latencies.push(performance.now() - c0);
            done++;
            if ((i & 255) === 0) sample();
          }
        }),
      );
      break;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const timedExtra = endTimed?.() ?? {};
  sample(true);
  const extra = { ...engine.extra(), ...timedExtra };
  if (firstPassOpsPerSec !== undefined) extra.firstPassOpsPerSec = firstPassOpsPerSec;
  if (read?.duringCheckpoint !== undefined && read.duringCheckpoint.length > 0) extra.readP99DuringCheckpointMs = percentile(read.duringCheckpoint.sort((a, b) => a - b), 99);
  const copyIo0 = diskWriteBytes();
  // Only a workload that wrote has batches to replay.
  const wrote = !READ_KINDS.includes(w.kind) || w.kind === 'readwhilewriting';
  const recovery = engine.crashCopy !== undefined && wrote ? await engine.crashCopy() : undefined;
  const copyIo1 = diskWriteBytes();
  await engine.close();
  const io1 = diskWriteBytes();
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  const fileBytes = dirBytes(dir);
  if (recovery !== undefined) extra.recoveryMs = await recovery();
  latencies.sort((a, b) => a - b);
  const puts = read?.writes;
  puts?.latencies.sort((a, b) => a - b);
  // The engine's own writes: the crash copy's are the harness's.
  const copyBytes = copyIo0 !== null && copyIo1 !== null ? copyIo1 - copyIo0 : 0;
  const disk = io0 !== null && io1 !== null ? io1 - io0 - copyBytes : null;
  return {
    workload: w.name,
    engine: engine.name,
    ops: done,
    seconds,
    opsPerSec: done / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    ...(puts === undefined ? {} : { writes: { ops: puts.ops, opsPerSec: puts.ops / seconds, p50Ms: percentile(puts.latencies, 50), p99Ms: percentile(puts.latencies, 99) } }),
    userBytes,
    diskBytesWritten: disk,
    writeAmplification: disk === null || userBytes === 0 ? null : disk / userBytes,
    fileBytes,
    peakRssBytes,
    extra,
    timeline,
  };
}
