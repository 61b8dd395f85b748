// Main-thread work per write operation (issue 17's measure), reported, never asserted.
//   node dist/perf/main-thread-cost.js [ops]     (default 1,000,000 operations per shape)
// The main thread does no I/O (the writer and checkpointer threads do), so its event loop's busy
// time (performance.eventLoopUtilization().active) over a run is the main thread's own work:
// validating and encoding batches, the write buffer, the hand-off, acknowledgements, GC on it.
// One caller awaits each batch, durable, on a temporary database; each shape runs in order, with
// a checkpoint every checkpointBytes as usual (1,000,000 batched puts write about 130-300 MB:
// several checkpoints; the 20,000 single puts write 2.4 MB, none: their figure is the commit
// path alone). Prints one JSON line per shape with the peak RSS.
// Busy time also counts time the main thread was ready to run but another thread had its core
// (on 2 cores with three busy threads, waking the writer can hand it the main thread's core). On
// Linux the main thread's own scheduler counters split the two: `mainThreadCpuUsPerOp`, time on a
// core, and `mainThreadWaitUsPerOp`, time ready but waiting for one (/proc's schedstat).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { open, type BatchOp } from '../api/index.js';
import { prng } from '../bin/bench/workloads.js';

const total = Number(process.argv[2] ?? 1_000_000);

interface Shape {
  name: string;
  batch: number;
  key(i: number, rand: () => number): Buffer;
  value(i: number, rand: () => number): Buffer;
}

const shapes: Shape[] = [
  { name: '100-put batches, 16 B keys in order, 100 B values', batch: 100, key: (i) => Buffer.from(String(i).padStart(16, '0')), value: () => Buffer.alloc(100, 1) },
  {
    name: '1,000-put batches, 8-64 B random keys, 20-200 B values',
    batch: 1000,
    key: (_i, r) => {
      const k = Buffer.allocUnsafe(8 + Math.floor(r() * 57));
      for (let j = 0; j < k.length; j++) k[j] = 97 + Math.floor(r() * 26);
      return k;
    },
    value: (_i, r) => Buffer.alloc(20 + Math.floor(r() * 181), 2),
  },
  { name: 'single puts, 16 B keys in order, 100 B values', batch: 1, key: (i) => Buffer.from(String(i).padStart(16, '0')), value: () => Buffer.alloc(100, 1) },
];

/** The main thread's time on a core and time ready but waiting for one, in ns (Linux only). */
function schedstat(): { cpuNs: number; waitNs: number } | undefined {
  try {
    const [cpu, wait] = fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
    return cpu === undefined || wait === undefined ? undefined : { cpuNs: cpu, waitNs: wait };
  } catch {
    return undefined;
  }
}

const machine = `${os.cpus().length} x ${os.cpus()[0]?.model.trim() ?? '?'}`;
for (const shape of shapes) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'birch-perf-main-'));
  const db = await open(root);
  const rand = prng(7);
  // Single puts take a durable sync each: fewer of them.
  const ops = shape.batch === 1 ? Math.min(total, 20_000) : total;
  // Batches made before the clock starts: what is measured is birchdb's work, not the workload's.
  const batches: { type: 'put'; key: Buffer; value: Buffer }[][] = [];
  for (let i = 0; i < ops; i += shape.batch) {
    const b: { type: 'put'; key: Buffer; value: Buffer }[] = [];
    for (let j = i; j < Math.min(ops, i + shape.batch); j++) b.push({ type: 'put', key: shape.key(j, rand), value: shape.value(j, rand) });
    batches.push(b);
  }
  const elu0 = performance.eventLoopUtilization();
  const sched0 = schedstat();
  const t0 = performance.now();
  if (shape.batch === 1) {
    for (const [op] of batches) await db.put((op as { key: Buffer }).key, (op as { value: Buffer }).value);
  } else for (const b of batches) await db.batch(b as BatchOp[]);
  const ms = performance.now() - t0;
  const elu = performance.eventLoopUtilization(elu0);
  const sched1 = schedstat();
  const perOp = (ns: number): number => Number((ns / 1000 / ops).toFixed(3));
  await db.close();
  fs.rmSync(root, { recursive: true, force: true });
  console.log(JSON.stringify({
    shape: shape.name, ops, machine,
    mainThreadUsPerOp: Number(((elu.active * 1000) / ops).toFixed(3)),
    mainThreadCpuUsPerOp: sched0 === undefined || sched1 === undefined ? null : perOp(sched1.cpuNs - sched0.cpuNs),
    mainThreadWaitUsPerOp: sched0 === undefined || sched1 === undefined ? null : perOp(sched1.waitNs - sched0.waitNs),
    wallUsPerOp: Number(((ms * 1000) / ops).toFixed(3)),
    opsPerS: Math.round(ops / (ms / 1000)),
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  }));
}
