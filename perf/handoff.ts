// The commit hand-off alone, both ways (issue 17's measure), reported, never asserted.
//   node dist/perf/handoff.js [round trips]     (default 50,000)
// A worker thread plays the writer with nothing to write: it takes each batch and acknowledges
// it at once. The same hand-off runs as the engine runs it: through the handoff ring
// (api/handoff-ring.ts: an entry, Atomics.notify, Atomics.wait on the writer; an acknowledgement,
// Atomics.waitAsync on the main thread), and through messages (a 'batches' message with a view of
// shared memory, a 'synced' message back with the journal's statistics). One batch is in flight
// at a time, as for one caller awaiting each put. Each side stamps its clock (performance.timeOrigin
// + now(), the same clock on both threads) so each direction is measured apart. The two hand-offs
// alternate in rounds, side by side in one process. Prints one JSON line per hand-off: medians in
// microseconds, and the main thread's busy time per round trip (event-loop utilisation).
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { ENTRY_BATCHES, RingProducer } from '../api/handoff-ring.js';

const total = Number(process.argv[2] ?? 50_000);
const ROUNDS = 5;
const machine = `${os.cpus().length} x ${os.cpus()[0]?.model.trim() ?? '?'}`;
/** Microseconds on a clock both threads share. */
const clock = (): number => (performance.timeOrigin + performance.now()) * 1000;
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1] ?? 0;

type Handoff = 'shared-memory' | 'messages';
interface Sample { toWriter: number[]; toMain: number[]; roundTrip: number[]; mainBusyUs: number; n: number }

async function runRing(n: number): Promise<Sample> {
  const ring = RingProducer.create();
  const stampSab = new SharedArrayBuffer(16 * n);
  /** The writer's stamps: when it received batch i, and when it acknowledged it. */
  const stamps = new Float64Array(stampSab);
  const worker = new Worker(new URL('./handoff-worker.js', import.meta.url), { workerData: { handoff: 'shared-memory', ring: ring.sab, stamps: stampSab, n } });
  await new Promise((r) => worker.once('message', r));
  const s: Sample = { toWriter: [], toMain: [], roundTrip: [], mainBusyUs: 0, n };
  const elu0 = performance.eventLoopUtilization();
  for (let i = 1; i <= n; i++) {
    const seen = ring.acks;
    const t0 = clock();
    ring.publish({ kind: ENTRY_BATCHES, flags: 0, chunk: 1, offset: i % 4000, length: 96, ops: 1, firstSeq: i, lastSeq: i });
    ring.ring();
    for (;;) {
      const a = ring.ack();
      if (a.lastSeq >= i) break;
      const r = ring.waitForAck(seen === a.acks ? seen : a.acks);
      if (r.async) await r.value;
    }
    const t1 = clock();
    s.toWriter.push((stamps[2 * (i - 1)] as number) - t0);
    s.toMain.push(t1 - (stamps[2 * (i - 1) + 1] as number));
    s.roundTrip.push(t1 - t0);
  }
  s.mainBusyUs = performance.eventLoopUtilization(elu0).active * 1000;
  await worker.terminate();
  return s;
}

async function runMessages(n: number): Promise<Sample> {
  const stampSab = new SharedArrayBuffer(16 * n);
  /** The writer's stamps: when it received batch i, and when it acknowledged it. */
  const stamps = new Float64Array(stampSab);
  const worker = new Worker(new URL('./handoff-worker.js', import.meta.url), { workerData: { handoff: 'messages', stamps: stampSab, n } });
  await new Promise((r) => worker.once('message', r));
  const chunk = new Uint8Array(new SharedArrayBuffer(4096));
  const s: Sample = { toWriter: [], toMain: [], roundTrip: [], mainBusyUs: 0, n };
  let answer: (() => void) | undefined;
  worker.on('message', () => answer?.());
  const elu0 = performance.eventLoopUtilization();
  for (let i = 1; i <= n; i++) {
    const t0 = clock();
    const back = new Promise<void>((r) => (answer = r));
    worker.postMessage({ kind: 'batches', parts: [chunk.subarray(i % 4000, (i % 4000) + 96)], ops: 1, firstSeq: i, lastSeq: i, freeze: false });
    await back;
    const t1 = clock();
    s.toWriter.push((stamps[2 * (i - 1)] as number) - t0);
    s.toMain.push(t1 - (stamps[2 * (i - 1) + 1] as number));
    s.roundTrip.push(t1 - t0);
  }
  s.mainBusyUs = performance.eventLoopUtilization(elu0).active * 1000;
  await worker.terminate();
  return s;
}

const samples: Record<Handoff, Sample[]> = { 'shared-memory': [], messages: [] };
const per = Math.ceil(total / ROUNDS);
for (let r = 0; r < ROUNDS; r++) {
  samples['shared-memory'].push(await runRing(per));
  samples.messages.push(await runMessages(per));
}
for (const [handoff, runs] of Object.entries(samples)) {
  const all = (f: (s: Sample) => number[]): number[] => runs.flatMap(f);
  const n = runs.reduce((a, s) => a + s.n, 0);
  console.log(JSON.stringify({
    handoff, roundTrips: n, machine,
    toWriterUs: Number(median(all((s) => s.toWriter)).toFixed(1)),
    toMainUs: Number(median(all((s) => s.toMain)).toFixed(1)),
    roundTripUs: Number(median(all((s) => s.roundTrip)).toFixed(1)),
    mainThreadUsPerRoundTrip: Number((runs.reduce((a, s) => a + s.mainBusyUs, 0) / n).toFixed(1)),
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  }));
}
